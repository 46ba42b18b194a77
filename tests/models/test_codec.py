"""Blob codec: round trips, deterministic bytes, safetensors interoperability, strict metadata."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy as stn

from models import pytree
from models.codec import BlobMetadata, decode_blob, encode_blob
from models.errors import BlobParseError, MetadataMismatch


def _params() -> dict:
    rng = np.random.default_rng(0)
    return {
        "conv1": {
            "w": rng.normal(size=(5, 5, 1, 4)).astype(np.float32),
            "b": np.zeros(4, np.float32),
        },
        "dense": {"w": rng.normal(size=(16, 10)).astype(np.float32), "b": np.ones(10, np.float32)},
    }


META = BlobMetadata(
    kind="update",
    round_id=7,
    client="0x00000000000000000000000000000000000000A1",
    base_cid="bafkreibase",
    num_samples=600,
    model_name="2nn",
    train_metrics={"loss": 0.25, "accuracy": 0.9, "train_s": 1.5},
)


def _assert_trees_equal(a: dict, b: dict) -> None:
    fa, fb = pytree.flatten(a), pytree.flatten(b)
    assert list(fa) == list(fb)
    for name in fa:
        np.testing.assert_array_equal(np.asarray(fa[name]), fb[name], err_msg=name)
        assert np.asarray(fa[name]).dtype == fb[name].dtype, name
        assert np.shape(fa[name]) == fb[name].shape, name


def test_round_trip_params_fisher_and_metadata() -> None:
    params = _params()
    fisher = pytree.map_leaves(lambda a: a * a, params)
    blob = encode_blob({"params": params, "fisher": fisher}, META)
    decoded = decode_blob(blob)
    assert decoded.metadata == META
    assert decoded.metadata.train_metrics == META.train_metrics
    _assert_trees_equal({"params": params, "fisher": fisher}, decoded.sections)


def test_encoding_twice_gives_identical_bytes_whatever_the_insertion_order() -> None:
    params = _params()
    reordered = {k: dict(reversed(list(v.items()))) for k, v in reversed(list(params.items()))}
    meta2 = BlobMetadata(
        **{**META.__dict__, "train_metrics": dict(reversed(list(META.train_metrics.items())))}
    )
    assert encode_blob({"params": params}, META) == encode_blob({"params": params}, META)
    assert encode_blob({"params": params}, META) == encode_blob({"params": reordered}, meta2)


def test_bytes_identical_across_processes_with_different_hash_seeds() -> None:
    script = (
        "import hashlib, numpy as np;"
        "from models.codec import BlobMetadata, encode_blob;"
        "m = BlobMetadata('model', 2, 'org', 'bafy', 5, 'cnn', train_metrics={'b': 1.0, 'a': 2.0});"
        "p = {'x': {'k%d' % i: np.full((3,), i, np.float32) for i in range(20)}};"
        "print(hashlib.sha256(encode_blob({'params': p, 'u': p}, m)).hexdigest())"
    )
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_jax_arrays_and_big_endian_arrays_encode_like_numpy() -> None:
    params = _params()
    as_jax = pytree.map_leaves(jnp.asarray, params)
    big_endian = pytree.map_leaves(lambda a: a.astype(">f4"), params)
    expected = encode_blob({"params": params}, META)
    assert encode_blob({"params": as_jax}, META) == expected
    assert encode_blob({"params": big_endian}, META) == expected


def test_other_dtypes_round_trip() -> None:
    tree = {
        "a": np.arange(4, dtype=np.int32),
        "b": np.ones((2, 2), dtype=ml_dtypes.bfloat16),
        "c": np.array(3.5, dtype=np.float64),
        "d": np.zeros((0, 3), np.float16),
    }
    decoded = decode_blob(encode_blob({"server_state": tree}, META))
    _assert_trees_equal({"server_state": tree}, decoded.sections)


def test_output_loads_with_the_safetensors_library_and_back() -> None:
    params = _params()
    blob = encode_blob({"params": params}, META)
    loaded = stn.load(blob)
    assert sorted(loaded) == sorted(pytree.flatten({"params": params}))
    np.testing.assert_array_equal(loaded["params/dense/w"], params["dense"]["w"])
    theirs = stn.save(pytree.flatten({"params": params}), metadata=META.to_header())
    decoded = decode_blob(theirs)
    assert decoded.metadata == META
    _assert_trees_equal({"params": params}, decoded.sections)


def test_header_is_aligned_and_metadata_is_all_strings() -> None:
    blob = encode_blob({"params": _params()}, META)
    (length,) = struct.unpack("<Q", blob[:8])
    assert length % 8 == 0
    header = json.loads(blob[8 : 8 + length])
    assert all(isinstance(v, str) for v in header["__metadata__"].values())
    assert header["__metadata__"]["round_id"] == "7"
    assert json.loads(header["__metadata__"]["train_metrics"])["loss"] == 0.25


def test_train_metrics_are_optional() -> None:
    meta = BlobMetadata("model", 1, "", "", 0, "cnn")
    blob = encode_blob({"params": _params()}, meta)
    assert "train_metrics" not in decode_blob(blob).metadata.to_header()
    assert decode_blob(blob).metadata == meta


@pytest.mark.parametrize(
    ("field", "value"),
    [("kind", "modell"), ("round_id", -1), ("num_samples", 1.5), ("client", 3), ("round_id", True)],
)
def test_metadata_constructor_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        BlobMetadata(**{**META.__dict__, field: value})


def test_metadata_rejects_non_finite_train_metrics() -> None:
    with pytest.raises(ValueError, match="train_metrics"):
        BlobMetadata(**{**META.__dict__, "train_metrics": {"loss": float("nan")}})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"round_id": "07"}, "round_id"),
        ({"round_id": "-1"}, "round_id"),
        ({"num_samples": "1e3"}, "num_samples"),
        ({"format_version": "2"}, "format_version"),
        ({"kind": "other"}, "kind"),
        ({"train_metrics": "[1]"}, "train_metrics"),
        ({"train_metrics": '{"loss": NaN}'}, "train_metrics"),
        ({"extra": "x"}, "unknown"),
        ({"client": None}, "missing"),
    ],
)
def test_decoding_rejects_malformed_metadata(change: dict, match: str) -> None:
    header = {**META.to_header(), **change}
    header = {k: v for k, v in header.items() if v is not None}
    blob = stn.save({"params/w": np.zeros(2, np.float32)}, metadata=header)
    with pytest.raises(MetadataMismatch, match=match):
        decode_blob(blob)


def test_blob_without_metadata_is_rejected() -> None:
    with pytest.raises(MetadataMismatch, match="__metadata__"):
        decode_blob(stn.save({"params/w": np.zeros(2, np.float32)}))


def test_tensor_outside_a_section_is_rejected_both_ways() -> None:
    with pytest.raises(ValueError, match="section"):
        encode_blob({"params": np.zeros(2, np.float32)}, META)  # type: ignore[dict-item]
    blob = stn.save({"w": np.zeros(2, np.float32)}, metadata=META.to_header())
    with pytest.raises(BlobParseError, match="section"):
        decode_blob(blob)


@pytest.mark.parametrize("bad", [{"a/b": np.zeros(1)}, {"": np.zeros(1)}, {3: np.zeros(1)}])
def test_encode_rejects_keys_that_cannot_be_paths(bad: dict) -> None:
    with pytest.raises(ValueError, match="pytree key"):
        encode_blob({"params": bad}, META)


def test_encode_rejects_unstorable_dtypes() -> None:
    with pytest.raises(ValueError, match="dtype"):
        encode_blob({"params": {"w": np.array(["x"])}}, META)


def test_layout_of_a_tiny_blob_is_exactly_the_documented_one() -> None:
    meta = BlobMetadata("model", 1, "org", "", 2, "logreg")
    blob = encode_blob({"params": {"w": np.array([1.0, -2.0], np.float32)}}, meta)
    header = (
        b'{"__metadata__":{"base_cid":"","client":"org","format_version":"1","kind":"model",'
        b'"model_name":"logreg","num_samples":"2","round_id":"1"},'
        b'"params/w":{"data_offsets":[0,8],"dtype":"F32","shape":[2]}}'
    )
    header += b" " * (-len(header) % 8)
    assert blob == struct.pack("<Q", len(header)) + header + struct.pack("<2f", 1.0, -2.0)
    assert decode_blob(bytearray(blob)).metadata == meta


def test_pytree_flatten_unflatten_round_trip_and_conflicts() -> None:
    tree = {"b": {"y": 1, "x": {"z": 2}}, "a": 3, "empty": {}}
    flat = pytree.flatten(tree)
    assert list(flat) == ["a", "b/x/z", "b/y"]
    assert pytree.unflatten(flat) == {"a": 3, "b": {"x": {"z": 2}, "y": 1}}
    assert pytree.flatten({"w": 1}, prefix="params") == {"params/w": 1}
    with pytest.raises(ValueError, match="leaf"):
        pytree.unflatten({"a": 1, "a/b": 2})
    with pytest.raises(ValueError, match="pytree key"):
        pytree.unflatten({"a//b": 1})
