"""The org's per-round manifest JSON: what went into a model and what was left out, and why."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Included:
    """An update merged into the round's model with its aggregation weight."""

    client: str
    cid: str
    digest: str
    num_samples: int
    weight: float
    train: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Excluded:
    """An update left out, with a short reason code and a human detail."""

    client: str
    cid: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Manifest:
    """The audit record of one closed round (published to IPFS, CID in `RoundClosed`)."""

    round_id: int
    base_cid: str
    model_cid: str
    strategy: str
    included: tuple[Included, ...]
    excluded: tuple[Excluded, ...]
    metrics: dict[str, float]
    timings_s: dict[str, float] = field(default_factory=dict)
    note: str = ""
    # the name of the task's headline metric in `metrics` (JSON keys are sorted, so the
    # order of `metrics` cannot say it); "" = absent, as in older manifests
    headline_metric: str = ""
    # the [federation] influence bounds the round was judged by (docs/daemons.md), for audit
    bounds: dict[str, float] = field(default_factory=dict)
    privacy: dict[str, Any] = field(default_factory=dict)  # DP parameters and ε (docs/privacy.md)
    # the forgetting ledger: metrics on each held-out set of an earlier task or data
    heldout: dict[str, dict[str, float]] = field(default_factory=dict)
    # optional, left out when empty (older manifests lack them): per-class accuracy of the
    # model, and the initial model's metrics in a round whose base is round 0's model
    per_class: dict[str, list[Any]] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)


# left out when empty, so manifests from before a key existed stay byte-identical
# (privacy absent = no DP)
OPTIONAL = (
    "note",
    "headline_metric",
    "bounds",
    "privacy",
    "heldout",
    "per_class",
    "baseline",
)


def encode_manifest(m: Manifest) -> bytes:
    """Manifest as JSON bytes with sorted keys (human-readable, indented)."""
    doc: dict[str, Any] = asdict(m)
    for key in OPTIONAL:
        if not doc[key]:
            doc.pop(key)
    return json.dumps(doc, sort_keys=True, indent=2).encode()


def decode_manifest(data: bytes) -> Manifest:
    """Parse a manifest written by `encode_manifest` (for the CLI and tests)."""
    doc = json.loads(data)
    return Manifest(
        round_id=int(doc["round_id"]),
        base_cid=doc["base_cid"],
        model_cid=doc["model_cid"],
        strategy=doc["strategy"],
        included=tuple(Included(**d) for d in doc["included"]),
        excluded=tuple(Excluded(**d) for d in doc["excluded"]),
        metrics=dict(doc["metrics"]),
        timings_s=dict(doc.get("timings_s", {})),
        note=doc.get("note", ""),
        headline_metric=doc.get("headline_metric", ""),
        bounds=dict(doc.get("bounds", {})),
        privacy=dict(doc.get("privacy", {})),
        heldout={k: dict(v) for k, v in doc.get("heldout", {}).items()},
        per_class=dict(doc.get("per_class", {})),
        baseline=dict(doc.get("baseline", {})),
    )
