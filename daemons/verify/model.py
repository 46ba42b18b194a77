"""Re-running the org's merge (`models.rounds.server_update`); its bytes against the chain's.

The model blob's bytes are a function of the base blob (params, Fisher, a stateful
strategy's `server_state` carried from the previous round), the included updates, the
strategy and its options, `fisher_gamma`, whether the Fisher is kept, and the metadata
(round, org address, base CID, included sample count, model name). Evaluation metrics are
not in the blob: they live in the manifest and are checked by re-evaluation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from daemons.org.close import manifest_entries
from daemons.org.model_step import eval_metrics, model_metadata
from daemons.verify.checks import DIFFERS, MISMATCH, OK, Check, mismatch, ok
from daemons.verify.facts import RoundFacts
from daemons.verify.updates import Judged
from daemons.wire.manifest import Excluded, Included, Manifest
from daemons.wire.round_config import RoundConfig
from models import pytree
from models.codec import DecodedBlob, decode_blob, encode_blob
from models.data import Dataset
from models.errors import BlobRejected
from models.influence import InfluenceBounds
from models.rounds import Sections, ServerReport, server_update
from models.strategies import Strategy, get_strategy


@dataclass(frozen=True)
class Replayed:
    """The replayed model: its sections, the merge's report, its bytes, the checks it gave."""

    sections: Sections
    report: ServerReport
    blob: bytes
    checks: tuple[Check, ...]


def replay_model(
    facts: RoundFacts,
    cfg: RoundConfig,
    base: DecodedBlob,
    judged: Judged,
    manifest: Manifest,
    strategy: tuple[str, Mapping[str, Any]],
    tolerance: float | None,
    bounds: InfluenceBounds | None = None,
    dp: Strategy | None = None,
) -> Replayed:
    """Merge the updates the replay accepted; compare weights, exclusions and model digest.

    `tolerance`: None on the pinned platform (bit-identity required), else the largest
    |difference| accepted as "differs" rather than MISMATCH. `dp`: a central-DP round's
    DP-FedAvg step (rebuilt with the org's secret), which replaces the named strategy.
    """
    assert facts.closed is not None
    name, options = strategy
    gamma = cfg.training.fisher_gamma
    strategy_step = dp if dp is not None else get_strategy(name, **dict(options))
    merge = (strategy_step, gamma, cfg.fisher, bounds)
    sections, report = server_update(base.sections, judged.updates, *merge)
    entries = manifest_entries(judged.subs, report.weights, report.excluded, report.rejected)
    checks = [_entries_check(entries, manifest)]
    meta = model_metadata(
        facts.round_id, facts.closer, facts.opened.base_cid, report.num_samples, cfg.model
    )
    blob = encode_blob(sections, meta)
    checks.append(_digest_check(facts, blob, sections, tolerance))
    return Replayed(sections, report, blob, tuple(checks))


def _entries_check(
    expected: tuple[tuple[Included, ...], tuple[Excluded, ...]], manifest: Manifest
) -> Check:
    """The strategy's weights and exclusions, re-derived, against the manifest's."""
    want_in = {e.client: e for e in expected[0]}
    have_in = {e.client: e for e in manifest.included}
    want_out = {
        e.client: (e.reason, e.detail if e.reason == "strategy" else "") for e in expected[1]
    }
    have_out = {
        e.client: (e.reason, e.detail if e.reason == "strategy" else "") for e in manifest.excluded
    }
    wrong = []
    for client in sorted(set(want_in) | set(have_in)):
        a, b = want_in.get(client), have_in.get(client)
        if a is None:
            wrong.append(f"{client} included in the manifest but not by the replay")
        elif b is None:
            wrong.append(f"{client} included by the replay but not in the manifest")
        elif a.weight != b.weight:
            wrong.append(f"{client} weight {b.weight!r} in the manifest, {a.weight!r} replayed")
        elif a != b:
            wrong.append(f"{client} entry differs: manifest {b}, replayed {a}")
    for client in sorted(set(want_out) | set(have_out)):
        if (
            client not in want_in
            and client not in have_in
            and want_out.get(client) != have_out.get(client)
        ):
            wrong.append(
                f"{client} excluded as {have_out.get(client)}, replayed {want_out.get(client)}"
            )
    if wrong:
        return mismatch("weights", "; ".join(wrong))
    return ok("weights", f"{len(want_in)} included, {len(want_out)} excluded, as in the manifest")


def _digest_check(
    facts: RoundFacts, blob: bytes, sections: Sections, tolerance: float | None
) -> Check:
    """sha256 of the replayed blob against the chain's model digest; else how far apart."""
    assert facts.closed is not None
    digest = hashlib.sha256(blob).digest()
    onchain = facts.model_sha256 or facts.closed.model_digest  # sealed: the plaintext's
    if digest == onchain:
        return ok("model", f"bit-identical (sha256 0x{digest.hex()[:16]}…)")
    head = f"replayed sha256 0x{digest.hex()[:16]}… ≠ on-chain 0x{onchain.hex()[:16]}…"
    if facts.model.data is None:
        return mismatch(
            "model",
            f"{head}; the published model is not retrievable: "
            f"{facts.model.reason} {facts.model.detail}",
        )
    try:
        published = decode_blob(facts.model.data)
    except BlobRejected as exc:
        return mismatch("model", f"{head}; the published model does not parse: {exc}")
    meta = _metadata_differences(published, blob)
    diff, where = max_abs_difference(sections, published.sections)
    detail = f"{head}; max |Δ| = {diff:.6g}" + (f" at {where}" if where else "") + meta
    if tolerance is not None and not meta and diff <= tolerance:
        return Check("model", DIFFERS, detail + f" (≤ tolerance {tolerance:g}, other platform)")
    return mismatch("model", detail)


def _metadata_differences(published: DecodedBlob, replayed_blob: bytes) -> str:
    ours, theirs = decode_blob(replayed_blob).metadata, published.metadata
    names = ("kind", "round_id", "client", "base_cid", "num_samples", "model_name")
    diffs = [
        f"{n} {getattr(theirs, n)!r} (replayed {getattr(ours, n)!r})"
        for n in names
        if getattr(ours, n) != getattr(theirs, n)
    ]
    return "; metadata: " + ", ".join(diffs) if diffs else ""


def max_abs_difference(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> tuple[float, str]:
    """Largest |a - b| over every tensor of two section dicts (inf where keys or shapes differ)."""
    a, b = pytree.flatten(dict(ours)), pytree.flatten(dict(theirs))
    if set(a) != set(b):
        missing = sorted(set(a) ^ set(b))
        return float("inf"), f"tensors only on one side: {missing[:3]}"
    worst, where = 0.0, ""
    for key in sorted(a):
        x, y = np.asarray(a[key], np.float64), np.asarray(b[key], np.float64)
        if x.shape != y.shape:
            return float("inf"), f"{key} shape {y.shape} vs {x.shape}"
        d = float(np.max(np.abs(x - y))) if x.size else 0.0
        if d > worst:
            worst, where = d, key
    return worst, where


def metrics_check(
    name: str,
    model: Any,
    params: Mapping[str, Any],
    data: Dataset,
    recorded: Mapping[str, float],
    tolerance: float | None,
) -> Check:
    """Re-evaluate `params` on `data` and compare with the manifest's metrics for it."""
    got = eval_metrics(model, params, data)
    deltas = {k: abs(got[k] - float(recorded.get(k, float("nan")))) for k in got}
    extra = sorted(set(recorded) - set(got))
    if extra:
        detail = f"the manifest records metrics the task does not compute: {extra}"
        return Check(name, MISMATCH, detail, got)
    shown = ", ".join(f"{k} {got[k]:.4f}" for k in list(got)[:2])
    if all(d == 0 for d in deltas.values()):
        return Check(name, OK, f"{shown} re-evaluated", got)
    delta = ", ".join(f"|Δ{k}| = {d:.3g}" for k, d in deltas.items() if d != 0)
    claims = ", ".join(f"{k} {recorded.get(k)!r} (re-evaluated {got[k]!r})" for k in got)
    if tolerance is not None and max(deltas.values()) <= tolerance and deltas["num_samples"] == 0:
        return Check(name, DIFFERS, f"{delta} (other platform)", got)
    return Check(name, MISMATCH, f"{delta}: {claims}", got)
