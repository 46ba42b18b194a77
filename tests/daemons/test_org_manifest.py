"""Round config and manifest JSON: deterministic bytes, strict decoding, the documented keys."""

from __future__ import annotations

import json

import pytest

from daemons.errors import RejectedUpdate
from daemons.runtime.config import TrainingConfig
from daemons.wire.manifest import Excluded, Included, Manifest, decode_manifest, encode_manifest
from daemons.wire.round_config import (
    RoundConfig,
    decode_round_config,
    encode_round_config,
    fisher_in_use,
)


def test_round_config_round_trip_and_schema() -> None:
    cfg = RoundConfig(3, "2nn", 5, TrainingConfig(epochs=2, penalty="fedprox"))
    data = encode_round_config(cfg)
    assert data == encode_round_config(cfg)  # same round, same bytes, same CID
    doc = json.loads(data)
    assert set(doc) == {"format_version", "round_id", "model", "seed", "training", "fisher"}
    assert doc["training"]["penalty"] == "fedprox" and doc["format_version"] == 1
    assert doc["fisher"] is True
    assert decode_round_config(data) == cfg
    lean = RoundConfig(3, "2nn", 5, TrainingConfig(penalty="none"), fisher=False)
    assert decode_round_config(encode_round_config(lean)) == lean


def test_a_round_config_without_the_fisher_key_asks_for_the_fisher() -> None:
    doc = b'{"format_version": 1, "round_id": 1, "model": "2nn", "seed": 0, "training": {}}'
    assert decode_round_config(doc).fisher is True


@pytest.mark.parametrize(
    ("penalty", "strategy", "expected"),
    [
        ("none", "fedavg", False),
        ("fedprox", "krum", False),
        ("none", "fisher_merge", True),
        ("none", "fedcurv", True),
        ("ewc", "fedavg", True),
        ("fedcurv", "median", True),
    ],
)
def test_the_fisher_travels_only_where_a_penalty_or_strategy_reads_it(
    penalty: str, strategy: str, expected: bool
) -> None:
    assert fisher_in_use(penalty, strategy) is expected


@pytest.mark.parametrize(
    "doc",
    [
        b"not json",
        b'{"format_version": 2, "round_id": 1, "model": "2nn", "seed": 0, "training": {}}',
        b'{"format_version": 1, "round_id": 1, "model": "vgg", "seed": 0, "training": {}}',
        b'{"format_version": 1, "round_id": 1, "model": "2nn", "seed": 0, "training": {"x": 1}}',
        b'{"format_version": 1, "model": "2nn", "seed": 0, "training": {}}',
        b'{"format_version": 1, "round_id": 1, "model": "2nn", "seed": 0, "training": {},'
        b' "fisher": "no"}',
        b'{"format_version": 1, "round_id": 1, "model": "2nn", "seed": 0,'
        b' "training": {"penalty": "ewc"}, "fisher": false}',
    ],
)
def test_bad_round_config_is_rejected(doc: bytes) -> None:
    with pytest.raises(RejectedUpdate) as info:
        decode_round_config(doc)
    assert info.value.reason == "round_config"


def test_manifest_keys_and_round_trip() -> None:
    manifest = Manifest(
        round_id=2,
        base_cid="bafybase",
        model_cid="bafymodel",
        strategy="fedavg",
        included=(Included("0xA", "bafyA", "0x01", 10, 0.25, {"loss": 0.5}),),
        excluded=(Excluded("0xB", "bafyB", "non_finite", "params/w has NaN"),),
        metrics={"accuracy": 0.8, "loss": 0.4, "num_samples": 100.0},
        timings_s={"fetch_s": 0.1},
    )
    doc = json.loads(encode_manifest(manifest))
    assert set(doc) == {
        "round_id",
        "base_cid",
        "model_cid",
        "strategy",
        "included",
        "excluded",
        "metrics",
        "timings_s",
    }
    assert set(doc["included"][0]) == {"client", "cid", "digest", "num_samples", "weight", "train"}
    assert set(doc["excluded"][0]) == {"client", "cid", "reason", "detail"}
    assert decode_manifest(encode_manifest(manifest)) == manifest
