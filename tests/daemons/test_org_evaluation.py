"""The org's manifest records the headline metric, per-class accuracy and the round-0 baseline."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from daemons.org.model_step import eval_metrics
from daemons.wire.manifest import Manifest, decode_manifest, encode_manifest
from models.codec import decode_blob
from models.tasks.fashion_mnist import get_model
from tests.daemons.test_org_rounds import CLIENTS, eval_data, make_org, submit

pytestmark = pytest.mark.timeout(120)


async def test_first_manifest_has_baseline_and_every_one_per_class(tmp_path: Path) -> None:
    org, chain, storage = make_org(tmp_path, rounds=2)
    await org.run_until_idle()
    for _ in range(2):  # a round closes once all three clients submitted
        for i, client in enumerate(CLIENTS):
            await submit(org, chain, storage, client, 0.01 * (i + 1))
        await org.run_until_idle()
    first = decode_manifest(storage.blobs[chain.rounds[1].manifest_cid])
    second = decode_manifest(storage.blobs[chain.rounds[2].manifest_cid])
    assert first.headline_metric == "accuracy" == second.headline_metric
    initial = decode_blob(storage.blobs[chain.rounds[1].base_cid])
    assert initial.metadata.round_id == 0
    expected = eval_metrics(get_model("logreg"), initial.sections["params"], eval_data())
    assert first.baseline["metrics"] == expected
    assert second.baseline == {}  # its base is round 1's model: its metrics are round 1's
    for m in (first, second):
        acc, counts = m.per_class["accuracy"], m.per_class["num_samples"]
        assert len(acc) == len(counts) == 10 and sum(counts) == 50
        # the per-class breakdown adds back up to the overall accuracy
        correct = sum(a * n for a, n in zip(acc, counts, strict=True) if a is not None)
        assert correct / 50 == pytest.approx(m.metrics["accuracy"])
    assert "per_class_s" in first.timings_s


async def test_per_class_can_be_switched_off(tmp_path: Path) -> None:
    org, chain, storage = make_org(tmp_path, rounds=1)
    org.parts.fed = replace(org.parts.fed, per_class_metrics=False)
    await org.run_until_idle()
    for i, client in enumerate(CLIENTS):
        await submit(org, chain, storage, client, 0.01 * (i + 1))
    await org.run_until_idle()
    m = decode_manifest(storage.blobs[chain.rounds[1].manifest_cid])
    assert m.per_class == {} and "per_class" not in m.baseline and m.baseline["metrics"]


def test_optional_manifest_fields_are_left_out_when_empty() -> None:
    m = Manifest(1, "b", "m", "fedavg", (), (), {"accuracy": 0.5})
    doc = json.loads(encode_manifest(m))
    assert not {"note", "headline_metric", "per_class", "baseline"} & set(doc)
    full = Manifest(
        1,
        "b",
        "m",
        "fedavg",
        (),
        (),
        {"rmse": 0.5},
        headline_metric="rmse",
        baseline={"metrics": {"rmse": 0.9}},
    )
    assert decode_manifest(encode_manifest(full)) == full
