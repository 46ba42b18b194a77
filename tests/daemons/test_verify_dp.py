"""A central-DP round replayed by an auditor handed the org's noise secret (`--dp-secret-file`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from daemons.errors import ConfigError
from daemons.org.privacy import OrgPrivacy
from daemons.runtime.config import PrivacyConfig, TrainingConfig
from daemons.verify.checks import MISMATCH, OK, UNCHECKED, failed
from daemons.verify.cli import _dp_secret
from daemons.verify.facts import Blob, ReplayInputs
from daemons.wire.manifest import decode_manifest, encode_manifest
from daemons.wire.round_config import decode_round_config
from models.dp import secret_commitment
from tests.daemons.test_org_rounds import CLIENTS, ORG, eval_data, submit
from tests.daemons.verify_helpers import make_org, round_facts, verify_all

pytestmark = pytest.mark.timeout(180)
SECRET = bytes(range(32))


async def dp_round(tmp_path: Path) -> tuple[object, object]:
    dp = PrivacyConfig(mode="central", clip_norm=1.0, noise_multiplier=1.0, sample_cap=50)
    privacy = OrgPrivacy(dp, ORG, SECRET)  # the fake chain's contract address is ORG
    org, chain, storage = make_org(
        tmp_path, privacy=privacy, training=TrainingConfig(penalty="none")
    )
    await org.run_until_idle()
    for client, shift in zip(CLIENTS, (0.01, 0.03, 0.02), strict=True):
        await submit(org, chain, storage, client, shift)
    await org.run_until_idle()
    return chain, storage


def by_name(report: object) -> dict[str, object]:
    return {c.name: c for c in report.checks}  # type: ignore[attr-defined]


async def test_the_right_secret_replays_the_noised_merge_bit_for_bit(tmp_path: Path) -> None:
    chain, storage = await dp_round(tmp_path)
    cfg = decode_round_config(storage.blobs[chain.rounds[1].config_cid])  # type: ignore[attr-defined]
    assert cfg.replay is not None
    assert cfg.replay["central_dp"] == {
        "secret_sha256": secret_commitment(SECRET),
        "sample_cap": 50,
    }
    inputs = ReplayInputs(eval_data=eval_data(), dp_secret=SECRET, contract=ORG)
    [report] = verify_all(chain, storage, inputs)
    got = by_name(report)
    assert not failed([report]) and report.verdict == OK, report.checks
    assert got["dp secret"].status == OK
    assert got["weights"].status == OK
    assert got["model"].status == OK and "bit-identical" in got["model"].detail
    assert got["metrics"].status == OK

    [without] = verify_all(chain, storage, ReplayInputs(eval_data=eval_data()))
    assert by_name(without)["model"].status == UNCHECKED and "dp-secret-file" in str(
        by_name(without)["model"].detail
    )
    assert "dp secret" not in by_name(without)

    manifest = decode_manifest(storage.blobs[chain.rounds[1].manifest_cid])  # type: ignore[attr-defined]
    forged = dataclasses.replace(manifest, privacy={**manifest.privacy, "denominator": 1.5})
    facts = dataclasses.replace(
        round_facts(chain, storage, 1),  # type: ignore[arg-type]
        manifest=Blob(encode_manifest(forged)),
    )
    [lied] = verify_all(chain, storage, inputs, r1=facts)  # type: ignore[arg-type]
    assert by_name(lied)["dp denominator"].status == MISMATCH
    assert "manifest W = 1.5" in by_name(lied)["dp denominator"].detail


async def test_a_wrong_secret_is_named_and_the_merge_left_unchecked(tmp_path: Path) -> None:
    chain, storage = await dp_round(tmp_path)
    wrong = ReplayInputs(dp_secret=bytes(32), contract=ORG)
    [report] = verify_all(chain, storage, wrong)
    got = by_name(report)
    assert failed([report])
    assert got["dp secret"].status == MISMATCH
    assert "not the one round 1's config commits to" in got["dp secret"].detail
    assert got["model"].status == UNCHECKED and got["weights"].status == UNCHECKED
    # an older org's round config commits to nothing: the wrong secret shows in the model
    cfg_blob = storage.blobs[chain.rounds[1].config_cid]  # type: ignore[attr-defined]
    facts = round_facts(chain, storage, 1)  # type: ignore[arg-type]
    import json

    doc = json.loads(cfg_blob)
    del doc["replay"]["central_dp"]
    old = dataclasses.replace(facts, config=Blob(json.dumps(doc).encode()))
    [blind] = verify_all(chain, storage, wrong, r1=old)  # type: ignore[arg-type]
    assert by_name(blind)["dp secret"].status == UNCHECKED
    assert by_name(blind)["model"].status == MISMATCH


def test_the_secret_file_is_read_as_the_org_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "secret.hex"
    path.write_text(SECRET.hex() + "\n")
    assert _dp_secret(str(path)) == SECRET and _dp_secret(None) is None
    path.write_text("zz")
    with pytest.raises(ConfigError, match="not hex"):
        _dp_secret(str(path))
    path.write_text("ab" * 8)
    with pytest.raises(ConfigError, match="8 bytes; the org's secret has at least 32"):
        _dp_secret(str(path))
    with pytest.raises(ConfigError, match="cannot read it"):
        _dp_secret(str(tmp_path / "absent"))
