"""Fold chain events, manifests and blob facts into one record per round (pure; no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from daemons.testnet.facts import Gas, headline_of


@dataclass(frozen=True)
class BlobFacts:
    """What the report learned by fetching a blob: its size and the client's train metrics."""

    size: int
    train_metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class UpdateRecord:
    """One `UpdateSubmitted`, with what the manifest and the blob said about it."""

    client: str
    cid: str
    digest: str
    num_samples: int
    status: str = "pending"  # pending | included | excluded
    reason: str = ""
    weight: float | None = None
    size: int | None = None
    train: Mapping[str, float] = field(default_factory=dict)
    seen_s: float | None = None  # seconds after the round opened when it was seen on chain


@dataclass(frozen=True)
class RoundRecord:
    """Everything the report and the progress display know about one round."""

    round_id: int
    status: str  # open | closed | failed
    max_updates: int
    base_cid: str
    base_digest: str
    updates: tuple[UpdateRecord, ...] = ()
    model_cid: str = ""
    model_digest: str = ""
    manifest_cid: str = ""
    # every metric of the task's evaluation, and the name of its headline (the manifest's
    # "headline_metric"; "" before the round's manifest is read)
    metrics: Mapping[str, float] = field(default_factory=dict)
    headline: str = ""
    per_class: Mapping[str, Sequence[float | None]] = field(default_factory=dict)
    baseline: Mapping[str, Any] = field(default_factory=dict)
    timings_s: Mapping[str, float] = field(default_factory=dict)
    wall_s: float | None = None
    bytes_moved: int | None = None
    gas: Gas | None = None
    deadline: int = 0
    privacy: Mapping[str, Any] = field(default_factory=dict)  # the manifest's DP record

    @property
    def epsilon(self) -> float | None:
        """ε spent after this round, when the federation runs DP (docs/privacy.md)."""
        eps = self.privacy.get("epsilon")
        return None if eps is None else float(eps)  # "inf" parses too

    # the forgetting ledger: metrics on each held-out set of an earlier task (manifest)
    heldout: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get("accuracy")

    @property
    def loss(self) -> float | None:
        return self.metrics.get("loss")

    @property
    def headline_value(self) -> float | None:
        """The value of the round's headline metric (None while unknown)."""
        return self.metrics.get(self.headline) if self.headline else None

    @property
    def last_update_s(self) -> float | None:
        """When the last update of the round was seen, in seconds after the round opened."""
        times = [u.seen_s for u in self.updates if u.seen_s is not None]
        return max(times) if times else None

    @property
    def slowest_train_s(self) -> float | None:
        """The longest `train_s` any included client reported (the round's critical path)."""
        times = [u.train["train_s"] for u in self.updates if "train_s" in u.train]
        return max(times) if times else None


def hex0x(raw: bytes) -> str:
    """Digest bytes as the `0x…` text used in JSON and logs."""
    return "0x" + raw.hex()


def fold_events(events: Iterable[Any]) -> dict[int, RoundRecord]:
    """Rounds from contract events in chain order (dataclasses of `contracts.events`)."""
    rounds: dict[int, RoundRecord] = {}
    for ev in events:
        kind = type(ev).__name__
        if kind == "RoundOpened":
            rounds[ev.round_id] = RoundRecord(
                ev.round_id,
                "open",
                ev.max_updates,
                ev.base_cid,
                hex0x(ev.base_digest),
                deadline=ev.deadline,
            )
        elif kind == "UpdateSubmitted" and ev.round_id in rounds:
            r = rounds[ev.round_id]
            upd = UpdateRecord(ev.client, ev.update_cid, hex0x(ev.digest), ev.num_samples)
            rounds[ev.round_id] = replace(r, updates=(*r.updates, upd))
        elif kind == "RoundClosed" and ev.round_id in rounds:
            rounds[ev.round_id] = replace(
                rounds[ev.round_id],
                status="closed",
                model_cid=ev.model_cid,
                model_digest=hex0x(ev.model_digest),
                manifest_cid=ev.manifest_cid,
            )
        elif kind == "RoundFailed" and ev.round_id in rounds:
            rounds[ev.round_id] = replace(rounds[ev.round_id], status="failed")
    return rounds


def apply_manifest(r: RoundRecord, manifest: Mapping[str, Any]) -> RoundRecord:
    """Mark updates included/excluded and take the org's test metrics and timings."""
    included = {d["client"].lower(): d for d in manifest.get("included", [])}
    excluded = {d["client"].lower(): d for d in manifest.get("excluded", [])}
    updates = []
    for u in r.updates:
        key = u.client.lower()
        if key in included:
            inc = included[key]
            u = replace(u, status="included", weight=float(inc.get("weight", 0.0)))
            u = replace(u, train={**u.train, **inc.get("train", {})})
        elif key in excluded:
            u = replace(u, status="excluded", reason=str(excluded[key].get("reason", "")))
        updates.append(u)
    metrics = _floats(manifest.get("metrics", {}))
    return replace(
        r,
        updates=tuple(updates),
        metrics=metrics,
        headline=headline_of(str(manifest.get("headline_metric", "")), metrics),
        per_class=dict(manifest.get("per_class", {})),
        baseline=dict(manifest.get("baseline", {})),
        timings_s={k: float(v) for k, v in manifest.get("timings_s", {}).items()},
        privacy=dict(manifest.get("privacy", {})),
        heldout={k: dict(v) for k, v in manifest.get("heldout", {}).items()},
    )


def _floats(doc: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of a metrics dict, as floats (anything else is left out)."""
    ok = (int, float)
    return {k: float(v) for k, v in doc.items() if isinstance(v, ok) and not isinstance(v, bool)}


def apply_blobs(r: RoundRecord, blobs: Mapping[str, BlobFacts]) -> RoundRecord:
    """Sizes and train metrics from fetched blobs; bytes moved when every blob is known.

    Bytes moved = the base model downloaded by each submitter + the updates uploaded + the
    new model published.
    """
    updates = tuple(
        replace(u, size=blobs[u.cid].size, train={**blobs[u.cid].train_metrics, **u.train})
        if u.cid in blobs
        else u
        for u in r.updates
    )
    r = replace(r, updates=updates)
    sizes = [u.size for u in updates]
    base = blobs.get(r.base_cid)
    model = blobs.get(r.model_cid) if r.model_cid else BlobFacts(0)
    if base is None or model is None or any(s is None for s in sizes):
        return r
    moved = base.size * len(updates) + sum(s or 0 for s in sizes) + model.size
    return replace(r, bytes_moved=moved)


def build_rounds(
    events: Iterable[Any],
    manifests: Mapping[str, Mapping[str, Any]],
    blobs: Mapping[str, BlobFacts],
    wall_s: Mapping[int, float],
    update_s: Mapping[tuple[int, str], float] | None = None,
    gas: Mapping[int, Gas] | None = None,
) -> list[RoundRecord]:
    """The round records in round order, with measured wall and update-arrival times."""
    out = []
    events = list(events)
    for rid, r in sorted(fold_events(events).items()):
        if r.manifest_cid in manifests:
            r = apply_manifest(r, manifests[r.manifest_cid])
        r = apply_blobs(r, blobs)
        if update_s:
            ups = tuple(replace(u, seen_s=update_s.get((rid, u.client))) for u in r.updates)
            r = replace(r, updates=ups)
        out.append(replace(r, wall_s=wall_s.get(rid), gas=(gas or {}).get(rid)))
    return out


def first_baseline(rounds: Iterable[RoundRecord]) -> Mapping[str, Any]:
    """The round-0 baseline (initial model's metrics) from the first manifest that has one."""
    for r in rounds:
        if r.baseline:
            return r.baseline
    return {}


def update_offsets(
    events: Iterable[Any], seen_s: Mapping[str, float]
) -> dict[tuple[int, str], float]:
    """Seconds from a round's RoundOpened to each of its UpdateSubmitted, as first seen."""
    opened: dict[int, float] = {}
    out: dict[tuple[int, str], float] = {}
    for ev in events:
        key = f"{ev.meta.tx_hash}:{ev.meta.log_index}"
        kind = type(ev).__name__
        if key not in seen_s:
            continue
        if kind == "RoundOpened":
            opened[ev.round_id] = seen_s[key]
        elif kind == "UpdateSubmitted" and ev.round_id in opened:
            out[(ev.round_id, ev.client)] = seen_s[key] - opened[ev.round_id]
    return out


def round_wall_times(events: Iterable[Any], seen_s: Mapping[str, float]) -> dict[int, float]:
    """Open→settle seconds per round from when each event was first seen (`event_key` → s)."""
    opened: dict[int, float] = {}
    out: dict[int, float] = {}
    for ev in events:
        key = f"{ev.meta.tx_hash}:{ev.meta.log_index}"
        if key not in seen_s:
            continue
        kind = type(ev).__name__
        if kind == "RoundOpened":
            opened[ev.round_id] = seen_s[key]
        elif kind in ("RoundClosed", "RoundFailed") and ev.round_id in opened:
            out[ev.round_id] = seen_s[key] - opened[ev.round_id]
    return out
