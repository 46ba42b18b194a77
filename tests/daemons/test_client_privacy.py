"""A client in a local-DP federation clips and noises its own change; under any DP it keeps its
loss and accuracy to itself. The round config carries the recipe (absent = no DP)."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from contracts.events import LogMeta, RoundOpened
from daemons.errors import RejectedUpdate
from daemons.runtime.config import TrainingConfig
from daemons.wire.round_config import (
    RoundConfig,
    RoundPrivacy,
    decode_round_config,
    encode_round_config,
)
from models.codec import BlobMetadata, decode_blob, encode_blob
from models.tasks.fashion_mnist import get_model
from models.training import params_to_numpy
from tests.daemons.fakes import FakeChain, FakeStorage
from tests.daemons.test_client_rounds import ME, make_client

pytestmark = pytest.mark.timeout(120)
NONE = TrainingConfig(epochs=1, batch_size=10, penalty="none")


async def open_dp_round(
    chain: FakeChain, storage: FakeStorage, privacy: RoundPrivacy | None
) -> RoundOpened:
    params = params_to_numpy(get_model("logreg").init(jax.random.PRNGKey(0)))
    base = await storage.put(
        encode_blob({"params": params}, BlobMetadata("model", 0, "0xorg", "", 0, "logreg"))
    )
    config = RoundConfig(1, "logreg", 7, NONE, fisher=False, privacy=privacy)
    cfg = await storage.put(encode_round_config(config))
    r = chain.start_round(base.cid, base.digest, 2000, cfg.cid)
    return RoundOpened(r, base.cid, base.digest, 2000, 1, 3, cfg.cid, LogMeta(1, "0x00", "0x01", 0))


async def _delta(tmp_path: Path, privacy: RoundPrivacy | None) -> tuple[np.ndarray, dict]:
    client, chain, storage, _ = make_client(tmp_path)
    event = await open_dp_round(chain, storage, privacy)
    await client.on_round_opened(event)
    update = decode_blob(storage.blobs[chain.submitted[(1, ME)][0]])
    base = decode_blob(storage.blobs[event.base_cid])
    new = jax.tree_util.tree_leaves(update.sections["params"])
    old = jax.tree_util.tree_leaves(base.sections["params"])
    delta = np.concatenate([(a - b).ravel() for a, b in zip(new, old, strict=True)])
    return delta, dict(update.metadata.train_metrics)


async def test_local_dp_update_is_clipped_change_plus_noise(tmp_path: Path) -> None:
    plain, facts = await _delta(tmp_path / "plain", None)
    assert {"loss", "accuracy"} <= set(facts)
    # 7850 logreg params: noise std z·C = 0.2·0.05 = 0.01 per coordinate, norm ≈ 0.01·√7850 = 0.89
    noisy, dp_facts = await _delta(tmp_path / "dp", RoundPrivacy("local", 0.05, 0.2))
    assert set(dp_facts) == {"train_s", "fisher_s"}  # nothing learned from the data
    clipped = plain * min(1.0, 0.05 / np.linalg.norm(plain))  # the same training, clipped
    assert np.std(noisy - clipped) == pytest.approx(0.01, rel=0.05)
    assert abs(np.mean(noisy - clipped)) < 0.001
    again, _ = await _delta(tmp_path / "dp2", RoundPrivacy("local", 0.05, 0.2))
    assert not np.array_equal(noisy, again), "local noise is fresh: the org cannot regenerate it"


async def test_central_dp_client_sends_its_plain_update_without_loss(tmp_path: Path) -> None:
    plain, _ = await _delta(tmp_path / "plain", None)
    central, facts = await _delta(tmp_path / "c", RoundPrivacy("central", 0.05, 0.2))
    np.testing.assert_array_equal(central, plain)  # the org clips and noises
    assert "loss" not in facts and "accuracy" not in facts


def test_round_config_privacy_round_trip_and_checks() -> None:
    plain = RoundConfig(1, "logreg", 7, NONE, fisher=False)
    assert b"privacy" not in encode_round_config(plain)  # absent = off: old bytes, old CIDs
    assert decode_round_config(encode_round_config(plain)).privacy is None
    dp = RoundConfig(1, "logreg", 7, NONE, fisher=False, privacy=RoundPrivacy("local", 1.0, 0.8))
    assert decode_round_config(encode_round_config(dp)) == dp
    for bad in (
        RoundPrivacy("shuffle", 1.0, 1.0),
        RoundPrivacy("local", 0.0, 1.0),
        RoundPrivacy("local", 1.0, -1.0),
    ):
        with pytest.raises(RejectedUpdate):
            decode_round_config(
                encode_round_config(RoundConfig(1, "logreg", 7, NONE, False, privacy=bad))
            )
    with_fisher = RoundConfig(1, "logreg", 7, NONE, True, privacy=RoundPrivacy("local", 1.0, 1.0))
    with pytest.raises(RejectedUpdate, match="Fisher"):
        decode_round_config(encode_round_config(with_fisher))
