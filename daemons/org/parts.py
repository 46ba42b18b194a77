"""What the org's round steps work with, built from its settings: opener, judge, closer.

Built per step (`OrgRounds` asks for each when it acts), so a setting swapped after start —
tests do, and a restart may — reaches the next step; the prefetcher and the replay pins
are the only things kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from nacl.public import PrivateKey

from daemons.chain.port import Chain
from daemons.ipfs.blobs import BlobCache, BlobFetcher, Storage
from daemons.org.close import RoundCloser
from daemons.org.collect import UpdateJudge, influence_bounds, org_limits
from daemons.org.ledger import Ledger
from daemons.org.models_seal import OrgModels
from daemons.org.opening import RoundOpener
from daemons.org.prefetch import Prefetcher
from daemons.org.privacy import OrgPrivacy, central_dp_pin
from daemons.org.unseal import Unsealer
from daemons.org.warmup import OrgWarmup
from daemons.privacy.policy import org_policy
from daemons.runtime.config import DaemonConfig, FederationConfig, TrainingConfig
from daemons.runtime.metrics import Metrics
from daemons.runtime.task_setup import OrgTask, org_task
from daemons.verify.pins import dataset_digest, replay_pins
from models.schema import FederationSchema
from models.validation import Limits


class OrgParts:
    """The org's settings and ports, and the collaborators each round step is given."""

    def __init__(
        self,
        cfg: DaemonConfig,
        chain: Chain,
        storage: Storage,
        ledger: Ledger,
        cache: BlobCache,
        eval_data: Any,
        metrics: Metrics,
        update_key: PrivateKey | None = None,
        task: OrgTask | None = None,
        privacy: OrgPrivacy | None = None,
        heldout: Mapping[str, Any] | None = None,
        models: OrgModels | None = None,
    ) -> None:
        assert cfg.federation is not None and cfg.training is not None
        self.cfg, self.chain, self.storage = cfg, chain, storage
        self.fed: FederationConfig = cfg.federation
        self.training: TrainingConfig = cfg.training
        self.ledger, self.cache, self.eval_data, self.metrics = ledger, cache, eval_data, metrics
        self.prefetch = Prefetcher(storage, cache, cfg.ipfs)
        self.task = task or org_task(cfg)
        # [encryption] updates = "encrypted": clients seal updates to this key (docs/security.md)
        self.update_key = update_key
        self.encryption = org_policy(cfg.encryption, update_key)
        self.privacy = privacy if privacy is not None and privacy.on else None
        self.heldout: dict[str, Any] = dict(heldout or {})  # the forgetting ledger's sets
        self._pins: dict[str, Any] | None = None
        # [encryption] models = "members": models sealed to the members (docs/security.md)
        self.models = models or OrgModels(key=update_key)
        self.warmup: OrgWarmup | None = None  # round 0's model and eval compiled ahead

    @property
    def schema(self) -> FederationSchema:
        """The blob layout for the current penalty and strategy (task shapes fixed at start)."""
        base = self.task.schema
        if (base.penalty, base.strategy) == (self.training.penalty, self.fed.strategy):
            return base
        return replace(base, penalty=self.training.penalty, strategy=self.fed.strategy)

    @property
    def with_fisher(self) -> bool:
        """Models and updates carry the Fisher only when a penalty or the strategy reads it."""
        return self.schema.fisher

    def blobs(self) -> BlobFetcher:
        """Digest-checked blobs from the cache, else IPFS."""
        return BlobFetcher(self.storage, self.cache, self.cfg.ipfs.timeout_s)

    def unsealer(self) -> Unsealer:
        """Opens the encrypted updates of a round with the org's key."""
        return Unsealer(self.blobs(), self.update_key, self.cfg.ipfs.max_blob_bytes)

    def limits(self) -> Limits:
        """Blob bounds for updates (pinned in the round config)."""
        return org_limits(self.schema, self.fed, self.cfg.ipfs.max_blob_bytes)

    def opener(self) -> RoundOpener:
        """What opening a round needs, from the current settings."""
        return RoundOpener(
            chain=self.chain,
            ledger=self.ledger,
            put=self.put,
            metrics=self.metrics,
            fed=self.fed,
            training=self.training,
            with_fisher=self.with_fisher,
            task=self.task,
            encryption=self.encryption,
            privacy=self.privacy,
            models=self.models,
            warmup=self.warmup,
            pins=self.pins,
        )

    def judge(self) -> UpdateJudge:
        """What judging an update needs, from the current settings."""
        ipfs = self.cfg.ipfs
        return UpdateJudge(
            prefetch=self.prefetch,
            unsealer=self.unsealer(),
            blobs=self.blobs(),
            storage=self.storage,
            cache=self.cache,
            models=self.models,
            metrics=self.metrics,
            schema=self.schema,
            limits=self.limits(),
            model_name=self.task.task.model,
            max_samples=self.fed.max_samples_per_client,
            max_bytes=ipfs.max_blob_bytes,
            timeout_s=ipfs.timeout_s,
        )

    def closer(self) -> RoundCloser:
        """What settling a round needs, from the current settings."""
        return RoundCloser(
            chain=self.chain,
            ledger=self.ledger,
            storage=self.storage,
            cache=self.cache,
            blobs=self.blobs(),
            unsealer=self.unsealer(),
            put=self.put,
            metrics=self.metrics,
            fed=self.fed,
            fisher_gamma=self.training.fisher_gamma,
            with_fisher=self.with_fisher,
            task=self.task.task,
            eval_data=self.eval_data,
            heldout=self.heldout,
            models=self.models,
            privacy=self.privacy,
            warmup=self.warmup,
            max_bytes=self.cfg.ipfs.max_blob_bytes,
        )

    def pins(self) -> dict[str, Any]:
        """What `fedchain verify` needs to replay a round (computed once: digests of the data)."""
        if self._pins is None:
            self._pins = replay_pins(
                self.fed.strategy,
                self.fed.strategy_options,
                self.limits(),
                dataset_digest(self.eval_data),
                {name: dataset_digest(d) for name, d in self.heldout.items()},
                influence_bounds(self.fed),
                self.fed.max_samples_per_client,
            )
            if self.privacy is not None and self.privacy.secret is not None:
                self._pins["central_dp"] = central_dp_pin(self.privacy)
        return self._pins

    async def put(self, data: bytes) -> Any:
        """Put a blob to IPFS (pinned) and keep a local copy; counts bytes out."""
        stored = await self.storage.put(data)
        self.cache.put(data)
        self.metrics.bytes.labels(direction="out").inc(len(data))
        return stored
