"""Bounded client influence in the org (issue #10 §2): a noise update or a huge sample claim
must not capture the model; rejections carry the reason codes `norm` and `samples`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np
import pytest

from daemons.org.ledger import Submission
from daemons.org.rounds import OrgRounds
from daemons.wire.manifest import Manifest, decode_manifest
from models.codec import BlobMetadata, decode_blob, encode_blob
from tests.daemons.fakes import FakeChain, FakeStorage
from tests.daemons.test_org_rounds import CLIENTS, leaves, make_org

pytestmark = pytest.mark.timeout(120)


async def submit_update(
    org: OrgRounds,
    chain: FakeChain,
    storage: FakeStorage,
    client: str,
    shift: float = 0.01,
    noise_std: float = 0.0,
    num_samples: int = 100,
) -> None:
    """Play a client: base params + shift (+ N(0, noise_std²)), claiming `num_samples`."""
    r = await chain.current_round_id()
    info = chain.rounds[r]
    base = decode_blob(storage.blobs[info.base_cid]).sections["params"]
    rng = np.random.default_rng(int(client, 16) % 1000)
    params = jax.tree_util.tree_map(
        lambda a: (a + shift + noise_std * rng.standard_normal(a.shape)).astype(np.float32), base
    )
    fisher = jax.tree_util.tree_map(np.ones_like, base)
    meta = BlobMetadata("update", r, client, info.base_cid, num_samples, "logreg")
    stored = await storage.put(encode_blob({"params": params, "fisher": fisher}, meta))
    chain.submit_as(client, r, stored.cid, stored.digest, num_samples)
    org.record(r, Submission(client, stored.cid, "0x" + stored.digest.hex(), num_samples))


def with_fed(org: OrgRounds, **changes: object) -> OrgRounds:
    """The same org with some `[federation]` keys changed."""
    org.parts.fed = dataclasses.replace(org.parts.fed, **changes)  # type: ignore[arg-type]
    org.parts.cfg = dataclasses.replace(org.parts.cfg, federation=org.parts.fed)
    return org


async def closed_manifest(org: OrgRounds, chain: FakeChain, storage: FakeStorage) -> Manifest:
    await org.run_until_idle()
    return decode_manifest(storage.blobs[chain.rounds[1].manifest_cid])


def mean_shift(storage: FakeStorage, chain: FakeChain) -> float:
    """How far the round's model moved from its base, averaged over every parameter."""
    model = decode_blob(storage.blobs[chain.rounds[1].model_cid]).sections["params"]
    base = decode_blob(storage.blobs[chain.rounds[1].base_cid]).sections["params"]
    diffs = [n - b for n, b in zip(leaves(model), leaves(base), strict=True)]
    return float(np.mean(np.concatenate([d.ravel() for d in diffs])))


async def test_a_noise_update_is_rejected_for_its_norm(tmp_path: Path) -> None:
    # params + 100·N(0,1): ||delta|| ~ 100·sqrt(7850) ~ 8.9e3, the attack
    org, chain, storage = make_org(tmp_path)
    await org.run_until_idle()
    await submit_update(org, chain, storage, CLIENTS[0], 0.01)
    await submit_update(org, chain, storage, CLIENTS[1], 0.03)
    await submit_update(org, chain, storage, CLIENTS[2], 0.0, noise_std=100.0)
    manifest = await closed_manifest(org, chain, storage)
    assert [i.client for i in manifest.included] == list(CLIENTS[:2])
    assert [(e.client, e.reason) for e in manifest.excluded] == [(CLIENTS[2], "norm")]
    assert "1000" in manifest.excluded[0].detail  # the absolute cap caught it at judge time
    assert mean_shift(storage, chain) == pytest.approx(0.02, abs=1e-6)
    assert org.metrics.updates_rejected.labels(reason="norm")._value.get() == 1
    assert manifest.bounds == {
        "max_update_norm": 1000.0,
        "max_norm_ratio": 10.0,
        "max_samples_per_client": 1e6,
        "max_client_share": 0.5,
    }


async def test_an_update_under_the_absolute_cap_is_judged_against_the_round(
    tmp_path: Path,
) -> None:
    # ||delta|| of a +0.5 shift is 0.5·sqrt(7850) ~ 44 < 1000, but > 10 x the median 2.66
    org, chain, storage = make_org(tmp_path)
    await org.run_until_idle()
    await submit_update(org, chain, storage, CLIENTS[0], 0.01)
    await submit_update(org, chain, storage, CLIENTS[1], 0.03)
    await submit_update(org, chain, storage, CLIENTS[2], 0.5)
    manifest = await closed_manifest(org, chain, storage)
    assert [(e.client, e.reason) for e in manifest.excluded] == [(CLIENTS[2], "norm")]
    assert "round median" in manifest.excluded[0].detail
    assert org.metrics.updates_rejected.labels(reason="norm")._value.get() == 1
    # the rule off: the same inputs are all merged
    org2, chain2, storage2 = make_org(tmp_path / "off")
    with_fed(org2, max_norm_ratio=0.0)
    await org2.run_until_idle()
    for client, shift in zip(CLIENTS, (0.01, 0.03, 0.5), strict=True):
        await submit_update(org2, chain2, storage2, client, shift)
    assert len((await closed_manifest(org2, chain2, storage2)).included) == 3


async def test_a_huge_sample_claim_is_rejected(tmp_path: Path) -> None:
    org, chain, storage = make_org(tmp_path)
    await org.run_until_idle()
    await submit_update(org, chain, storage, CLIENTS[0], 0.01)
    await submit_update(org, chain, storage, CLIENTS[1], 0.03)
    await submit_update(org, chain, storage, CLIENTS[2], 1.0, num_samples=10**15)
    manifest = await closed_manifest(org, chain, storage)
    assert [(e.client, e.reason) for e in manifest.excluded] == [(CLIENTS[2], "samples")]
    assert "max_samples_per_client" in manifest.excluded[0].detail
    assert mean_shift(storage, chain) == pytest.approx(0.02, abs=1e-6)


async def test_a_claim_under_the_cap_carries_at_most_the_configured_share(
    tmp_path: Path,
) -> None:
    # 100 + 100 + 10^6 samples: uncapped, client 2 would weigh 0.9998; capped at 0.5 it
    # gets a count of 200 (= 0.5 x 200 / (1 - 0.5)), so the mean shift is
    # 0.25·0.01 + 0.25·0.03 + 0.5·0.04 = 0.03
    org, chain, storage = make_org(tmp_path)
    await org.run_until_idle()
    await submit_update(org, chain, storage, CLIENTS[0], 0.01)
    await submit_update(org, chain, storage, CLIENTS[1], 0.03)
    await submit_update(org, chain, storage, CLIENTS[2], 0.04, num_samples=10**6)
    manifest = await closed_manifest(org, chain, storage)
    weights = {i.client: i.weight for i in manifest.included}
    assert weights == {CLIENTS[0]: 0.25, CLIENTS[1]: 0.25, CLIENTS[2]: 0.5}
    assert [i.num_samples for i in manifest.included] == [100, 100, 10**6]  # the claims
    assert mean_shift(storage, chain) == pytest.approx(0.03, abs=1e-6)
