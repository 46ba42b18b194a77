"""DP federations of real processes: central DP (the org's secret noise, ε in every manifest,
the budget stop), and local DP (clients noise their own updates)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import numpy as np
import pytest

from contracts.state import RoundStatus
from daemons.ipfs.blobs import raw_cid_digest
from daemons.ipfs.client import IpfsStorage
from daemons.wire.manifest import Manifest, decode_manifest
from models.accountant import epsilon_spent
from models.codec import decode_blob
from tests.integration.harness import Federation, messages
from tests.integration.test_verify import checks, verify_json

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
NO_FISHER = {"penalty": "none"}


async def _manifests(fed: Federation, rounds: int) -> list[Manifest]:
    out = []
    async with IpfsStorage(fed.ipfs.api_url) as storage:  # type: ignore[union-attr]
        for r in range(1, rounds + 1):
            info = await fed.round(r)
            assert info is not None and info.status is RoundStatus.CLOSED
            digest = raw_cid_digest(info.manifest_cid)
            assert digest is not None
            out.append(decode_manifest(await storage.get(info.manifest_cid, digest, 1 << 20, 20)))
    return out


async def test_central_dp_needs_the_secret_records_epsilon_and_stops_at_the_budget(
    tmp_path: Path, fed_data: dict[str, Path]
) -> None:
    z, delta = 1.5, 1e-5
    budget = (epsilon_spent([z] * 2, delta) + epsilon_spent([z] * 3, delta)) / 2  # 2 rounds fit
    secret = tmp_path / "dp.secret"
    privacy = {"mode": "central", "clip_norm": 0.2, "noise_multiplier": z}
    privacy |= {"epsilon_budget": budget, "secret_file": str(secret)}
    async with Federation(
        tmp_path,
        fed_data,
        rounds=4,
        org_options={"exit_when_done": True},
        training_options=NO_FISHER,
        privacy=privacy,
    ) as fed:
        assert fed.org is not None
        fed.org.start()
        assert fed.org.wait(120) == 2, "no secret: a config error, exit 2"
        assert "privacy.secret_file" in fed.org.text() and "Traceback" not in fed.org.text()
        secret.write_text(secrets.token_hex(32))
        fed.start_all()
        await fed.wait_settled(2, timeout_s=240)
        assert fed.org.wait(120) == 0, "the budget ends the federation (exit_when_done)"
        assert await fed.contract.current_round_id() == 2  # type: ignore[union-attr]
        stopped = [
            r for r in fed.org.records() if r.get("msg") == "federation stopped: privacy budget"
        ]
        assert len(stopped) == 1 and "round 3" in stopped[0]["reason"], stopped
        manifests = await _manifests(fed, 2)
        for r, manifest in enumerate(manifests, start=1):
            dp = manifest.privacy
            assert dp["mode"] == "central" and dp["noise_multiplier"] == z
            assert dp["epsilon"] == pytest.approx(epsilon_spent([z] * r, delta))
            assert dp["epsilon"] <= dp["epsilon_budget"] == pytest.approx(budget)
            assert dp["denominator"] == 3.0 and len(manifest.included) == 3
            assert all("loss" not in i.train for i in manifest.included)
        # an auditor handed the secret replays the noised merges bit for bit; a wrong one is named
        wrong = tmp_path / "wrong.secret"
        wrong.write_text(secrets.token_hex(32))
        code, doc = await verify_json(fed, "--dp-secret-file", str(secret))
        assert code == 0 and doc["ok"], json.dumps(doc, indent=1)
        for r in (1, 2):
            got = checks(doc, r)
            assert got["model"]["status"] == "ok" and "bit-identical" in got["model"]["detail"]
            assert got["weights"]["status"] == "ok" and got["dp secret"]["status"] == "ok"
        code, doc = await verify_json(fed, "--dp-secret-file", str(wrong))
        assert code == 1
        for r in (1, 2):
            got = checks(doc, r)
            assert got["dp secret"]["status"] == "MISMATCH", got["dp secret"]
            assert got["model"]["status"] == "unchecked"


async def test_local_dp_clients_publish_noisy_updates(
    tmp_path: Path, fed_data: dict[str, Path]
) -> None:
    z, clip = 1.0, 0.1
    async with Federation(
        tmp_path,
        fed_data,
        rounds=2,
        org_options={"exit_when_done": True},
        training_options=NO_FISHER,
        privacy={"mode": "local", "clip_norm": clip, "noise_multiplier": z},
    ) as fed:
        fed.start_all()
        await fed.wait_settled(2, timeout_s=240)
        assert fed.org is not None and fed.org.wait(120) == 0
        manifests = await _manifests(fed, 2)
        assert [m.privacy["epsilon"] for m in manifests] == [
            pytest.approx(epsilon_spent([z] * r, 1e-5)) for r in (1, 2)
        ]
        assert all(m.privacy["mode"] == "local" for m in manifests)
        async with IpfsStorage(fed.ipfs.api_url) as storage:  # type: ignore[union-attr]
            info = await fed.round(1)
            assert info is not None
            config = json.loads(await storage.cat(info.config_cid, 1 << 20, 20))
            assert config["privacy"] == {"mode": "local", "clip_norm": clip, "noise_multiplier": z}
            base = decode_blob(await storage.get(info.base_cid, info.base_digest, 1 << 20, 20))
            inc = manifests[0].included[0]
            raw = await storage.get(inc.cid, bytes.fromhex(inc.digest[2:]), 1 << 20, 20)
            update = decode_blob(raw)
        assert "loss" not in update.metadata.train_metrics
        delta = np.concatenate(
            [
                (
                    np.asarray(update.sections["params"][k][j]) - base.sections["params"][k][j]
                ).ravel()
                for k in base.sections["params"]
                for j in base.sections["params"][k]
            ]
        )
        # a clipped change has norm <= 0.1; the client's noise adds z·C·√7850 ≈ 8.9
        assert np.linalg.norm(delta) == pytest.approx(z * clip * np.sqrt(delta.size), rel=0.1)
        for client in fed.clients:
            assert messages(client).count("update submitted") == 2
