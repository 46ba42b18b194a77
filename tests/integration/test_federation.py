"""Three clients, three rounds, real processes; and kill -9 of the org, and of a client, at
every step.

Both runs use the same seeds and data, so the final model CID must be identical: the org's
restart logic (chain as truth, sign-once transactions, deterministic aggregation) is what
makes it so.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.state import RoundStatus
from daemons.ipfs.client import IpfsStorage
from daemons.wire.manifest import decode_manifest
from tests.integration.harness import Daemon, Federation, messages

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

_FINAL_CID: dict[str, str] = {}
CRASH_STEPS = ("after_open", "after_fetch", "mid_aggregate", "after_publish", "after_close_sent")
CLIENT_CRASH_STEPS = ("after_train", "after_put", "after_submit_sent")


async def _uninterrupted(tmp: Path, data: dict[str, Path]) -> tuple[str, list[float], list[str]]:
    """Run 3 clients x 3 rounds; returns (final model CID, accuracies, model CIDs)."""
    async with Federation(tmp, data, org_options={"exit_when_done": True}) as fed:
        fed.start_all()
        infos = [await fed.wait_settled(r, timeout_s=180) for r in (1, 2, 3)]
        assert fed.org is not None
        assert fed.org.wait(60) == 0, "org should exit 0 after the last round (exit_when_done)"
        accuracies, cids = [], []
        async with IpfsStorage(fed.ipfs.api_url) as storage:  # type: ignore[union-attr]
            for info in infos:
                assert info.status is RoundStatus.CLOSED and info.num_updates == 3
                raw = await storage.get(info.manifest_cid, _digest_of(storage, info), 1 << 20, 20)
                manifest = decode_manifest(raw)
                assert len(manifest.included) == 3 and manifest.excluded == ()
                accuracies.append(manifest.metrics["accuracy"])
                cids.append(info.model_cid)
        for client in fed.clients:
            assert messages(client).count("update submitted") == 3
        return infos[-1].model_cid, accuracies, cids


def _digest_of(storage: IpfsStorage, info: object) -> bytes:
    from daemons.ipfs.blobs import raw_cid_digest

    digest = raw_cid_digest(info.manifest_cid)  # type: ignore[attr-defined]
    assert digest is not None, "a manifest is small: one raw block"
    return digest


async def baseline_cid(tmp: Path, data: dict[str, Path]) -> str:
    if "cid" not in _FINAL_CID:
        _FINAL_CID["cid"], _, _ = await _uninterrupted(tmp, data)
    return _FINAL_CID["cid"]


def _crash_federation(tmp_path: Path, fed_data: dict[str, Path]) -> Federation:
    """The federation the kill -9 tests run, in its own folder beside the baseline's."""
    (tmp_path / "crash").mkdir()
    return Federation(tmp_path / "crash", fed_data, org_options={"exit_when_done": True})


def _kill_at_each_step(daemon: Daemon, steps: tuple[str, ...], who: str) -> None:
    """Start `daemon` once per step with FEDCHAIN_CRASH_AT=step:1; each run must die by SIGKILL."""
    for step in steps:
        daemon.start(FEDCHAIN_CRASH_AT=f"{step}:1")
        code = daemon.wait(180)
        assert code == -9, f"{who} should have been SIGKILLed at {step}:1, exit {code}"
        assert "FEDCHAIN_CRASH_AT reached: SIGKILL" in messages(daemon)[-1]


async def _ends_on(fed: Federation, expected: str) -> None:
    """Rounds 1-3 close with 3 updates each, the org exits 0, and the final model is `expected`."""
    assert fed.org is not None
    infos = [await fed.wait_settled(r, timeout_s=180) for r in (1, 2, 3)]
    assert fed.org.wait(60) == 0
    assert all(i.status is RoundStatus.CLOSED and i.num_updates == 3 for i in infos)
    assert infos[-1].model_cid == expected, "same seeds must give the same final model"


async def test_three_clients_three_rounds(tmp_path: Path, fed_data: dict[str, Path]) -> None:
    final, accuracies, cids = await _uninterrupted(tmp_path, fed_data)
    _FINAL_CID["cid"] = final
    assert len(set(cids)) == 3, "the model CID changes every round"
    assert accuracies[-1] > accuracies[0], f"accuracy should improve over round 1: {accuracies}"


async def test_org_kill9_at_every_step(tmp_path: Path, fed_data: dict[str, Path]) -> None:
    expected = await baseline_cid(tmp_path / "baseline", fed_data)
    async with _crash_federation(tmp_path, fed_data) as fed:
        assert fed.org is not None
        for client in fed.clients:
            client.start()
        _kill_at_each_step(fed.org, CRASH_STEPS, "org")
        fed.org.start()
        await _ends_on(fed, expected)
        assert await fed.contract.current_round_id() == 3  # type: ignore[union-attr]


async def test_client_kill9_at_every_step(tmp_path: Path, fed_data: dict[str, Path]) -> None:
    """A client killed after training, after its IPFS put and after broadcasting its
    submission trains once, submits once, and the federation ends on the same model."""
    expected = await baseline_cid(tmp_path / "baseline", fed_data)
    async with _crash_federation(tmp_path, fed_data) as fed:
        assert fed.org is not None
        crashing, *others = fed.clients
        fed.org.start()
        for client in others:
            client.start()
        _kill_at_each_step(crashing, CLIENT_CRASH_STEPS, "client")
        crashing.start()
        await _ends_on(fed, expected)
        records = crashing.records()
        trained = [r for r in records if r.get("msg") == "training" and r.get("round_id") == 1]
        assert len(trained) == 1, "the update kept after `after_train` is reused, not retrained"
        said = messages(crashing)
        assert not [m for m in said if "submission refused" in m], "round 1 was submitted once"
        assert said.count("update submitted") == 2  # rounds 2, 3; round 1's line was cut off
