"""Fuzzing the decoder and validator: thousands of mutated blobs, zero crashes.

Every outcome must be either a BlobRejected subclass with a known reason, or an accepted blob
that independently satisfies every invariant. Mutations that only touch the header may be
accepted only if the blob still decodes to exactly the original tensors (e.g. a padding space
turned into a tab); bit flips in tensor data may survive only as sound values, since catching
those is the digest's job (sha256 on chain), not the validator's.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import pytree
from models.codec import BlobMetadata, DecodedBlob, decode_blob, encode_blob
from models.errors import REJECTION_REASONS, BlobRejected
from models.validation import Limits, validate_blob

RNG_SEED = 20260
BASE = {"layer": {"w": np.zeros((4, 3), np.float32), "b": np.zeros(3, np.float32)}}
TEMPLATE = {"params": BASE, "fisher": BASE}
META = BlobMetadata("update", 3, "0xAbC", "bafybase", 40, "logreg", train_metrics={"loss": 1.0})
LIMITS = Limits(max_bytes=8192, max_norm=10.0)


def _sections(rng: np.random.Generator) -> dict:
    params = pytree.map_leaves(lambda a: rng.normal(size=a.shape).astype(np.float32), BASE)
    fisher = pytree.map_leaves(lambda a: rng.random(size=a.shape).astype(np.float32), BASE)
    return {"params": params, "fisher": fisher}


ORIGINAL = _sections(np.random.default_rng(0))
VALID = encode_blob(ORIGINAL, META)
HEADER_END = 8 + struct.unpack("<Q", VALID[:8])[0]


def _outcome(blob: bytes) -> BlobRejected | DecodedBlob:
    """Validate; anything but a BlobRejected propagates and fails the test as a crash."""
    try:
        return validate_blob(blob, TEMPLATE, META, LIMITS)
    except BlobRejected as error:
        assert error.reason in REJECTION_REASONS and error.detail
        return error


def _assert_sound(decoded: DecodedBlob) -> None:
    """Re-check every invariant of an accepted blob without the validator's code."""
    flat, want = decoded.flat(), pytree.flatten(TEMPLATE)
    assert set(flat) == set(want)
    assert decoded.metadata.round_id == META.round_id and decoded.metadata.client == META.client
    delta_sq = 0.0
    for name, array in flat.items():
        assert array.shape == want[name].shape and array.dtype == np.float32
        assert np.isfinite(array).all()
        if name.startswith("fisher/"):
            assert (array >= 0).all()
        else:
            delta_sq += float(np.sum(array.astype(np.float64) ** 2))
    assert delta_sq**0.5 <= LIMITS.max_norm


def _same_as_original(decoded: DecodedBlob) -> bool:
    ours, theirs = decoded.flat(), pytree.flatten(ORIGINAL)
    return set(ours) == set(theirs) and all(np.array_equal(ours[n], theirs[n]) for n in ours)


def _flip(rng: np.random.Generator, blob: bytes, lo: int, hi: int) -> bytes:
    out = bytearray(blob)
    out[int(rng.integers(lo, hi))] ^= int(rng.integers(1, 256))
    return bytes(out)


def test_truncations_and_extensions_are_all_rejected() -> None:
    rng = np.random.default_rng(RNG_SEED)
    for cut in range(len(VALID)):
        assert isinstance(_outcome(VALID[:cut]), BlobRejected), cut
    for _ in range(300):
        tail = rng.bytes(int(rng.integers(1, 24)))
        assert isinstance(_outcome(VALID + tail), BlobRejected)


def test_header_byte_flips_are_rejected_or_change_nothing() -> None:
    rng = np.random.default_rng(RNG_SEED + 1)
    accepted = 0
    for _ in range(3000):
        result = _outcome(_flip(rng, VALID, 0, HEADER_END))
        if isinstance(result, DecodedBlob):
            accepted += 1
            _assert_sound(result)
            assert _same_as_original(result)
    assert accepted < 300  # whitespace-only changes are rare; most flips must be caught


def test_data_byte_flips_are_rejected_or_sound() -> None:
    rng = np.random.default_rng(RNG_SEED + 2)
    reasons = set()
    for _ in range(3000):
        result = _outcome(_flip(rng, VALID, HEADER_END, len(VALID)))
        if isinstance(result, DecodedBlob):
            _assert_sound(result)
        else:
            reasons.add(result.reason)
    assert {"negative_fisher", "norm"} <= reasons


def test_random_splices_anywhere_never_crash() -> None:
    rng = np.random.default_rng(RNG_SEED + 3)
    for _ in range(2000):
        start = int(rng.integers(0, len(VALID)))
        chunk = rng.bytes(int(rng.integers(1, 16)))
        mutated = VALID[:start] + chunk + VALID[start + len(chunk) :]
        result = _outcome(mutated[: len(VALID) + int(rng.integers(-4, 4))])
        if isinstance(result, DecodedBlob):
            _assert_sound(result)
            if start + len(chunk) <= HEADER_END:
                assert _same_as_original(result)


def _with(path: str, value: object) -> dict:
    sections = {k: pytree.flatten(v) for k, v in ORIGINAL.items()}
    section, name = path.split("/", 1)
    if value is None:
        del sections[section][name]
    else:
        sections[section][name] = value
    return {k: pytree.unflatten(v) for k, v in sections.items()}


def _structured(rng: np.random.Generator) -> tuple[str, bytes]:
    """One semantic mutation and the reason it must be rejected with."""
    path = str(rng.choice(list(pytree.flatten(ORIGINAL))))
    leaf = pytree.flatten(ORIGINAL)[path]
    kind = int(rng.integers(0, 9))
    if kind == 0:
        return "keys", encode_blob(_with(path, None), META)
    if kind == 1:
        return "keys", encode_blob(_with(path + "_x", leaf), META)
    if kind == 2:
        shape = tuple(int(d) + int(rng.integers(1, 3)) for d in leaf.shape)
        return "shape", encode_blob(_with(path, np.zeros(shape, np.float32)), META)
    if kind == 3:
        dtype = rng.choice(np.array([np.float64, np.float16, np.int32, np.uint8], dtype=object))
        return "dtype", encode_blob(_with(path, leaf.astype(dtype)), META)
    if kind == 4:
        bad = leaf.copy()
        bad.flat[int(rng.integers(0, bad.size))] = rng.choice([np.nan, np.inf, -np.inf])
        return "non_finite", encode_blob(_with(path, bad), META)
    if kind == 5:
        field = str(rng.choice(["round_id", "num_samples", "client", "base_cid", "model_name"]))
        value = getattr(META, field)
        new = value + int(rng.integers(1, 100)) if isinstance(value, int) else value + "x"
        return "metadata", encode_blob(ORIGINAL, BlobMetadata(**{**META.__dict__, field: new}))
    if kind == 6:
        length = int(rng.integers(len(VALID), 2**64, dtype=np.uint64))
        return "parse", struct.pack("<Q", length) + VALID[8:]
    if kind == 7:
        params = pytree.map_leaves(lambda a: a * 100.0, ORIGINAL["params"])
        return "norm", encode_blob({**ORIGINAL, "params": params}, META)
    return "parse", rng.bytes(int(rng.integers(0, 600)))


def test_structured_mutations_are_rejected_with_the_right_reason() -> None:
    rng = np.random.default_rng(RNG_SEED + 4)
    seen = set()
    for _ in range(2000):
        reason, blob = _structured(rng)
        result = _outcome(blob)
        assert isinstance(result, BlobRejected), reason
        assert result.reason == reason, (reason, result)
        seen.add(reason)
    assert seen == {"keys", "shape", "dtype", "non_finite", "metadata", "parse", "norm"}


def _raw(header: object, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_ENTRY = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "F64", "I32", "BOOL", "XX", ""]) | _JSON,
        "shape": st.lists(st.integers(-2, 5), max_size=3) | _JSON,
        "data_offsets": st.lists(st.integers(-4, 64), min_size=2, max_size=2) | _JSON,
    }
)
_NAMES = st.sampled_from(
    ["params/layer/w", "params/layer/b", "fisher/layer/w", "x", "params//w", "a/b"]
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_blob_rejected(blob: bytes) -> None:
    assert isinstance(_outcome(blob), BlobRejected)
    with pytest.raises(BlobRejected):
        decode_blob(blob)


@settings(max_examples=400, deadline=None)
@given(_JSON, st.binary(max_size=64))
def test_arbitrary_json_headers_only_ever_raise_blob_rejected(header: object, data: bytes) -> None:
    assert isinstance(_outcome(_raw(header, data)), BlobRejected)


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(_NAMES, _ENTRY, max_size=4), st.binary(max_size=96), st.booleans())
def test_arbitrary_tensor_tables_never_crash(tensors: dict, data: bytes, with_meta: bool) -> None:
    header: dict[str, object] = dict(tensors)
    if with_meta:
        header["__metadata__"] = META.to_header()
    result = _outcome(_raw(header, data))
    if isinstance(result, DecodedBlob):
        _assert_sound(result)


MUTATORS: list[Callable[[bytes], bytes]] = [
    lambda b: b[:-1],
    lambda b: b + b"\0",
    lambda b: struct.pack("<Q", 2**64 - 1) + b[8:],
    lambda b: struct.pack("<Q", 0) + b[8:],
]


@pytest.mark.parametrize("mutate", MUTATORS, ids=["drop-last", "append", "max-len", "zero-len"])
def test_named_boundary_mutations_are_rejected(mutate: Callable[[bytes], bytes]) -> None:
    assert isinstance(_outcome(mutate(VALID)), BlobRejected)
    assert isinstance(_outcome(VALID), DecodedBlob)
