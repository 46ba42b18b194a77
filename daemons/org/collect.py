"""Judging one submitted update: fetch (digest, size cap, timeout), then validate the blob.

A bad update is data, not an exception: every rejection becomes a verdict with a short
reason code that lands in the ledger, the metrics and the round's manifest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contracts.state import RoundInfo
from daemons.errors import RejectedUpdate
from daemons.ipfs.blobs import BlobCache, BlobFetcher, Storage
from daemons.org.ledger import ACCEPTED, Ledger, Submission, sub_digest
from daemons.org.models_seal import OrgModels
from daemons.org.prefetch import Prefetcher
from daemons.org.unseal import Unsealer, public_train
from daemons.runtime.config import FederationConfig
from daemons.runtime.metrics import Metrics
from daemons.runtime.service import crash_point, log_event
from models.codec import DecodedBlob, decode_blob
from models.errors import BlobRejected
from models.influence import InfluenceBounds
from models.schema import FederationSchema
from models.validation import Limits, validate_blob

log = logging.getLogger("fedchain.org")

SAMPLES = "samples"  # a num_samples claim above federation.max_samples_per_client


@dataclass(frozen=True)
class Verdict:
    """ACCEPTED or a reason code, a human detail, and the client's training facts."""

    code: str  # ACCEPTED or the reason code of a rejection
    detail: str = ""
    train: dict[str, float] = field(default_factory=dict)


async def base_blob(
    blobs: BlobFetcher, models: OrgModels, max_bytes: int, info: RoundInfo
) -> DecodedBlob:
    """The round's base model (the org published it, so it is normally in the cache)."""
    data = await blobs.get(info.base_cid, info.base_digest, max_bytes)
    return decode_blob(models.open(data, max_bytes))


@dataclass(frozen=True)
class UpdateJudge:
    """What judging one update reads and writes: IPFS (through the prefetcher), the cache,
    the round's base, the blob layout and bounds, and the metrics."""

    prefetch: Prefetcher
    unsealer: Unsealer
    blobs: BlobFetcher
    storage: Storage
    cache: BlobCache
    models: OrgModels
    metrics: Metrics
    schema: FederationSchema
    limits: Limits
    model_name: str
    max_samples: int  # federation.max_samples_per_client (0: no cap)
    max_bytes: int
    timeout_s: float

    async def judge(self, info: RoundInfo, sub: Submission) -> Verdict:
        """Fetch and validate one update; never raises for a bad update, only for I/O trouble."""
        verdict = await self._judge(info, sub)
        fields: dict[str, Any] = {"round_id": info.round_id, "client": sub.client, "cid": sub.cid}
        if verdict.code == ACCEPTED:
            self.metrics.updates_accepted.inc()
            log_event(log, logging.INFO, "update accepted", **fields)
        else:
            self.metrics.updates_rejected.labels(reason=verdict.code).inc()
            log_event(
                log,
                logging.WARNING,
                "update rejected",
                reason=verdict.code,
                detail=verdict.detail,
                **fields,
            )
        return verdict

    async def _judge(self, info: RoundInfo, sub: Submission) -> Verdict:
        from daemons.ipfs.client import IpfsTimeout

        digest = sub_digest(sub)
        too_many = samples_verdict(sub.num_samples, self.max_samples)
        if too_many is not None:
            return too_many
        try:
            data = await self.prefetch.get(sub.cid, digest, sub.client)
        except RejectedUpdate as exc:
            return Verdict(exc.reason, exc.detail or str(exc))
        except IpfsTimeout as exc:
            return Verdict("unavailable", f"not retrievable within {self.timeout_s} s: {exc}")
        self.metrics.bytes.labels(direction="in").inc(len(data))
        try:
            plain = await self.unsealer.plaintext(info, sub, data)
        except RejectedUpdate as exc:  # sealed to another key, copied, tampered, not encrypted
            self.cache.drop(digest)
            return Verdict(exc.reason, exc.detail or str(exc))
        base = await base_blob(self.blobs, self.models, self.max_bytes, info)
        # shapes from the task's parameter template; values from the base (norm of the change)
        template = self.schema.update_template(base.sections["params"])
        claim = UpdateClaim(info.round_id, sub.client, info.base_cid, sub.num_samples)
        sealed = plain is not data
        verdict, _ = check_update(plain, template, claim, self.model_name, self.limits, sealed)
        if verdict.code != ACCEPTED:
            self.cache.drop(digest)
            return verdict
        # the org keeps what it merges: an accepted update stays retrievable for audit even
        # when its client goes offline (unpinned with its round, see `close._retain`)
        await self.storage.pin(sub.cid, timeout_s=self.timeout_s)
        return verdict


async def judge_pending(judge: UpdateJudge, ledger: Ledger, info: RoundInfo) -> None:
    """Fetch and validate each recorded, unjudged update of the round, in client order.

    All their fetches start at once (bounded by the prefetcher); the verdicts are still
    reached and written one by one in client order.
    """
    subs = ledger.submissions(info.round_id)
    pending = sorted(c for c, s in subs.items() if s.verdict is None)
    for client in pending:
        judge.prefetch.want(subs[client].cid, sub_digest(subs[client]), client)
    for client in pending:
        verdict = await judge.judge(info, subs[client])
        ledger.judge(info.round_id, client, verdict.code, verdict.detail, train=verdict.train)
        crash_point("after_fetch", info.round_id)


@dataclass(frozen=True)
class UpdateClaim:
    """What the chain says an update is: its round, client, base and sample count."""

    round_id: int
    client: str
    base_cid: str
    num_samples: int


def check_update(
    plain: bytes,
    template: Mapping[str, Any],
    claim: UpdateClaim,
    model_name: str,
    limits: Limits,
    sealed: bool = False,
) -> tuple[Verdict, DecodedBlob | None]:
    """Validate one (opened) update against its template and claim: a verdict, and the blob.

    Pure (no I/O), so `fedchain verify` re-runs exactly the org's judgement. `sealed`: it
    came encrypted, so only its timings may be published (`public_train`).
    """
    expected = {
        "kind": "update",
        "round_id": claim.round_id,
        "client": claim.client,
        "base_cid": claim.base_cid,
        "num_samples": claim.num_samples,
        "model_name": model_name,
    }
    try:
        decoded = validate_blob(plain, template, expected, limits)
    except BlobRejected as exc:
        return Verdict(exc.reason, exc.detail), None
    return Verdict(ACCEPTED, "", public_train(decoded.metadata.train_metrics, sealed)), decoded


def samples_verdict(num_samples: int, max_samples: int) -> Verdict | None:
    """Reject a `num_samples` claim above `max_samples` (0: no cap) before fetching anything.

    The claim is the client's own word and FedAvg weights by it: 10^15 would take the model.
    """
    if max_samples > 0 and num_samples > max_samples:
        detail = f"num_samples {num_samples} > federation.max_samples_per_client {max_samples}"
        return Verdict(SAMPLES, detail)
    return None


def org_limits(schema: FederationSchema, fed: FederationConfig, max_bytes: int) -> Limits:
    """Blob bounds for updates (pinned in the round config for replay); the Fisher may be left
    out where the federation does not use it."""
    max_norm = fed.max_update_norm if fed.max_update_norm > 0 else None
    return schema.update_limits(max_bytes, max_norm=max_norm)


def influence_bounds(fed: FederationConfig) -> InfluenceBounds:
    """The round-level bounds of `[federation]` (0 = off for the ratio, 1 = off for the share)."""
    ratio = fed.max_norm_ratio if fed.max_norm_ratio > 0 else None
    share = fed.max_client_share if fed.max_client_share < 1 else None
    return InfluenceBounds(max_norm_ratio=ratio, max_share=share)
