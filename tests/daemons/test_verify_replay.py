"""verify's replay over rounds an org settled with fakes: honest rounds pass, tampering is named."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from daemons.verify.checks import DIFFERS, MISMATCH, OK, UNCHECKED, failed
from daemons.verify.facts import Blob, ReplayInputs
from daemons.verify.pins import dataset_digest
from daemons.wire.manifest import Excluded, decode_manifest, encode_manifest
from daemons.wire.round_config import decode_round_config, encode_round_config
from models.codec import decode_blob, encode_blob
from tests.daemons.test_org_rounds import CLIENTS, eval_data, submit
from tests.daemons.verify_helpers import make_org, round_facts, statuses, verify_all

pytestmark = pytest.mark.timeout(180)


async def two_rounds(tmp_path: Path, **fed: object) -> tuple[object, object, object]:
    """Round 1: two good updates and a NaN one; round 2: three good ones."""
    org, chain, storage = make_org(tmp_path, **fed)
    await org.run_until_idle()
    for client, shift in zip(CLIENTS, (0.01, 0.03, float("nan")), strict=True):
        await submit(org, chain, storage, client, shift)
    await org.run_until_idle()
    for client, shift in zip(CLIENTS, (0.02, -0.01, 0.05), strict=True):
        await submit(org, chain, storage, client, shift)
    await org.run_until_idle()
    return org, chain, storage


async def test_honest_rounds_verify_bit_for_bit(tmp_path: Path) -> None:
    _, chain, storage = await two_rounds(tmp_path)
    reports = verify_all(chain, storage, ReplayInputs(eval_data=eval_data()))
    assert [r.round_id for r in reports] == [1, 2]
    assert not failed(reports)
    for report in reports:
        got = statuses(report)
        assert (
            got["model"] == OK
            and "bit-identical" in dict((c.name, c.detail) for c in report.checks)["model"]
        )
        assert got["base"] == OK and got["weights"] == OK and got["metrics"] == OK
        assert got["platform"] == OK
        assert report.verdict == OK
    round1 = {c.name: c.detail for c in reports[0].checks}
    assert round1["base"].startswith("seeded initial model")
    assert "rejected: non_finite" in round1[f"update {CLIENTS[2][:6]}…{CLIENTS[2][-4:]}"]


async def test_without_eval_data_metrics_are_reported_unchecked(tmp_path: Path) -> None:
    _, chain, storage = await two_rounds(tmp_path)
    reports = verify_all(chain, storage)
    assert not failed(reports) and reports[0].verdict == "partial"
    assert statuses(reports[0])["metrics"] == UNCHECKED


async def test_a_model_that_is_not_the_aggregation_is_named(tmp_path: Path) -> None:
    _, chain, storage = await two_rounds(tmp_path)
    facts = round_facts(chain, storage, 1)
    model = decode_blob(storage.blobs[chain.rounds[1].model_cid])
    params = jax.tree_util.tree_map(lambda a: a + np.float32(0.01), model.sections["params"])
    forged = encode_blob({**model.sections, "params": params}, model.metadata)
    assert facts.closed is not None
    closed = dataclasses.replace(facts.closed, model_digest=hashlib.sha256(forged).digest())
    reports = verify_all(
        chain, storage, r1=dataclasses.replace(facts, closed=closed, model=Blob(forged))
    )
    assert reports[0].verdict == MISMATCH
    [bad] = reports[0].mismatches()
    assert bad.name == "model" and "max |Δ| = 0.01" in bad.detail
    # round 2's base is no longer round 1's model (the chain says a different digest)
    assert statuses(reports[1])["base"] == MISMATCH


async def test_a_manifest_that_excludes_an_honest_update_is_named(tmp_path: Path) -> None:
    _, chain, storage = await two_rounds(tmp_path)
    facts = round_facts(chain, storage, 2)
    manifest = decode_manifest(storage.blobs[chain.rounds[2].manifest_cid])
    victim = manifest.included[0]
    forged = dataclasses.replace(
        manifest,
        included=manifest.included[1:],
        excluded=(*manifest.excluded, Excluded(victim.client, victim.cid, "norm", "")),
    )
    reports = verify_all(
        chain, storage, r2=dataclasses.replace(facts, manifest=Blob(encode_manifest(forged)))
    )
    bad = {c.name: c.detail for c in reports[1].mismatches()}
    name = f"update {victim.client[:6]}…{victim.client[-4:]}"
    assert "excluded as 'norm'" in bad[name] and "re-validation: valid" in bad[name]
    assert failed(reports)


async def test_a_swapped_base_is_named(tmp_path: Path) -> None:
    _, chain, storage = await two_rounds(tmp_path)
    facts = round_facts(chain, storage, 2)
    round1 = chain.rounds[1]
    opened = dataclasses.replace(
        facts.opened, base_cid=round1.base_cid, base_digest=round1.base_digest
    )
    swapped = dataclasses.replace(facts, opened=opened, base=Blob(storage.blobs[round1.base_cid]))
    reports = verify_all(chain, storage, r2=swapped)
    [bad] = [c for c in reports[1].mismatches() if c.name == "base"]
    assert "swapped base" in bad.detail and "round 1's model" in bad.detail


async def test_a_stateful_strategy_replays_from_the_server_state_in_the_base(
    tmp_path: Path,
) -> None:
    _, chain, storage = await two_rounds(
        tmp_path, strategy="fedadam", strategy_options={"server_lr": 0.5}
    )
    assert "server_state" in decode_blob(storage.blobs[chain.rounds[2].model_cid]).sections
    reports = verify_all(chain, storage)
    assert [statuses(r)["model"] for r in reports] == [OK, OK]
    # the options are pinned: replaying with the default server_lr would not give the digest
    config = decode_round_config(storage.blobs[chain.rounds[2].config_cid])
    assert config.replay is not None and config.replay["strategy_options"] == {"server_lr": 0.5}


async def test_an_old_round_config_without_pins_says_what_it_could_not_pin(
    tmp_path: Path,
) -> None:
    _, chain, storage = await two_rounds(tmp_path)
    facts = round_facts(chain, storage, 1)
    cfg = decode_round_config(storage.blobs[chain.rounds[1].config_cid])
    old = encode_round_config(dataclasses.replace(cfg, replay=None))
    assert b"replay" not in old
    reports = verify_all(chain, storage, r1=dataclasses.replace(facts, config=Blob(old)))
    got = statuses(reports[0])
    assert got["pins"] == UNCHECKED and got["model"] == OK


async def test_another_platform_reports_the_difference_within_tolerance(tmp_path: Path) -> None:
    _, chain, storage = await two_rounds(tmp_path)
    facts = round_facts(chain, storage, 1)
    doc = json.loads(storage.blobs[chain.rounds[1].config_cid])
    doc["replay"]["platform"]["jaxlib"] = "0.0.1"
    other = Blob(json.dumps(doc, sort_keys=True).encode())
    model = decode_blob(storage.blobs[chain.rounds[1].model_cid])
    params = jax.tree_util.tree_map(lambda a: a + np.float32(1e-7), model.sections["params"])
    near = encode_blob({**model.sections, "params": params}, model.metadata)
    assert facts.closed is not None
    closed = dataclasses.replace(facts.closed, model_digest=hashlib.sha256(near).digest())
    r1 = dataclasses.replace(facts, config=other, closed=closed, model=Blob(near))
    reports = verify_all(chain, storage, ReplayInputs(tolerance=1e-6), r1=r1)
    checks = {c.name: c for c in reports[0].checks}
    assert checks["platform"].status == DIFFERS and "jaxlib: 0.0.1 ->" in checks["platform"].detail
    # float32 rounding: |Δ| is 1e-07 give or take an ulp of the parameter it was added to
    assert checks["model"].status == DIFFERS and "e-07 at params/" in checks["model"].detail
    assert reports[0].verdict != MISMATCH
    strict = verify_all(chain, storage, ReplayInputs(tolerance=1e-8), r1=r1)
    assert strict[0].verdict == MISMATCH


async def test_failed_round_keeps_the_base(tmp_path: Path) -> None:
    org, chain, storage = make_org(tmp_path, min_updates=2)
    await org.run_until_idle()
    chain.now += 120  # deadline passes with no update: the round fails
    await org.run_until_idle()
    await org.run_until_idle()
    assert chain.rounds[1].status.name == "FAILED" and 2 in chain.rounds
    chain.now += 120  # and round 2 too: it must have opened on round 1's base
    await org.run_until_idle()
    reports = verify_all(chain, storage)
    assert [r.state for r in reports[:2]] == ["failed", "failed"]
    got = statuses(reports[0])
    assert (got["failed"], got["base"]) == (OK, OK) and reports[0].state == "failed"
    assert statuses(reports[1])["base"] == OK
    assert "round 1's base (it failed)" in {c.name: c.detail for c in reports[1].checks}["base"]
    assert not failed(reports)


async def test_forgetting_ledger_is_recorded_and_reevaluated(tmp_path: Path) -> None:
    old_task = eval_data()
    old_task = dataclasses.replace(old_task, y=(old_task.y + 1) % 10)
    org, chain, storage = make_org(tmp_path, heldout={"task-a": old_task})
    await org.run_until_idle()
    await submit(org, chain, storage, CLIENTS[0], 0.01)
    chain.now += 120
    await org.run_until_idle()
    manifest = decode_manifest(storage.blobs[chain.rounds[1].manifest_cid])
    assert set(manifest.heldout) == {"task-a"}
    assert set(manifest.heldout["task-a"]) == {"accuracy", "loss", "num_samples"}
    cfg = decode_round_config(storage.blobs[chain.rounds[1].config_cid])
    assert cfg.replay is not None
    assert cfg.replay["heldout_data"] == {"task-a": dataset_digest(old_task)}
    [report] = verify_all(chain, storage, ReplayInputs(heldout={"task-a": old_task}))
    assert statuses(report)["heldout task-a"] == OK
    [wrong] = verify_all(chain, storage, ReplayInputs(heldout={"task-a": eval_data()}))
    detail = {c.name: c.detail for c in wrong.checks}["heldout task-a"]
    assert "not the set the org pinned" in detail
    forged = dataclasses.replace(
        manifest, heldout={"task-a": {**manifest.heldout["task-a"], "accuracy": 0.99}}
    )
    facts = dataclasses.replace(
        round_facts(chain, storage, 1), manifest=Blob(encode_manifest(forged))
    )
    [lied] = verify_all(chain, storage, ReplayInputs(heldout={"task-a": old_task}), r1=facts)
    assert statuses(lied)["heldout task-a"] == MISMATCH


async def test_round_level_bounds_are_replayed(tmp_path: Path) -> None:
    """An outlier the org's round-level norm rule rejected is confirmed by replaying the rule."""
    org, chain, storage = make_org(tmp_path)
    await org.run_until_idle()
    for client, shift in zip(CLIENTS, (0.01, 0.02, 5.0), strict=True):
        await submit(org, chain, storage, client, shift)
    await org.run_until_idle()
    manifest = decode_manifest(storage.blobs[chain.rounds[1].manifest_cid])
    assert [(e.client, e.reason) for e in manifest.excluded] == [(CLIENTS[2], "norm")]
    cfg = decode_round_config(storage.blobs[chain.rounds[1].config_cid])
    assert cfg.replay is not None and cfg.replay["influence"]["max_norm_ratio"] == 10.0
    [report] = [r for r in verify_all(chain, storage) if r.round_id == 1]
    name = f"update {CLIENTS[2][:6]}…{CLIENTS[2][-4:]}"
    details = {c.name: c.detail for c in report.checks}
    assert statuses(report)[name] == OK and "round-level bound" in details[name]
    assert statuses(report)["model"] == OK
    # replayed without the pinned bounds, the outlier would be merged: the pin matters
    doc = json.loads(storage.blobs[chain.rounds[1].config_cid])
    doc["replay"]["influence"] = None
    unpinned = dataclasses.replace(
        round_facts(chain, storage, 1), config=Blob(json.dumps(doc).encode())
    )
    [lost] = [r for r in verify_all(chain, storage, r1=unpinned) if r.round_id == 1]
    assert statuses(lost)[name] == MISMATCH


async def test_sealed_updates_are_opened_with_the_auditor_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round whose updates are sealed (real FCENV envelopes) to the org and an auditor:
    with the auditor's key file verify opens and replays them; without it, it says so."""
    from daemons.privacy.envelope import Binding, seal_update
    from daemons.privacy.keys import generate, public_hex, write_key_file
    from daemons.privacy.policy import UpdateEncryption
    from daemons.verify.cli import _opener

    _, chain, storage = await two_rounds(tmp_path)
    facts = round_facts(chain, storage, 2)
    org_key, auditor, outsider = generate(), generate(), generate()
    policy = UpdateEncryption(public_hex(org_key), (public_hex(auditor),))
    cfg = decode_round_config(facts.config.data or b"")
    config = Blob(encode_round_config(dataclasses.replace(cfg, encryption=policy)))
    sealed = {
        c: Blob(
            seal_update(b.data or b"", Binding(2, c, facts.opened.base_cid), policy.recipients())
        )
        for c, b in facts.update_blobs.items()
    }
    r2 = dataclasses.replace(facts, config=config, update_blobs=sealed)
    monkeypatch.setenv("AUDITOR_PW", "pw")
    write_key_file(tmp_path / "auditor.key", auditor, "pw")
    write_key_file(tmp_path / "outsider.key", outsider, "pw")

    opener = _opener(str(tmp_path / "auditor.key"), "AUDITOR_PW")
    [_, opened] = verify_all(chain, storage, ReplayInputs(open_update=opener), r2=r2)
    assert statuses(opened)["model"] == OK and not opened.mismatches(), opened
    [_, blind] = verify_all(chain, storage, r2=r2)
    got = statuses(blind)
    assert got["model"] == UNCHECKED and not blind.mismatches()
    assert all(v == UNCHECKED for k, v in got.items() if k.startswith("update "))
    assert (
        "pass --auditor-key"
        in {c.name: c.detail for c in blind.checks}[f"update {CLIENTS[0][:6]}…{CLIENTS[0][-4:]}"]
    )
    # a key the round does not seal to: the verifier's problem, not the org's
    wrong = _opener(str(tmp_path / "outsider.key"), "AUDITOR_PW")
    [_, other] = verify_all(chain, storage, ReplayInputs(open_update=wrong), r2=r2)
    assert statuses(other)["model"] == UNCHECKED and not other.mismatches()
    # an update not sealed to the auditor, yet included: the org should have refused it
    victim = CLIENTS[1]
    only_org = seal_update(
        facts.update_blobs[victim].data or b"",
        Binding(2, victim, facts.opened.base_cid),
        policy.recipients()[:1],
    )
    skipped = dataclasses.replace(r2, update_blobs={**sealed, victim: Blob(only_org)})
    [_, caught] = verify_all(chain, storage, ReplayInputs(open_update=opener), r2=skipped)
    bad = {c.name: c.detail for c in caught.mismatches()}
    assert "rejected as 'recipients'" in bad[f"update {victim[:6]}…{victim[-4:]}"]


async def test_a_central_dp_round_says_the_merge_needs_the_org_secret(tmp_path: Path) -> None:
    from daemons.org.privacy import OrgPrivacy
    from daemons.runtime.config import PrivacyConfig, TrainingConfig
    from tests.daemons.test_org_rounds import ORG

    dp = PrivacyConfig(mode="central", clip_norm=1.0, noise_multiplier=1.0)
    privacy = OrgPrivacy(dp, ORG, b"s" * 32)
    training = TrainingConfig(penalty="none")
    org, chain, storage = make_org(tmp_path, privacy=privacy, training=training)
    await org.run_until_idle()
    for client, shift in zip(CLIENTS, (0.01, 0.03, 0.02), strict=True):
        await submit(org, chain, storage, client, shift)
    await org.run_until_idle()
    reports = verify_all(chain, storage, ReplayInputs(eval_data=eval_data()))
    assert not failed(reports), "an honest DP round is no mismatch"
    checks = {c.name: c for c in reports[0].checks}
    assert checks["model"].status == UNCHECKED and "secret" in checks["model"].detail
    assert checks["weights"].status == UNCHECKED
    assert checks["metrics"].status == OK  # re-evaluated on the published (noised) model
