"""Replay pins: what the org writes into each round config so a third party can re-derive it.

The model blob's bytes depend on the code (fedchain's version, the strategy and its options,
the validation limits) and on the numerics underneath (python, jax, jaxlib, numpy, optax,
backend, device kind, CPU arch). The org records all of it under the round config's
`replay` key; `fedchain verify` compares it with its own platform to say whether a digest
mismatch is a dishonest org or merely a different platform.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import platform
import sys
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from models.data import Dataset
from models.influence import InfluenceBounds
from models.validation import Limits

PINS_VERSION = 1
_LIBRARIES = ("jax", "jaxlib", "numpy", "optax", "ml_dtypes")


@functools.cache
def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def platform_facts() -> dict[str, str]:
    """The platform facts bit-identity depends on, as strings (stable JSON)."""
    import jax

    device = jax.devices()[0]
    facts = {"python": platform.python_version(), "machine": platform.machine()}
    facts |= {"system": platform.system(), "byteorder": sys.byteorder}
    facts |= {name: _version(name) for name in _LIBRARIES}
    facts |= {"backend": jax.default_backend(), "device_kind": str(device.device_kind)}
    return facts


def dataset_digest(data: Dataset) -> str:
    """sha256 over a held-out set's shapes and bytes ("0x" hex), whatever file it came from."""
    h = hashlib.sha256()
    for array in (data.x, data.y):
        h.update(f"{array.dtype.str}{array.shape};".encode())
        h.update(array.tobytes(order="C"))
    return "0x" + h.hexdigest()


def limits_doc(limits: Limits) -> dict[str, Any]:
    """The validation limits as JSON (sets as sorted lists)."""
    doc: dict[str, Any] = {}
    for f in fields(limits):
        value = getattr(limits, f.name)
        doc[f.name] = sorted(value) if isinstance(value, frozenset) else value
    return doc


def limits_from_doc(doc: Mapping[str, Any]) -> Limits:
    """Rebuild the org's validation limits from its pin; unknown fields are an error."""
    known = {f.name: f for f in fields(Limits)}
    unknown = sorted(set(doc) - set(known))
    if unknown:
        raise ValueError(f"pinned limits have fields this fedchain does not know: {unknown}")
    values: dict[str, Any] = {k: frozenset(v) if isinstance(v, list) else v for k, v in doc.items()}
    return Limits(**values)


def replay_pins(
    strategy: str,
    strategy_options: Mapping[str, Any],
    limits: Limits,
    eval_digest: str,
    heldout_digests: Mapping[str, str],
    bounds: InfluenceBounds | None = None,
    max_samples_per_client: int = 0,
) -> dict[str, Any]:
    """The `replay` document of a round config (deterministic for one org on one platform)."""
    return {
        "influence": None if bounds is None else dataclasses.asdict(bounds),
        "max_samples_per_client": max_samples_per_client,
        "pins_version": PINS_VERSION,
        "fedchain": _version("fedchain"),
        "strategy": strategy,
        "strategy_options": dict(strategy_options),
        "limits": limits_doc(limits),
        "platform": platform_facts(),
        "eval_data": eval_digest,
        "heldout_data": dict(sorted(heldout_digests.items())),
    }


def bounds_from_doc(doc: Mapping[str, Any] | None) -> InfluenceBounds | None:
    """The org's round-level influence bounds from its pin (None: it screened nothing)."""
    return None if doc is None else InfluenceBounds(**doc)


def platform_differences(pinned: Mapping[str, Any], here: Mapping[str, str]) -> list[str]:
    """`name: pinned -> here` for every platform fact (and fedchain) that differs."""
    theirs = {"fedchain": str(pinned.get("fedchain", "?")), **pinned.get("platform", {})}
    ours = {"fedchain": _version("fedchain"), **here}
    return [
        f"{name}: {theirs.get(name, 'unpinned')} -> {ours.get(name, 'unknown')}"
        for name in sorted(set(theirs) | set(ours))
        if theirs.get(name) != ours.get(name)
    ]
