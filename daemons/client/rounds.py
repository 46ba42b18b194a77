"""The client's reaction to `RoundOpened`: check, fetch, train (worker thread), put, submit.

Safe to run twice: it re-reads the contract first (current round, open, not yet submitted,
deadline by block time), keeps the encoded update in its state before putting it, and
submits through `TxSender` with the key `submit:<round>`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from nacl.public import PrivateKey

from contracts.errors import ContractRevert, DeadlinePassed, RoundNotOpen
from contracts.events import RoundClosed, RoundOpened
from contracts.state import RoundInfo, RoundStatus
from daemons.chain.port import Chain, submit_update_tx
from daemons.client.job import train_update
from daemons.client.prefetch import BasePrefetch
from daemons.client.warmup import LAST_CONFIG_KEY, Warmup
from daemons.errors import RejectedUpdate
from daemons.ipfs.blobs import BlobCache, BlobFetcher, Storage, raw_cid_digest
from daemons.privacy.envelope import Binding
from daemons.privacy.models import check_model_metadata, open_model
from daemons.privacy.policy import seal_for_round
from daemons.runtime.config import DaemonConfig
from daemons.runtime.metrics import Metrics
from daemons.runtime.service import crash_after_broadcast, crash_point, log_event
from daemons.runtime.task_setup import client_task
from daemons.wire.round_config import RoundConfig, decode_round_config
from models.codec import DecodedBlob, decode_blob
from models.data import Dataset
from models.errors import Rejected
from models.registry import DEFAULT_TASK
from models.rounds import PreviousUpdate
from models.schema import FederationSchema
from models.task import Task
from models.tasks.loader import zeros_template
from models.validation import validate_blob

log = logging.getLogger("fedchain.client")
KV = Any
A = TypeVar("A")
B = TypeVar("B")


class ClientRounds:
    """One client's round handling, over a chain, a blob store and its local data."""

    def __init__(
        self,
        cfg: DaemonConfig,
        chain: Chain,
        storage: Storage,
        kv: KV,
        cache: BlobCache,
        data: Dataset,
        metrics: Metrics,
        member_key: PrivateKey | None = None,
    ) -> None:
        self.cfg, self.chain, self.storage, self.kv = cfg, chain, storage, kv
        self.member_key = member_key  # opens models sealed to the members (docs/security.md)
        self.cache, self.data, self.metrics = cache, data, metrics
        self.round_id = 0
        self.activity = "waiting for a round"  # for /healthz and the testnet's live view
        self._trained = False  # the first training of a process compiles the jitted steps
        # how `train_update`'s arguments become the blob: a worker thread here; a client
        # host batches its clients' calls into one vmapped training (daemons/client/host_train.py)
        self.trainer: Callable[..., Awaitable[bytes]] = _train_in_thread
        self.warmup: Warmup | None = None  # compiling ahead of round 1 (client/warmup.py)
        self.task_ref = cfg.data.task if cfg.data is not None else DEFAULT_TASK
        self.prefetch = BasePrefetch()  # the next round's base, from `RoundClosed` (prefetch.py)

    def on_round_closed(self, event: RoundClosed) -> None:
        """Start fetching the closed round's model: the next round opens with it as its base."""
        ipfs = self.cfg.ipfs
        blobs = BlobFetcher(self.storage, self.cache, ipfs.timeout_s)
        cid, digest = event.model_cid, event.model_digest
        self.prefetch.start(
            event.round_id, digest, lambda: blobs.get(cid, digest, ipfs.max_blob_bytes)
        )

    async def on_round_opened(self, event: RoundOpened) -> None:
        """Handle a `RoundOpened` (possibly replayed or stale) for this client."""
        r = event.round_id
        info = await self._actionable(r)
        if info is None:
            return
        try:
            self.activity = f"fetching round {r}"
            blob = await self._update_blob(info)
        except Rejected as exc:
            self.activity = f"skipped round {r}"
            log_event(
                log,
                logging.ERROR,
                "round skipped: bad base model or round config",
                round_id=r,
                reason=getattr(exc, "reason", ""),
                error=str(exc),
            )
            return
        self.activity = f"submitting round {r}"
        await self._submit(info, blob)
        self.activity = f"submitted round {r}"
        await self._prune(r)

    async def _actionable(self, r: int) -> RoundInfo | None:
        """The round's info if this client should work on it now, else None (logged)."""
        current = await self.chain.current_round_id()
        self.round_id = current
        self.metrics.current_round.set(current)
        if r != current:
            return None
        info, submitted, now = await asyncio.gather(  # independent reads: one round trip
            self.chain.get_round(r),
            self.chain.has_submitted(r, self.chain.address),
            self.chain.now_s(),
        )
        if info.status is not RoundStatus.OPEN:
            return None
        if submitted:
            log_event(log, logging.INFO, "already submitted; skipping", round_id=r)
            return None
        if now > info.deadline:
            log_event(
                log,
                logging.WARNING,
                "round deadline already passed; not training",
                round_id=r,
                deadline=info.deadline,
                block_time=now,
            )
            return None
        return info

    async def _update_blob(self, info: RoundInfo) -> bytes:
        """The bytes to publish for this round: from state if already made, else train now.

        In an encrypted round that is the envelope sealed to the org and the auditors
        (docs/security.md); the plaintext update stays in the local cache (FedCurv reads it).
        """
        r = info.round_id
        sealed = self._cached(f"client:sealed:{r}")
        if sealed is not None:
            return sealed
        config_json, blob = None, self._cached(f"client:update:{r}")
        if blob is None:
            config_json, base_data = await _side_by_side(self._config(info), self._fetch_base(info))
            blob = await self._train(info, decode_round_config(config_json), base_data)
            self.kv.put(LAST_CONFIG_KEY, config_json.decode())  # the next start's warm-up
        if config_json is None:  # restarted between training and sealing
            config_json = await self._config(info)
        return self._seal(info, decode_round_config(config_json), blob)

    def _cached(self, kv_key: str) -> bytes | None:
        known = self.kv.get(kv_key)
        return self.cache.get(bytes.fromhex(known)) if known is not None else None

    async def _train(self, info: RoundInfo, config: RoundConfig, base_data: bytes) -> bytes:
        """Train from the base model by the round config; keep the update blob in state."""
        r = info.round_id
        task = client_task(self.task_ref, config.task, config.model)  # refuses a mismatch
        base = self._base(base_data, config, task)
        previous = self._previous(base)
        if self.warmup is not None and not self._trained:
            self.activity = f"compiling round {r} (warm-up)"
            self._trained = await self.warmup.wait()
        started = time.perf_counter()
        self.activity = f"{'training' if self._trained else 'compiling'} round {r}"
        log_event(
            log,
            logging.INFO,
            "training",
            round_id=r,
            samples=len(self.data),
            penalty=config.training.penalty,
        )
        args = (base, info.base_cid, config, self.data, self.chain.address, previous, task)
        blob = await self.trainer(*args)
        self.metrics.train_seconds.observe(time.perf_counter() - started)
        self._trained = True
        digest = self.cache.put(blob)
        self.kv.put(f"client:update:{r}", digest.hex())
        crash_point("after_train", r)
        return blob

    def _seal(self, info: RoundInfo, config: RoundConfig, blob: bytes) -> bytes:
        """The update sealed as the round config asks (kept in state), or `blob` as is."""
        binding = Binding(info.round_id, self.chain.address, info.base_cid)
        enc = self.cfg.encryption
        out = seal_for_round(
            blob, config.encryption, binding, enc.updates == "encrypted", enc.org_key
        )
        if out is not blob:
            self.kv.put(f"client:sealed:{info.round_id}", self.cache.put(out).hex())
        return out

    async def _config(self, info: RoundInfo) -> bytes:
        """The round config JSON, checked against the sha256 inside its raw-block CID."""
        digest = raw_cid_digest(info.config_cid)
        if digest is None:
            raise RejectedUpdate("round_config", f"{info.config_cid} is not a raw-block CIDv1")
        data: bytes = await self.storage.get(
            info.config_cid, digest, self.cfg.ipfs.max_blob_bytes, self.cfg.ipfs.timeout_s
        )
        return data

    async def _fetch_base(self, info: RoundInfo) -> bytes:
        """The base model's bytes (digest from chain, size cap), from the cache or IPFS."""
        ipfs = self.cfg.ipfs
        data = await self.prefetch.take(info.base_digest)
        if data is None:
            blobs = BlobFetcher(self.storage, self.cache, ipfs.timeout_s)
            data = await blobs.get(info.base_cid, info.base_digest, ipfs.max_blob_bytes)
        self.metrics.bytes.labels(direction="in").inc(len(data))
        return data

    def _base(self, data: bytes, config: RoundConfig, task: Task) -> DecodedBlob:
        """Open (if sealed to the members) and validate the base model against the shapes of
        the task's parameter template.

        A sealed model this client cannot open (no key, not a recipient, tampered, another
        federation's) raises `EnvelopeRejected` with its reason: the round is skipped.
        """
        max_bytes = self.cfg.ipfs.max_blob_bytes
        opened = open_model(data, self.member_key, self.cfg.chain.contract, max_bytes)
        schema = FederationSchema(zeros_template(task), config.training.penalty)
        limits = schema.model_limits(max_bytes)
        expected = {"kind": "model", "model_name": config.model}
        base = validate_blob(opened.plaintext, schema.model_template(), expected, limits)
        check_model_metadata(opened, base.metadata)
        return base

    def _previous(self, base: DecodedBlob) -> PreviousUpdate | None:
        """FedCurv: this client's u, v from the round that produced the base model."""
        known = self.kv.get(f"client:update:{base.metadata.round_id}")
        cached = self.cache.get(bytes.fromhex(known)) if known else None
        if cached is None:
            return None
        sections = decode_blob(cached).sections
        if "u" not in sections or "v" not in sections:
            return None
        return PreviousUpdate(sections["u"], sections["v"])

    async def _prune(self, round_id: int) -> None:
        """Keep local copies for the last two rounds only (FedCurv needs the previous update)."""
        if round_id > 1:
            self.cache.drop((await self.chain.get_round(round_id - 1)).base_digest)
        for kind in ("update", "sealed"):
            old = self.kv.get(f"client:{kind}:{round_id - 2}")
            if old:
                self.cache.drop(bytes.fromhex(old))

    async def _submit(self, info: RoundInfo, blob: bytes) -> None:
        """Put the update to IPFS and submit it; a refusal by the chain is logged, not fatal."""
        r = info.round_id
        stored = await self.storage.put(blob)
        self.metrics.bytes.labels(direction="out").inc(len(blob))
        delay = float(os.environ.get("FEDCHAIN_SUBMIT_DELAY_S", "0") or 0)
        if delay > 0:  # fault injection for tests: make this client late
            await asyncio.sleep(delay)
        num_samples = len(self.data)
        crash_point("after_put", r)
        args = (r, stored.cid, stored.digest, num_samples)
        try:
            await crash_after_broadcast(self.chain, "after_submit_sent", r, submit_update_tx(*args))
            await self.chain.submit_update(*args)
        except ContractRevert as exc:
            self._refused(r, exc)
            return
        self.metrics.updates_accepted.inc()
        log_event(
            log,
            logging.INFO,
            "update submitted",
            round_id=r,
            cid=stored.cid,
            num_samples=num_samples,
        )

    def _refused(self, round_id: int, exc: ContractRevert) -> None:
        """Log a submission the contract refused (by its error's name) and carry on."""
        name = type(exc).__name__
        late = " (too late)" if isinstance(exc, DeadlinePassed | RoundNotOpen) else ""
        self.metrics.submissions_refused.labels(error=name).inc()
        log_event(
            log,
            logging.WARNING,
            f"submission refused by the contract: {name}{late}",
            round_id=round_id,
            error=name,
            detail=str(exc),
        )


async def _side_by_side(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Await both concurrently; the first failure propagates as is and cancels the other."""
    tasks = (asyncio.ensure_future(first), asyncio.ensure_future(second))
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return tasks[0].result(), tasks[1].result()


async def _train_in_thread(*args: Any) -> bytes:
    """`train_update(*args)` in a worker thread, so the event loop stays responsive."""
    return await asyncio.to_thread(train_update, *args)
