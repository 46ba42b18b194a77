"""Settling a round: aggregate the accepted updates, publish model + manifest, closeRound.

Policy when the chain has enough submissions but the org rejected some: the round closes
with the valid ones; if none is valid it closes with the base model kept (params and Fisher
unchanged, a new blob for this round) and the manifest's `note` says so. `failRound` is
only for too few on-chain submissions, which the contract itself enforces.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from contracts.state import RoundInfo
from daemons.chain.port import Chain, close_round_tx
from daemons.errors import FedchainError
from daemons.ipfs.blobs import BlobCache, BlobFetcher, Storage
from daemons.org.collect import base_blob, influence_bounds
from daemons.org.evaluation import round_extras
from daemons.org.ledger import Ledger, Submission, sub_digest
from daemons.org.model_step import StepResult, aggregate_step, model_metadata
from daemons.org.models_seal import OrgModels
from daemons.org.observe import observe_settled
from daemons.org.privacy import OrgPrivacy
from daemons.org.retention import RoundBlobs, cids_to_unpin
from daemons.org.unseal import Unsealer, public_train
from daemons.org.warmup import OrgWarmup
from daemons.runtime.config import FederationConfig
from daemons.runtime.metrics import Metrics
from daemons.runtime.service import crash_after_broadcast, crash_point, log_event
from daemons.wire.manifest import Excluded, Included, Manifest, encode_manifest
from models.codec import decode_blob, encode_blob
from models.dp import DpFedAvg
from models.strategies import ClientUpdate
from models.task import Task

log = logging.getLogger("fedchain.org")
T = TypeVar("T")


@dataclass(frozen=True)
class RoundCloser:
    """What settling a round reads and writes: the chain, the ledger, IPFS and the cache, the
    federation's settings, the task and its evaluation data, and the metrics."""

    chain: Chain
    ledger: Ledger
    storage: Storage
    cache: BlobCache
    blobs: BlobFetcher
    unsealer: Unsealer
    put: Callable[[bytes], Awaitable[Any]]  # to IPFS (pinned) and the cache, bytes counted
    metrics: Metrics
    fed: FederationConfig
    fisher_gamma: float
    with_fisher: bool
    task: Task
    eval_data: Any
    heldout: dict[str, Any]
    models: OrgModels
    privacy: OrgPrivacy | None
    warmup: OrgWarmup | None
    max_bytes: int


async def close_round(org: RoundCloser, info: RoundInfo) -> None:
    """Publish (or reuse the published) model and manifest, then send closeRound."""
    r = info.round_id
    published = org.ledger.get_json(f"published:{r}")
    if published is None:
        published = await _publish(org, info)
        org.ledger.put_json(f"published:{r}", published)
        crash_point("after_publish", r)
    args = (
        r,
        published["model_cid"],
        bytes.fromhex(published["model_digest"]),
        published["manifest_cid"],
    )
    await crash_after_broadcast(org.chain, "after_close_sent", r, close_round_tx(*args))
    await org.chain.close_round(*args)
    org.metrics.rounds.labels(outcome="closed").inc()
    await observe_settled(
        org.chain,
        org.metrics,
        org.fed.round_duration_s,
        info,
        "closed",
        published.get("metrics"),
    )
    log_event(
        log,
        logging.INFO,
        "round closed",
        round_id=r,
        model_cid=published["model_cid"],
        manifest_cid=published["manifest_cid"],
        **published["headline"],
    )
    await _retain(org, r)
    _forget_local(org, info)


async def _publish(org: RoundCloser, info: RoundInfo) -> dict[str, Any]:
    """Aggregate, evaluate, put the model blob and the manifest; returns what was put."""
    fed = org.fed
    started = time.perf_counter()
    base = await base_blob(org.blobs, org.models, org.max_bytes, info)
    subs = org.ledger.submissions(info.round_id)
    accepted = sorted((s for s in subs.values() if s.accepted), key=lambda s: s.client)
    updates = [await _load_update(org, info, s) for s in accepted]
    fetch_s = time.perf_counter() - started
    crash_point("mid_aggregate", info.round_id)
    args = (fed.strategy, fed.strategy_options, org.fisher_gamma, org.eval_data)
    dp = _central_dp(org, info.round_id, subs)
    # under central DP, clipping bounds every client's influence; the round-level screen
    # would let one client's update decide whether another's is merged (docs/privacy.md)
    bounds = influence_bounds(fed) if dp is None else None
    step = (*args, org.with_fisher, bounds, org.task, dp, org.heldout)
    if org.warmup is not None:
        await org.warmup.evaluated()  # its compilations, not a second copy of them
    result = await asyncio.to_thread(aggregate_step, base, updates, *step)
    org.metrics.aggregate_seconds.observe(result.aggregate_s)
    _log_rejected(org, info, result)
    started = time.perf_counter()
    model_name = org.task.model
    meta = model_metadata(
        info.round_id, org.chain.address, info.base_cid, result.num_samples, model_name
    )
    blob = encode_blob(result.sections, meta)
    params = result.sections["params"]
    # the per-class pass (CPU, a worker thread) runs while the node stores the model (I/O)
    (model, publish_s), (extras, per_class_s) = await asyncio.gather(
        _timed(org.put(org.models.seal(blob, info.round_id, info.base_cid)), started),
        _timed(
            asyncio.to_thread(
                round_extras, base, org.task, params, org.eval_data, fed.per_class_metrics
            )
        ),
    )
    manifest = _with_privacy(org, _manifest(org, info, model.cid, subs, result), dp)
    timings = {"fetch_s": fetch_s, "aggregate_s": result.aggregate_s}
    timings |= {"evaluate_s": result.evaluate_s, "publish_s": publish_s}
    timings["per_class_s"] = per_class_s
    manifest = replace(manifest, **extras)
    manifest_cid = (await org.put(encode_manifest(_with_timings(manifest, timings)))).cid
    return {
        "model_cid": model.cid,
        "model_digest": model.digest.hex(),
        "manifest_cid": manifest_cid,
        "headline": dict(list(result.metrics.items())[:1]),  # the task's headline metric
        "metrics": result.metrics,
    }


async def _timed(work: Awaitable[T], started: float | None = None) -> tuple[T, float]:
    """`work`'s result and the seconds since `started` (default: now) when it was done."""
    started = time.perf_counter() if started is None else started
    result = await work
    return result, time.perf_counter() - started


async def _load_update(org: RoundCloser, info: RoundInfo, sub: Submission) -> ClientUpdate:
    """An accepted update's tensors (from the local cache; IPFS if the cache lost it)."""
    digest = sub_digest(sub)
    data = await org.blobs.get(sub.cid, digest, org.max_bytes)
    sections = decode_blob(await org.unsealer.plaintext(info, sub, data)).sections
    return ClientUpdate.from_sections(sub.client, sub.num_samples, sections)


def _log_rejected(org: RoundCloser, info: RoundInfo, result: StepResult) -> None:
    """Count and log the updates the round-level bounds rejected (validation, not strategy)."""
    for client, (reason, detail) in sorted(result.rejected.items()):
        org.metrics.updates_rejected.labels(reason=reason).inc()
        log_event(
            log,
            logging.WARNING,
            "update rejected",
            round_id=info.round_id,
            client=client,
            reason=reason,
            detail=detail,
        )


def _manifest(
    org: RoundCloser,
    info: RoundInfo,
    model_cid: str,
    subs: dict[str, Submission],
    result: StepResult,
) -> Manifest:
    entries = manifest_entries(
        subs, result.weights, result.excluded, result.rejected, org.privacy is not None
    )
    included, excluded = entries
    return Manifest(
        round_id=info.round_id,
        base_cid=info.base_cid,
        model_cid=model_cid,
        strategy=org.fed.strategy,
        included=included,
        excluded=excluded,
        metrics=result.metrics,
        note=result.note,
        headline_metric=next(iter(result.metrics)),
        bounds=_bounds(org),
        heldout=result.heldout,
    )


def _bounds(org: RoundCloser) -> dict[str, float]:
    """The influence bounds in force (0 = off), recorded so an auditor can replay the round.

    Under central DP the round-level screen is off (`max_norm_ratio` 0, `max_client_share` 1):
    clipping bounds each client instead (docs/privacy.md).
    """
    fed = org.fed
    keys = ("max_update_norm", "max_norm_ratio", "max_samples_per_client", "max_client_share")
    bounds = {k: float(getattr(fed, k)) for k in keys}
    if org.privacy is not None and org.privacy.cfg.mode == "central":
        bounds |= {"max_norm_ratio": 0.0, "max_client_share": 1.0}
    return bounds


def _central_dp(org: RoundCloser, round_id: int, subs: dict[str, Submission]) -> DpFedAvg | None:
    """The round's central DP-FedAvg step, when the federation runs central DP."""
    if org.privacy is None or org.privacy.cfg.mode != "central":
        return None
    return org.privacy.central(round_id, [subs[c] for c in sorted(subs)])


def _with_privacy(org: RoundCloser, m: Manifest, dp: DpFedAvg | None) -> Manifest:
    """The manifest with the DP parameters and ε after this round (when DP is on)."""
    if org.privacy is None:
        return m
    epsilon = org.privacy.epsilon(org.ledger, m.round_id)
    denominator = None if dp is None else dp.denominator
    return replace(m, privacy=org.privacy.record(epsilon, m.round_id, denominator))


def manifest_entries(
    subs: dict[str, Submission],
    weights: dict[str, float],
    strategy_excluded: dict[str, str],
    rejected: dict[str, tuple[str, str]] | None = None,
    private: bool = False,
) -> tuple[tuple[Included, ...], tuple[Excluded, ...]]:
    """Every submission, in client order, as included (with its weight) or excluded (why).

    `rejected`: the round-level influence bounds' verdicts (reason, detail). Pure, so
    `fedchain verify` rebuilds the entries from its own verdicts and compares. `private`: a
    DP federation, whose manifests keep no per-client training facts (`public_train`).
    """
    included, excluded = [], []
    for client, sub in sorted(subs.items()):
        if client in (rejected or {}):
            reason, detail = (rejected or {})[client]
            excluded.append(Excluded(client, sub.cid, reason, detail))
        elif client in weights:
            included.append(
                Included(
                    client,
                    sub.cid,
                    sub.digest,
                    sub.num_samples,
                    weights[client],
                    public_train(sub.train, private),
                )
            )
        elif sub.accepted:
            reason = strategy_excluded.get(client, "not_weighted")
            excluded.append(Excluded(client, sub.cid, "strategy", reason))
        else:
            excluded.append(Excluded(client, sub.cid, sub.verdict or "unjudged", sub.detail))
    return tuple(included), tuple(excluded)


def _with_timings(m: Manifest, timings: dict[str, float]) -> Manifest:
    return replace(m, timings_s={k: round(v, 6) for k, v in timings.items()})


def _forget_local(org: RoundCloser, info: RoundInfo) -> None:
    """Drop the local copies of this round's updates and base (IPFS still has what is pinned)."""
    for sub in org.ledger.submissions(info.round_id).values():
        org.cache.drop(sub_digest(sub))
    org.cache.drop(info.base_digest)


async def _retain(org: RoundCloser, round_id: int) -> None:
    """Unpin the org's blobs of rounds older than the newest `retention_rounds` (0: keep all)."""
    keep = org.fed.retention_rounds
    if keep < 1 or round_id <= keep:
        return
    history = []
    infos = await asyncio.gather(*(org.chain.get_round(r) for r in range(1, round_id + 1)))
    for r, info in enumerate(infos, start=1):  # one round trip, not one per past round
        if r == 1:
            history.append(RoundBlobs(0, info.base_cid))
        extras = tuple(c for c in (info.manifest_cid, info.config_cid) if c)
        subs = org.ledger.submissions(r).values()
        updates = tuple(sorted(s.cid for s in subs if s.accepted))
        history.append(RoundBlobs(r, info.model_cid or None, updates, extras))
    for cid in cids_to_unpin(history, keep):
        try:
            await org.storage.unpin(cid)
        except FedchainError as exc:  # best effort: already unpinned after a restart, say
            log_event(log, logging.DEBUG, "unpin skipped", cid=cid, error=str(exc))
