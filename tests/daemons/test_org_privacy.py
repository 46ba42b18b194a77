"""The org's DP layer with fakes: central noisy mean (replayable with the secret), the ε record
in the manifest, the budget stop, local DP in the round config, and loading the secret."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest

from daemons.errors import ConfigError
from daemons.org.decide import Action
from daemons.org.ledger import Ledger
from daemons.org.privacy import OrgPrivacy, load_secret, public_train, spent_noise
from daemons.runtime.config import PrivacyConfig, TrainingConfig
from daemons.wire.manifest import decode_manifest
from daemons.wire.round_config import decode_round_config
from models.accountant import epsilon_spent
from models.codec import decode_blob
from models.dp import DpFedAvg, noise_key
from models.strategies import ClientUpdate
from tests.daemons.fakes import MemKV
from tests.daemons.test_org_rounds import CLIENTS, ORG, leaves, make_org, submit

pytestmark = pytest.mark.timeout(120)
SECRET = bytes(range(100, 132))
CONTRACT = "0x" + "cc" * 20


def dp_org(tmp_path: Path, rounds: int = 2, **privacy: object) -> tuple:
    org, chain, storage = make_org(tmp_path, rounds=rounds, training=TrainingConfig(penalty="none"))
    cfg = PrivacyConfig(**{"mode": "central", "clip_norm": 0.5, "noise_multiplier": 2.0, **privacy})  # type: ignore[arg-type]
    org.parts.privacy = OrgPrivacy(cfg, CONTRACT, SECRET if cfg.mode == "central" else None)
    return org, chain, storage


async def test_central_round_is_the_noisy_clipped_mean_and_records_epsilon(tmp_path: Path) -> None:
    org, chain, storage = dp_org(tmp_path)
    await org.run_until_idle()
    config = decode_round_config(storage.blobs[chain.rounds[1].config_cid])
    assert config.privacy is not None and config.privacy.mode == "central" and not config.fisher
    # ||Δ|| = 0.01·√7850 = 0.886 and 0.03·√7850 = 2.66: both clipped to C = 0.5
    await submit(
        org,
        chain,
        storage,
        CLIENTS[0],
        0.01,
        with_fisher=False,
        train_metrics={"loss": 1.5, "train_s": 0.2},
    )
    await submit(org, chain, storage, CLIENTS[1], 0.03, with_fisher=False)
    await submit(org, chain, storage, CLIENTS[2], float("nan"), with_fisher=False)
    await org.run_until_idle()
    closed = chain.rounds[1]
    manifest = decode_manifest(storage.blobs[closed.manifest_cid])
    dp = manifest.privacy
    assert dp["mode"] == "central" and dp["clip_norm"] == 0.5 and dp["noise_multiplier"] == 2.0
    assert dp["epsilon"] == pytest.approx(epsilon_spent([2.0], 1e-5)) and dp["delta"] == 1e-5
    assert dp["denominator"] == 3.0  # every on-chain submission counts, the rejected one too
    assert dp["sampling_rate"] == 1.0 and dp["rounds_accounted"] == 1
    assert [i.weight for i in manifest.included] == [pytest.approx(1 / 3)] * 2
    assert manifest.included[0].train == {"train_s": 0.2}  # no loss on private data

    # replay by who holds the secret: the same pure step, bit for bit
    base = decode_blob(storage.blobs[closed.base_cid]).sections["params"]
    updates = [
        ClientUpdate(
            c, jax.tree_util.tree_map(lambda a, s=s: (a + s).astype(np.float32), base), 100
        )
        for c, s in zip(CLIENTS[:2], (0.01, 0.03), strict=True)
    ]
    replay = DpFedAvg(0.5, 2.0, 3.0, noise_key(SECRET, CONTRACT, 1)).aggregate(base, updates)
    model = decode_blob(storage.blobs[closed.model_cid]).sections["params"]
    assert replay is not None
    for got, want in zip(leaves(model), leaves(replay.params), strict=True):
        np.testing.assert_array_equal(got, want)
    wrong = DpFedAvg(0.5, 2.0, 3.0, noise_key(b"\x00" * 32, CONTRACT, 1)).aggregate(base, updates)
    assert wrong is not None
    assert not np.array_equal(leaves(model)[0], leaves(wrong.params)[0])
    # the noise is there: std z·C/W = 2·0.5/3 around the clipped mean
    drift = np.concatenate(
        [(m - b).ravel() for m, b in zip(leaves(model), leaves(base), strict=True)]
    )
    assert np.std(drift) == pytest.approx(1 / 3, rel=0.05)


async def test_budget_stops_before_the_round_that_would_exceed_it(tmp_path: Path) -> None:
    one, two = epsilon_spent([2.0], 1e-5), epsilon_spent([2.0, 2.0], 1e-5)
    org, chain, storage = dp_org(tmp_path, rounds=5, epsilon_budget=(one + two) / 2)
    assert (await org.run_until_idle()).action is Action.WAIT
    for i, client in enumerate(CLIENTS):
        await submit(org, chain, storage, client, 0.01 * (i + 1), with_fisher=False)
    decision = await org.run_until_idle()
    assert decision.action is Action.BUDGET, decision.reason
    assert f"{two:.4g}" in decision.reason and "round 2" in decision.reason
    assert [s[1] for s in chain.sent] == ["openRound", "closeRound"]  # round 2 never opened
    manifest = decode_manifest(storage.blobs[chain.rounds[1].manifest_cid])
    assert manifest.privacy["epsilon"] == pytest.approx(one)
    assert manifest.privacy["epsilon_budget"] == pytest.approx((one + two) / 2)
    assert (await org.run_until_idle()).action is Action.BUDGET  # and stays stopped
    assert b"fedchain_privacy_epsilon " + str(one).encode()[:6] in org.metrics.render()


async def test_local_round_config_asks_clients_to_noise(tmp_path: Path) -> None:
    org, chain, storage = dp_org(tmp_path, mode="local", noise_multiplier=1.0)
    await org.run_until_idle()
    doc = json.loads(storage.blobs[chain.rounds[1].config_cid])
    assert doc["privacy"] == {"mode": "local", "clip_norm": 0.5, "noise_multiplier": 1.0}
    for i, client in enumerate(CLIENTS):
        await submit(org, chain, storage, client, 0.01 * (i + 1), with_fisher=False)
    await org.run_until_idle()
    manifest = decode_manifest(storage.blobs[chain.rounds[1].manifest_cid])
    assert manifest.privacy["mode"] == "local" and "denominator" not in manifest.privacy
    assert manifest.privacy["epsilon"] == pytest.approx(epsilon_spent([1.0], 1e-5))
    assert [i.weight for i in manifest.included] == [pytest.approx(1 / 3)] * 3  # plain FedAvg


def test_rounds_opened_without_dp_make_epsilon_unbounded() -> None:
    ledger = Ledger(MemKV())
    dp = OrgPrivacy(PrivacyConfig(mode="central", noise_multiplier=3.0), ORG, SECRET)
    dp.record_open(ledger, 2)  # round 1 opened before DP was on
    assert spent_noise(ledger, 2) == [None, 3.0]
    assert dp.epsilon(ledger, 2) == math.inf
    dp.record_open(ledger, 1)
    assert dp.epsilon(ledger, 2) == pytest.approx(epsilon_spent([3.0, 3.0], 1e-5))
    assert dp.epsilon(ledger, 2, next_round=True) == pytest.approx(epsilon_spent([3.0] * 3, 1e-5))
    assert dp.record(math.inf, 2, None)["epsilon"] == "inf"  # JSON has no infinity


def test_public_train_drops_what_was_learned_from_data() -> None:
    dp = OrgPrivacy(PrivacyConfig(mode="local"), ORG)
    facts = {"loss": 0.3, "accuracy": 0.9, "train_s": 1.0}
    assert public_train(facts, dp) == {"train_s": 1.0}
    assert public_train(facts, OrgPrivacy(PrivacyConfig(), ORG)) == facts
    assert public_train(facts, None) == facts


def test_load_secret_from_env_or_file_and_clear_errors(tmp_path: Path) -> None:
    cfg = PrivacyConfig(mode="central")
    assert load_secret(cfg, {"FEDCHAIN_DP_SECRET": SECRET.hex()}) == SECRET
    path = tmp_path / "dp.secret"
    path.write_text("0x" + SECRET.hex() + "\n")
    assert load_secret(PrivacyConfig(mode="central", secret_file=str(path)), {}) == SECRET
    with pytest.raises(ConfigError, match="FEDCHAIN_DP_SECRET"):
        load_secret(cfg, {}, "org.toml")
    with pytest.raises(ConfigError, match="at least 32"):
        load_secret(cfg, {"FEDCHAIN_DP_SECRET": "ab" * 16})
    with pytest.raises(ConfigError, match="not hex"):
        load_secret(cfg, {"FEDCHAIN_DP_SECRET": "zz" * 32})
    with pytest.raises(ConfigError, match="cannot read"):
        load_secret(PrivacyConfig(mode="central", secret_file=str(tmp_path / "none")), {})


async def test_same_secret_same_model_cid_other_secret_other_noise(tmp_path: Path) -> None:
    cids = []
    for name, secret in (("a", SECRET), ("b", SECRET), ("c", b"\x07" * 32)):
        org, chain, storage = dp_org(tmp_path / name)
        org.parts.privacy = OrgPrivacy(org.parts.privacy.cfg, CONTRACT, secret)
        await org.run_until_idle()
        for i, client in enumerate(CLIENTS):
            await submit(org, chain, storage, client, 0.01 * (i + 1), with_fisher=False)
        await org.run_until_idle()
        cids.append(chain.rounds[1].model_cid)
    assert cids[0] == cids[1] != cids[2]  # a restarted org republishes the same model


async def test_central_dp_clips_instead_of_the_round_level_norm_screen(tmp_path: Path) -> None:
    # a change 100x the others': the ratio screen (max_norm_ratio 10) rejects it without DP;
    # under central DP it is clipped to C like every other, and nobody's verdict depends on it
    verdicts = []
    for name, dp in (("plain", False), ("dp", True)):
        if dp:
            org, chain, storage = dp_org(tmp_path / name)
        else:
            training = TrainingConfig(penalty="none")
            org, chain, storage = make_org(tmp_path / name, training=training)
        await org.run_until_idle()
        for client, shift in zip(CLIENTS, (0.01, 0.012, 1.0), strict=True):
            await submit(org, chain, storage, client, shift, with_fisher=False)
        await org.run_until_idle()
        manifest = decode_manifest(storage.blobs[chain.rounds[1].manifest_cid])
        verdicts.append(sorted(e.reason for e in manifest.excluded))
    assert verdicts == [["norm"], []]
