"""validate_blob: each check rejects with its typed reason, in the documented order."""

from __future__ import annotations

import json
import struct
import time

import ml_dtypes
import numpy as np
import pytest

from models import pytree
from models.codec import BlobMetadata, encode_blob
from models.errors import (
    REJECTION_REASONS,
    BlobParseError,
    BlobRejected,
    BlobTooLarge,
    DtypeRejected,
    KeySetMismatch,
    MetadataMismatch,
    NegativeCurvature,
    NonFiniteValues,
    NormExceeded,
    ShapeMismatch,
)
from models.validation import Limits, validate_blob

BASE = {"dense": {"w": np.zeros((3, 2), np.float32), "b": np.zeros(2, np.float32)}}
TEMPLATE = {"params": BASE, "fisher": BASE}
META = BlobMetadata("update", 4, "0xC1", "bafybase", 50, "logreg")


def _update(w: float = 0.1, fisher: float = 1.0) -> dict:
    params = pytree.map_leaves(lambda a: np.full_like(a, w), BASE)
    return {"params": params, "fisher": pytree.map_leaves(lambda a: np.full_like(a, fisher), BASE)}


def _blob(sections: dict | None = None, meta: BlobMetadata = META) -> bytes:
    return encode_blob(sections if sections is not None else _update(), meta)


def _raw(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def _reject(blob: bytes, limits: Limits | None = None, expected: object = META) -> BlobRejected:
    with pytest.raises(BlobRejected) as info:
        validate_blob(blob, TEMPLATE, expected, limits)  # type: ignore[arg-type]
    assert info.value.reason in REJECTION_REASONS
    assert info.value.detail and info.value.reason in str(info.value)
    return info.value


def test_a_valid_update_is_accepted_and_decoded() -> None:
    decoded = validate_blob(_blob(), TEMPLATE, META, Limits(max_norm=1.0))
    assert decoded.metadata == META
    np.testing.assert_array_equal(
        decoded.sections["params"]["dense"]["w"], np.full((3, 2), 0.1, np.float32)
    )


def test_size_cap_is_checked_before_parsing() -> None:
    garbage = b"\xff" * 100
    assert isinstance(_reject(garbage, Limits(max_bytes=99)), BlobTooLarge)
    assert isinstance(_reject(garbage, Limits(max_bytes=100)), BlobParseError)


def test_huge_header_length_is_rejected_cheaply() -> None:
    blob = struct.pack("<Q", 2**63) + b"{}"
    start = time.perf_counter()
    error = _reject(blob)
    assert isinstance(error, BlobParseError) and "header length" in error.detail
    assert time.perf_counter() - start < 0.1
    padded = struct.pack("<Q", 2 << 20) + b" " * (2 << 20)
    assert "cap" in _reject(padded).detail


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x01\x00",
        struct.pack("<Q", 4) + b"[1] ",
        struct.pack("<Q", 2) + b"\xff\xfe",
        struct.pack("<Q", 2) + b" {",
        struct.pack("<Q", 40000) + b"[" * 20000 + b"]" * 20000,
        struct.pack("<Q", 40000) + b'{"a":' * 10000 + b"1" + b"}" * 10000 + b" " * 9999,
    ],
    ids=["empty", "short", "array", "not-utf8", "not-object", "deep-array", "deep-object"],
)
def test_malformed_headers_are_parse_errors(raw: bytes) -> None:
    assert isinstance(_reject(raw), BlobParseError)


def test_duplicate_json_keys_are_rejected() -> None:
    text = b'{"__metadata__":{},"params/w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
    text += b'"params/w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    blob = struct.pack("<Q", len(text)) + text + b"\0" * 4
    assert "duplicate" in _reject(blob).detail


@pytest.mark.parametrize(
    ("entry", "data", "match"),
    [
        ({"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}, 4, "do not fit"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}, 8, "starts at byte 4"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, 8, "covers 4"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, 3, "past 3"),
        ({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}, 4, "shape"),
        ({"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}, 4, "shape"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [0, 4.0]}, 4, "data_offsets"),
        ({"dtype": "F32", "shape": [1]}, 4, "exactly"),
        ({"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 4]}, 4, "do not fit"),
    ],
)
def test_bad_tensor_entries_are_parse_errors(entry: dict, data: int, match: str) -> None:
    header = {"__metadata__": META.to_header(), "params/w": entry}
    error = _reject(_raw(header, b"\0" * data))
    assert isinstance(error, BlobParseError)
    assert any(m in error.detail for m in match.split("|")), error.detail


def test_overlapping_tensors_are_rejected() -> None:
    span = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
    header = {"__metadata__": META.to_header(), "params/a": span, "params/b": span}
    assert isinstance(_reject(_raw(header, b"\0" * 4)), BlobParseError)


def test_unknown_dtype_is_a_dtype_rejection() -> None:
    header = {
        "__metadata__": META.to_header(),
        "params/w": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]},
    }
    assert isinstance(_reject(_raw(header, b"\0")), DtypeRejected)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "model"),
        ("round_id", 5),
        ("client", "0xC2"),
        ("base_cid", "bafyother"),
        ("num_samples", 51),
        ("model_name", "cnn"),
    ],
)
def test_every_identity_field_must_match(field: str, value: object) -> None:
    blob = _blob(meta=BlobMetadata(**{**META.__dict__, field: value}))
    error = _reject(blob)
    assert isinstance(error, MetadataMismatch) and field in error.detail


def test_expected_can_be_a_partial_mapping() -> None:
    blob = _blob(meta=BlobMetadata(**{**META.__dict__, "num_samples": 9}))
    assert (
        validate_blob(blob, TEMPLATE, {"round_id": 4, "client": "0xC1"}).metadata.num_samples == 9
    )
    assert isinstance(_reject(blob, expected={"num_samples": 50}), MetadataMismatch)
    with pytest.raises(ValueError, match="unknown fields"):
        validate_blob(blob, TEMPLATE, {"round": 4})


def test_train_metrics_do_not_take_part_in_matching() -> None:
    meta = BlobMetadata(**{**META.__dict__, "train_metrics": {"loss": 1.0}})
    assert validate_blob(_blob(meta=meta), TEMPLATE, META).metadata.train_metrics == {"loss": 1.0}


def test_missing_and_unexpected_keys_are_named() -> None:
    update = _update()
    del update["fisher"]["dense"]["b"]
    update["params"]["extra"] = np.zeros(1, np.float32)
    error = _reject(_blob(update))
    assert isinstance(error, KeySetMismatch)
    assert "'fisher/dense/b'" in error.detail and "'params/extra'" in error.detail


def test_missing_section_is_a_key_mismatch() -> None:
    update = _update()
    del update["fisher"]
    assert isinstance(_reject(_blob(update)), KeySetMismatch)


def test_an_optional_section_may_be_left_out_but_is_checked_when_present() -> None:
    limits = Limits(optional_sections=frozenset({"fisher"}))
    update = _update()
    del update["fisher"]
    decoded = validate_blob(_blob(update), TEMPLATE, META, limits)
    assert set(decoded.sections) == {"params"}
    update = _update()
    update["fisher"]["dense"]["w"] = np.zeros((2, 3), np.float32)
    error = _reject(_blob(update), limits)
    assert isinstance(error, ShapeMismatch) and "fisher/dense/w" in error.detail
    update = _update()
    del update["fisher"]["dense"]["b"]
    assert isinstance(_reject(_blob(update), limits), KeySetMismatch)
    update = _update()
    del update["params"]  # only the named sections are optional
    assert isinstance(_reject(_blob(update), limits), KeySetMismatch)


def test_shape_mismatch_is_named() -> None:
    update = _update()
    update["params"]["dense"]["w"] = np.zeros((2, 3), np.float32)
    error = _reject(_blob(update))
    assert isinstance(error, ShapeMismatch) and "params/dense/w" in error.detail


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32])
def test_dtype_outside_the_allowlist_is_rejected(dtype: type) -> None:
    update = _update()
    update["fisher"]["dense"]["b"] = np.zeros(2, dtype)
    assert isinstance(_reject(_blob(update)), DtypeRejected)
    allowed = Limits(allowed_dtypes=frozenset({"F32", "F64", "F16", "I32"}))
    validate_blob(_blob(update), TEMPLATE, META, allowed)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_rejected(bad: float) -> None:
    update = _update()
    update["params"]["dense"]["w"][1, 1] = bad
    error = _reject(_blob(update))
    assert isinstance(error, NonFiniteValues) and "1 NaN/Inf" in error.detail


def test_negative_fisher_is_rejected_but_negative_params_are_fine() -> None:
    assert isinstance(_reject(_blob(_update(fisher=-1e-3))), NegativeCurvature)
    validate_blob(_blob(_update(w=-0.1)), TEMPLATE, META)


def test_norm_bound_on_the_delta_from_the_base() -> None:
    # 8 entries of 0.5 away from a zero base: ||delta|| = sqrt(8 * 0.25) = sqrt(2).
    blob = _blob(_update(w=0.5))
    validate_blob(blob, TEMPLATE, META, Limits(max_norm=1.415))
    error = _reject(blob, Limits(max_norm=1.414))
    assert isinstance(error, NormExceeded) and "1.41421" in error.detail


def test_norm_of_params_ignores_the_base() -> None:
    shifted = {"params": pytree.map_leaves(lambda a: a + 0.5, BASE), "fisher": BASE}
    blob = _blob(_update(w=0.5))
    validate_blob(blob, shifted, META, Limits(max_norm=1e-6))
    assert isinstance(_reject(blob, Limits(max_norm=1.0, norm_of="params")), NormExceeded)


def test_checks_run_in_the_documented_order() -> None:
    update = _update(w=1e3)
    update["params"]["dense"]["b"] = np.array([np.nan, 1.0], np.float64)
    del update["fisher"]["dense"]["w"]
    wrong_meta = BlobMetadata(**{**META.__dict__, "round_id": 9})
    limits = Limits(max_norm=1.0)
    assert isinstance(_reject(_blob(update, wrong_meta), limits), MetadataMismatch)
    assert isinstance(_reject(_blob(update), limits), KeySetMismatch)
    update["fisher"]["dense"]["w"] = np.zeros(6, np.float32)
    assert isinstance(_reject(_blob(update), limits), ShapeMismatch)
    update["fisher"]["dense"]["w"] = np.zeros((3, 2), np.float32)
    assert isinstance(_reject(_blob(update), limits), DtypeRejected)
    update["params"]["dense"]["b"] = update["params"]["dense"]["b"].astype(np.float32)
    assert isinstance(_reject(_blob(update), limits), NonFiniteValues)
    update["params"]["dense"]["b"] = np.zeros(2, np.float32)
    assert isinstance(_reject(_blob(update), limits), NormExceeded)


def test_passthrough_sections_skip_the_template_but_not_the_finite_check() -> None:
    mu = np.ones(2, np.float32)
    state = {"count": np.array(3, np.int32), "mu": {"w": mu}}
    update = {**_update(), "server_state": state}
    limits = Limits(passthrough_sections=frozenset({"server_state"}))
    assert isinstance(_reject(_blob(update)), KeySetMismatch)
    decoded = validate_blob(_blob(update), TEMPLATE, META, limits)
    assert int(decoded.sections["server_state"]["count"]) == 3
    mu[0] = np.inf
    assert isinstance(_reject(_blob(update), limits), NonFiniteValues)


def test_limits_reject_bad_configuration() -> None:
    with pytest.raises(ValueError, match="norm_of"):
        Limits(norm_of="grad")
    with pytest.raises(ValueError, match="allowed_dtypes"):
        Limits(allowed_dtypes=frozenset({"float32"}))


def test_bfloat16_non_finite_and_negative_fisher_are_caught() -> None:
    limits = Limits(allowed_dtypes=frozenset({"F32", "BF16"}))
    update = _update()
    update["fisher"]["dense"]["b"] = np.array([1.0, -1.0], ml_dtypes.bfloat16)
    assert isinstance(_reject(_blob(update), limits), NegativeCurvature)
    update["fisher"]["dense"]["b"] = np.array([1.0, np.nan], ml_dtypes.bfloat16)
    assert isinstance(_reject(_blob(update), limits), NonFiniteValues)
