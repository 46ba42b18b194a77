"""Blob validation: the checks an update or model passes before anything uses it.

Order (cheapest and most fundamental first, so a hostile blob costs little): size cap, parse
(header length checked before it is read), metadata match, exact key set, shapes, dtype
allowlist, all finite, Fisher non-negative, norm bound. Each failure raises a BlobRejected
subclass whose `.reason` is one of models.errors.REJECTION_REASONS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from models import pytree
from models.codec import DEFAULT_MAX_HEADER_BYTES, DTYPES, BlobMetadata, DecodedBlob, decode_blob
from models.errors import (
    BlobTooLarge,
    DtypeRejected,
    KeySetMismatch,
    MetadataMismatch,
    NegativeCurvature,
    NonFiniteValues,
    NormExceeded,
    ShapeMismatch,
)

_IDENTITY_FIELDS = ("format_version", "kind", "round_id", "client", "base_cid", "num_samples")
_MATCHABLE = frozenset(f.name for f in fields(BlobMetadata))


@dataclass(frozen=True)
class Limits:
    """Validation bounds; norm_of "delta" bounds ||params - base||, "params" bounds ||params||.

    `passthrough_sections` may appear even when the template lacks them (e.g. the org's
    `server_state`, which clients cannot predict); they are parsed and checked finite only.
    `optional_sections` are template sections a blob may leave out; when present they are
    checked like any other (e.g. the Fisher, which travels only when the federation uses it).
    """

    max_bytes: int = 64 << 20
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    allowed_dtypes: frozenset[str] = frozenset({"F32"})
    max_norm: float | None = None
    norm_of: str = "delta"
    nonnegative_sections: frozenset[str] = frozenset({"fisher", "u"})
    passthrough_sections: frozenset[str] = frozenset()
    optional_sections: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.norm_of not in ("delta", "params"):
            raise ValueError(f"Limits.norm_of must be 'delta' or 'params', got {self.norm_of!r}")
        unknown = sorted(self.allowed_dtypes - set(DTYPES))
        if unknown:
            raise ValueError(
                f"Limits.allowed_dtypes has unknown names {unknown}; use {list(DTYPES)}"
            )


def _names(names: set[str] | list[str], limit: int = 5) -> str:
    ordered = sorted(names)
    more = f" (+{len(ordered) - limit} more)" if len(ordered) > limit else ""
    return ", ".join(repr(n[:80]) for n in ordered[:limit]) + more


def check_metadata(actual: BlobMetadata, expected: BlobMetadata | Mapping[str, Any]) -> None:
    """Compare the identity fields (all for a BlobMetadata, the given ones for a mapping)."""
    if isinstance(expected, BlobMetadata):
        wanted = {name: getattr(expected, name) for name in (*_IDENTITY_FIELDS, "model_name")}
    else:
        wanted = dict(expected)
        unknown = sorted(set(wanted) - _MATCHABLE)
        if unknown:
            raise ValueError(f"expected metadata has unknown fields {unknown}")
    for name, value in wanted.items():
        got = getattr(actual, name)
        if got != value:
            raise MetadataMismatch(f"{name} is {str(got)[:80]!r}, expected {str(value)[:80]!r}")


def _check_keys(flat: dict[str, np.ndarray], want: dict[str, Any]) -> None:
    missing, unexpected = set(want) - set(flat), set(flat) - set(want)
    if missing or unexpected:
        raise KeySetMismatch(
            f"missing {len(missing)} [{_names(missing)}], unexpected {len(unexpected)} "
            f"[{_names(unexpected)}]"
        )


def _check_shapes(flat: dict[str, np.ndarray], want: dict[str, Any]) -> None:
    for name, leaf in want.items():
        shape = tuple(getattr(leaf, "shape", np.shape(leaf)))
        if flat[name].shape != shape:
            raise ShapeMismatch(f"{name!r} has shape {flat[name].shape}, expected {shape}")


def _check_dtypes(flat: dict[str, np.ndarray], allowed: frozenset[str]) -> None:
    allowed_dtypes = {DTYPES[code] for code in allowed}
    for name, array in flat.items():
        if array.dtype not in allowed_dtypes:
            raise DtypeRejected(f"{name!r} has dtype {array.dtype}, allowed: {sorted(allowed)}")


def _check_values(flat: dict[str, np.ndarray], nonnegative: frozenset[str]) -> None:
    for name, array in flat.items():
        if not (np.issubdtype(array.dtype, np.inexact) or array.dtype == DTYPES["BF16"]):
            continue
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(array)
            if not finite.all():
                bad = int(finite.size - np.count_nonzero(finite))
                raise NonFiniteValues(f"{name!r} has {bad} NaN/Inf entries")
            if name.split(pytree.SEP, 1)[0] in nonnegative and (array < 0).any():
                negative = int(np.count_nonzero(array < 0))
                raise NegativeCurvature(f"{name!r} has {negative} negative entries")


def _check_norm(sections: dict[str, Any], template: Mapping[str, Any], limits: Limits) -> None:
    if limits.max_norm is None:
        return
    params = pytree.flatten(sections.get("params", {}))
    base = pytree.flatten(template.get("params", {})) if limits.norm_of == "delta" else {}
    total = 0.0
    for name, array in params.items():
        diff = array.astype(np.float64)
        if name in base:
            diff = diff - np.asarray(base[name], dtype=np.float64)
        total += float(np.sum(diff * diff))
    norm = total**0.5
    if not norm <= limits.max_norm:
        raise NormExceeded(f"L2 norm of {limits.norm_of} is {norm:.6g} > bound {limits.max_norm:g}")


def validate_blob(
    blob: bytes | bytearray | memoryview,
    template: Mapping[str, Any],
    expected: BlobMetadata | Mapping[str, Any],
    limits: Limits | None = None,
) -> DecodedBlob:
    """Decode `blob` and check it against the `template` sections and `expected` metadata."""
    limits = limits or Limits()
    size = memoryview(blob).nbytes
    if size > limits.max_bytes:
        raise BlobTooLarge(f"blob is {size} bytes, the cap is {limits.max_bytes}")
    decoded = decode_blob(blob, limits.max_header_bytes)
    check_metadata(decoded.metadata, expected)
    flat = decoded.flat()
    skipped = limits.passthrough_sections - set(template)
    checked = {n: a for n, a in flat.items() if n.split(pytree.SEP, 1)[0] not in skipped}
    absent = limits.optional_sections - set(decoded.sections)
    want = pytree.flatten({name: t for name, t in template.items() if name not in absent})
    _check_keys(checked, want)
    _check_shapes(checked, want)
    _check_dtypes(checked, limits.allowed_dtypes)
    _check_values(flat, limits.nonnegative_sections)
    _check_norm(decoded.sections, template, limits)
    return decoded
