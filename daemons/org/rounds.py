"""The org's round protocol: read chain state, decide, do one idempotent step, repeat.

Each step re-reads the contract, so running it twice (after `kill -9`, or on a replayed
event) is harmless: transactions go through `TxSender` with a deterministic key, blobs are
content-addressed, and the aggregation is deterministic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from nacl.public import PrivateKey

from contracts.state import RoundInfo, RoundStatus
from daemons.chain.port import Chain
from daemons.ipfs.blobs import BlobCache, BlobFetcher, Storage
from daemons.org.close import RoundCloser, close_round
from daemons.org.collect import UpdateJudge, influence_bounds, judge_pending, org_limits
from daemons.org.decide import Action, Decision, RoundView, activity_of, decide
from daemons.org.ledger import Ledger, Submission, sub_digest
from daemons.org.models_seal import OrgModels
from daemons.org.noblock import NoBlockWatch
from daemons.org.observe import observe_settled
from daemons.org.opening import RoundOpener
from daemons.org.prefetch import Prefetcher
from daemons.org.privacy import OrgPrivacy, central_dp_pin
from daemons.org.unseal import Unsealer
from daemons.org.warmup import OrgWarmup
from daemons.privacy.policy import org_policy
from daemons.runtime.config import DaemonConfig, FederationConfig, TrainingConfig
from daemons.runtime.metrics import Metrics
from daemons.runtime.overdue import OVERDUE_POLLS, overdue
from daemons.runtime.service import log_event
from daemons.runtime.task_setup import OrgTask, org_task
from daemons.verify.pins import dataset_digest, replay_pins
from models.schema import FederationSchema
from models.validation import Limits

log = logging.getLogger("fedchain.org")


class OrgRounds:
    """One org's view of the federation and the steps that move it forward."""

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
        self.no_blocks = NoBlockWatch(cfg.chain.no_block_warn_s)
        self.round_id = 0
        self.activity = "starting"  # what the org is doing now, for /healthz and the live view
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

    async def view(self) -> tuple[RoundView, RoundInfo | None]:
        """The current round on chain, joined with the ledger's submissions for it."""
        round_id = await self.chain.current_round_id()
        self.round_id = round_id
        self.metrics.current_round.set(round_id)
        info, now_s = await asyncio.gather(  # independent reads: one round trip
            self.chain.get_round(round_id) if round_id else _no_round(), self.chain.now_s()
        )
        subs = self.ledger.submissions(round_id)
        view = RoundView(
            round_id=round_id,
            status=info.status if info else RoundStatus.NONE,
            deadline=info.deadline if info else 0,
            min_updates=info.min_updates if info else 0,
            max_updates=info.max_updates if info else 0,
            num_updates=info.num_updates if info else 0,
            now_s=now_s,
            recorded=len(subs),
            pending=sum(1 for s in subs.values() if s.verdict is None),
            rounds=self.fed.rounds,
            **self._budget(round_id),
        )
        return view, info

    def _budget(self, round_id: int) -> dict[str, float]:
        """ε after one more round and the budget, for `decide` (nothing without a budget)."""
        if self.privacy is None or self.privacy.cfg.epsilon_budget <= 0:
            return {}
        epsilon = self.privacy.epsilon(self.ledger, round_id, next_round=True)
        return {"epsilon_next": epsilon, "epsilon_budget": self.privacy.cfg.epsilon_budget}

    async def step(self) -> Decision:
        """Decide and carry out one step; returns the decision (WAIT/DONE mean: idle).

        A step that takes longer than `poll_interval_s` x OVERDUE_POLLS logs a WARNING
        (and again as long as it lasts): an action the org waits on is visible."""
        view, info = await self.view()
        decision = decide(view)
        self.activity = activity_of(decision.action, view.round_id)
        self.no_blocks.observe(view, decision)
        if decision.action in (Action.WAIT, Action.DONE, Action.BUDGET):
            return decision
        log_event(
            log,
            logging.INFO,
            f"{decision.action.value}: {decision.reason}",
            round_id=view.round_id,
        )
        after_s = self.cfg.chain.poll_interval_s * OVERDUE_POLLS
        what = f"{decision.action.value} of round {view.round_id}"
        async with overdue(log, what, after_s, round_id=view.round_id):
            await self._act(decision, view, info)
        return decision

    async def _act(self, decision: Decision, view: RoundView, info: RoundInfo | None) -> None:
        """Carry out one decided step (open, judge, close or fail)."""
        if decision.action is Action.OPEN:
            await self.open_next(view.round_id, info)
        elif decision.action is Action.JUDGE:
            assert info is not None
            await self.judge_pending(info)
        elif decision.action is Action.CLOSE:
            assert info is not None
            await close_round(self.closer(), info)
        elif decision.action is Action.FAIL:
            await self.chain.fail_round(view.round_id)
            self.metrics.rounds.labels(outcome="failed").inc()
            if info is not None:
                duration_s = self.fed.round_duration_s
                await observe_settled(self.chain, self.metrics, duration_s, info, "failed")
            log_event(
                log,
                logging.WARNING,
                "round failed: too few updates by the deadline",
                round_id=view.round_id,
                num_updates=view.num_updates,
            )

    async def run_until_idle(self) -> Decision:
        """Step until there is nothing to do right now."""
        while True:
            decision = await self.step()
            if decision.action in (Action.WAIT, Action.DONE, Action.BUDGET):
                return decision

    # ---- opening -------------------------------------------------------------------------

    async def open_next(self, round_id: int, info: RoundInfo | None) -> None:
        """Publish the round config and open round `round_id + 1` on the base model."""
        await self.opener().open_next(round_id, info)

    async def publish_initial(self) -> tuple[str, bytes]:
        """Build the seeded round-0 model and put it to IPFS (same seed, same CID)."""
        return await self.opener().publish_initial()

    # ---- collecting ----------------------------------------------------------------------

    def record(self, round_id: int, sub: Submission) -> None:
        """Remember an `UpdateSubmitted` (idempotent) and, in the current round, start its fetch."""
        if round_id == self.round_id:
            self.prefetch.want(sub.cid, sub_digest(sub))
        if self.ledger.record(round_id, sub):
            log_event(
                log,
                logging.INFO,
                "update submitted",
                round_id=round_id,
                client=sub.client,
                cid=sub.cid,
            )

    async def judge_pending(self, info: RoundInfo) -> None:
        """Fetch and validate each recorded, unjudged update of the round, in client order."""
        await judge_pending(self.judge(), self.ledger, info)

    # ---- collaborators (built per step: tests and restarts may swap a setting) ----------

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

    # ---- helpers -------------------------------------------------------------------------

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


async def _no_round() -> None:
    return None
