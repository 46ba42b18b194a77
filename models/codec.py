"""fedchain's blob codec: params (+ fisher, u, v, server state) <-> safetensors bytes.

The safetensors layout (8-byte little-endian header length, JSON header, raw little-endian
tensor bytes) is written and read here directly rather than through `safetensors.numpy`, so
the bytes are deterministic (sorted names, sorted metadata, fixed padding) and a hostile blob
is rejected with a typed reason before anything large is allocated. The output loads with the
`safetensors` library and vice versa (tests check both directions).
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np

from models import pytree
from models.errors import BlobParseError, DtypeRejected, MetadataMismatch

FORMAT_VERSION = 1
KINDS = ("model", "update")
SECTIONS = ("params", "fisher", "u", "v", "server_state")
DEFAULT_MAX_HEADER_BYTES = 1 << 20
DTYPES: dict[str, np.dtype[Any]] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_INT = re.compile(r"0|[1-9][0-9]{0,18}")
_META_FIELDS = ("format_version", "kind", "round_id", "client", "base_cid", "num_samples")
_META_KEYS = frozenset((*_META_FIELDS, "model_name", "train_metrics"))


@dataclass(frozen=True)
class BlobMetadata:
    """What a blob claims to be; stored as strings in the safetensors `__metadata__`."""

    kind: str
    round_id: int
    client: str
    base_cid: str
    num_samples: int
    model_name: str
    format_version: int = FORMAT_VERSION
    train_metrics: Mapping[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"BlobMetadata.kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("round_id", "num_samples", "format_version"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"BlobMetadata.{name} must be an int >= 0, got {value!r}")
        for name in ("client", "base_cid", "model_name"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"BlobMetadata.{name} must be a str")
        for key, value in self.train_metrics.items():
            if not isinstance(key, str) or not _is_finite_number(value):
                raise ValueError(f"train_metrics[{key!r}] must map a str to a finite number")

    def to_header(self) -> dict[str, str]:
        """The `__metadata__` dict (all values strings, as safetensors requires)."""
        header = {name: str(getattr(self, name)) for name in (*_META_FIELDS, "model_name")}
        if self.train_metrics:
            metrics = {k: float(v) for k, v in self.train_metrics.items()}
            header["train_metrics"] = json.dumps(metrics, sort_keys=True, allow_nan=False)
        return header

    @classmethod
    def from_header(cls, header: Mapping[str, str]) -> BlobMetadata:
        """Parse a `__metadata__` dict strictly; raises MetadataMismatch naming the bad field."""
        unknown = sorted(set(header) - _META_KEYS)
        missing = sorted(set(_META_KEYS) - {"train_metrics"} - set(header))
        if unknown or missing:
            raise MetadataMismatch(f"metadata fields: missing {missing}, unknown {unknown}")
        ints = {
            name: _parse_int(header, name) for name in ("format_version", "round_id", "num_samples")
        }
        if ints["format_version"] != FORMAT_VERSION:
            raise MetadataMismatch(
                f"format_version {ints['format_version']} is not supported (this build reads "
                f"{FORMAT_VERSION})"
            )
        if header["kind"] not in KINDS:
            raise MetadataMismatch(f"kind {header['kind'][:40]!r} is not one of {KINDS}")
        metrics = _parse_metrics(header.get("train_metrics", "{}"))
        return cls(
            kind=header["kind"],
            client=header["client"],
            base_cid=header["base_cid"],
            model_name=header["model_name"],
            train_metrics=metrics,
            **ints,
        )


@dataclass(frozen=True)
class DecodedBlob:
    """A decoded blob: `sections["params"]` etc. as nested dicts of numpy arrays, plus metadata."""

    sections: dict[str, dict[str, Any]]
    metadata: BlobMetadata

    def flat(self) -> dict[str, np.ndarray]:
        """All tensors by their stored `section/path` names."""
        return pytree.flatten(self.sections)


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse_int(header: Mapping[str, str], name: str) -> int:
    text = header[name]
    if not _INT.fullmatch(text):
        raise MetadataMismatch(f"{name} must be a decimal integer >= 0, got {text[:40]!r}")
    return int(text)


def _parse_metrics(text: str) -> dict[str, float]:
    try:
        metrics = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise MetadataMismatch(f"train_metrics is not JSON: {exc}") from None
    if not isinstance(metrics, dict) or not all(_is_finite_number(v) for v in metrics.values()):
        raise MetadataMismatch("train_metrics must be a JSON object of finite numbers")
    return {k: float(v) for k, v in metrics.items()}


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def _le_array(leaf: Any, name: str) -> tuple[str, np.ndarray]:
    """A C-contiguous little-endian copy of `leaf` and its safetensors dtype name."""
    array = np.asarray(leaf)
    for code, dtype in DTYPES.items():
        if array.dtype == dtype or array.dtype == dtype.newbyteorder(">"):
            return code, np.asarray(array, dtype=dtype, order="C")
    raise ValueError(f"tensor {name!r} has dtype {array.dtype}, not storable in a blob")


def encode_blob(sections: Mapping[str, Mapping[str, Any]], metadata: BlobMetadata) -> bytes:
    """Encode sections of params-like trees; identical inputs always give identical bytes."""
    flat = pytree.flatten(sections)
    tensors = [(name, *_le_array(leaf, name)) for name, leaf in flat.items()]
    for name, *_ in tensors:
        if pytree.SEP not in name:
            raise ValueError(f"tensor {name!r} must sit inside a section (e.g. params/...)")
    header: dict[str, Any] = {"__metadata__": metadata.to_header()}
    offset = 0
    for name, code, array in tensors:
        header[name] = {
            "dtype": code,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    raw = text.encode("ascii")
    raw += b" " * (-len(raw) % 8)
    return b"".join([struct.pack("<Q", len(raw)), raw, *(a.tobytes() for _, _, a in tensors)])


def _header_bytes(blob: bytes, max_header_bytes: int) -> tuple[bytes, memoryview]:
    """Split off the JSON header, checking its declared length before reading it."""
    if len(blob) < 8:
        raise BlobParseError(f"blob is {len(blob)} bytes, shorter than the 8-byte header length")
    (length,) = struct.unpack_from("<Q", blob)
    if length > max_header_bytes or length > len(blob) - 8:
        raise BlobParseError(
            f"declared header length {length} exceeds the cap {max_header_bytes} or the "
            f"{len(blob) - 8} bytes that follow"
        )
    view = memoryview(blob)
    return bytes(view[8 : 8 + length]), view[8 + length :]


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key in JSON object")
    return dict(pairs)


def _load_header(raw: bytes) -> dict[str, Any]:
    """Parse the header JSON strictly: UTF-8, an object, no duplicate keys, no NaN literals."""
    try:
        text = raw.decode("utf-8")
        if not text.startswith("{"):
            raise ValueError("header does not start with '{'")
        header = json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise BlobParseError(f"header is not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(header, dict):
        raise BlobParseError("header is not a JSON object")
    return header


def _metadata(header: dict[str, Any]) -> BlobMetadata:
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise MetadataMismatch("__metadata__ is missing or not an object of strings")
    return BlobMetadata.from_header(meta)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tensor_span(name: str, entry: object) -> tuple[np.dtype[Any], tuple[int, ...], int, int]:
    """Check one header entry; return (dtype, shape, begin, end)."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise BlobParseError(
            f"tensor {name[:80]!r}: entry needs exactly dtype, shape, data_offsets"
        )
    code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(code, str) or code not in DTYPES:
        raise DtypeRejected(f"tensor {name[:80]!r}: unknown dtype {str(code)[:20]!r}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise BlobParseError(f"tensor {name[:80]!r}: shape must be a list of ints >= 0")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
        raise BlobParseError(f"tensor {name[:80]!r}: data_offsets must be [begin, end]")
    dtype = DTYPES[code]
    begin, end = offsets
    if end - begin != math.prod(shape) * dtype.itemsize:
        raise BlobParseError(
            f"tensor {name[:80]!r}: {end - begin} bytes do not fit shape {shape} {code}"
        )
    return dtype, tuple(shape), begin, end


def _read_tensors(header: dict[str, Any], data: memoryview) -> dict[str, np.ndarray]:
    """Read every tensor, requiring the spans to tile the data buffer exactly, without holes."""
    spans = sorted(((*_tensor_span(n, e), n) for n, e in header.items()), key=lambda s: s[2:])
    position = 0
    tensors: dict[str, np.ndarray] = {}
    for dtype, shape, begin, end, name in spans:
        if begin != position:
            raise BlobParseError(
                f"tensor {name[:80]!r} starts at byte {begin}, expected {position}"
            )
        if end > len(data):
            raise BlobParseError(f"tensor {name[:80]!r} ends at byte {end}, past {len(data)}")
        buffer = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=begin)
        tensors[name] = buffer.reshape(shape).copy()
        position = end
    if position != len(data):
        raise BlobParseError(f"tensor data is {len(data)} bytes but the header covers {position}")
    return tensors


def _nest(tensors: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    if any(pytree.SEP not in name for name in tensors):
        raise BlobParseError("every tensor name must be section/path (e.g. params/dense/w)")
    try:
        return pytree.unflatten(tensors)
    except ValueError as exc:
        raise BlobParseError(f"tensor names do not form a tree: {exc}") from None


def decode_blob(
    blob: bytes | bytearray | memoryview, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
) -> DecodedBlob:
    """Decode a blob strictly; any malformation raises a BlobRejected subclass, nothing else."""
    raw, data = _header_bytes(bytes(blob), max_header_bytes)
    header = _load_header(raw)
    metadata = _metadata(header)
    return DecodedBlob(sections=_nest(_read_tensors(header, data)), metadata=metadata)
