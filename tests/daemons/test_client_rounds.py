"""Client round handling with fakes: train once, submit once, skip late/stale, log refusals."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import jax
import numpy as np
import pytest
from nacl.public import PrivateKey

from contracts.events import LogMeta, RoundOpened
from daemons.client.job import train_seed
from daemons.client.rounds import ClientRounds
from daemons.ipfs.blobs import BlobCache
from daemons.privacy.envelope import Binding, open_update
from daemons.privacy.keys import public_hex
from daemons.privacy.policy import UpdateEncryption
from daemons.runtime.config import (
    ChainConfig,
    DaemonConfig,
    DataConfig,
    EncryptionConfig,
    IdentityConfig,
    IpfsConfig,
    ServiceConfig,
    TrainingConfig,
)
from daemons.runtime.metrics import Metrics
from daemons.wire.round_config import RoundConfig, encode_round_config
from models.codec import BlobMetadata, decode_blob, encode_blob
from models.data import Dataset
from models.tasks.fashion_mnist import get_model
from models.training import params_to_numpy
from tests.daemons.fakes import FakeChain, FakeStorage, MemKV

pytestmark = pytest.mark.timeout(120)
ME = "0x" + "C1" * 20


def dataset(n: int = 40, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    return Dataset(x=x, y=rng.integers(0, 10, n).astype(np.int32))


def config(tmp_path: Path) -> DaemonConfig:
    return DaemonConfig(
        path=str(tmp_path / "c.toml"),
        role="client",
        chain=ChainConfig(contract=ME),
        identity=IdentityConfig(),
        ipfs=IpfsConfig(timeout_s=5, max_blob_bytes=1 << 20),
        service=ServiceConfig(state_dir=str(tmp_path)),
        data=DataConfig(path="x.npz"),
    )


async def open_round(
    chain: FakeChain,
    storage: FakeStorage,
    deadline: int,
    penalty: str = "ewc",
    fisher: bool = True,
    base_fisher: bool = True,
    encryption: UpdateEncryption | None = None,
) -> RoundOpened:
    params = params_to_numpy(get_model("logreg").init(jax.random.PRNGKey(0)))
    zeros = jax.tree_util.tree_map(np.zeros_like, params)
    meta = BlobMetadata("model", 0, "0xorg", "", 0, "logreg")
    sections = {"params": params, "fisher": zeros} if base_fisher else {"params": params}
    base = await storage.put(encode_blob(sections, meta))
    training = TrainingConfig(epochs=1, batch_size=10, fisher_samples=20, penalty=penalty)
    round_config = RoundConfig(1, "logreg", 7, training, fisher=fisher, encryption=encryption)
    cfg = await storage.put(encode_round_config(round_config))
    r = chain.start_round(base.cid, base.digest, deadline, cfg.cid)
    info = chain.rounds[r]
    return RoundOpened(
        r, info.base_cid, info.base_digest, deadline, 1, 3, cfg.cid, LogMeta(1, "0x00", "0x01", 0)
    )


def make_client(tmp_path: Path) -> tuple[ClientRounds, FakeChain, FakeStorage, MemKV]:
    chain, storage, kv = FakeChain(ME), FakeStorage(), MemKV()
    rounds = ClientRounds(
        config(tmp_path),
        chain,
        storage,
        kv,
        BlobCache(tmp_path / "b"),
        dataset(),
        Metrics("client"),
    )
    return rounds, chain, storage, kv


async def test_trains_and_submits_once(tmp_path: Path) -> None:
    client, chain, storage, _ = make_client(tmp_path)
    event = await open_round(chain, storage, deadline=2000)
    await client.on_round_opened(event)
    await client.on_round_opened(event)  # the same event delivered twice
    assert [s[1] for s in chain.sent] == ["submitUpdate"]
    cid, _, n = chain.submitted[(1, ME)]
    assert n == 40
    update = decode_blob(storage.blobs[cid])
    assert update.metadata.kind == "update" and update.metadata.client == ME
    assert update.metadata.base_cid == event.base_cid and update.metadata.round_id == 1
    assert set(update.sections) == {"params", "fisher"}
    assert {"loss", "accuracy", "train_s", "fisher_s"} <= set(update.metadata.train_metrics)
    base = decode_blob(storage.blobs[event.base_cid])
    new, old = (
        jax.tree_util.tree_leaves(update.sections["params"]),
        jax.tree_util.tree_leaves(base.sections["params"]),
    )
    assert max(float(np.abs(a - b).max()) for a, b in zip(new, old, strict=True)) > 0


async def test_no_fisher_is_computed_or_sent_when_the_round_config_says_so(
    tmp_path: Path,
) -> None:
    client, chain, storage, _ = make_client(tmp_path)
    event = await open_round(chain, storage, 2000, penalty="none", fisher=False, base_fisher=False)
    await client.on_round_opened(event)
    update = decode_blob(storage.blobs[chain.submitted[(1, ME)][0]])
    assert set(update.sections) == {"params"}
    assert update.metadata.train_metrics["fisher_s"] < 0.01


async def test_ewc_on_a_base_without_a_fisher_trains_with_zero_importance(tmp_path: Path) -> None:
    """The first EWC round after rounds that used no Fisher: the same as round 1."""
    client, chain, storage, _ = make_client(tmp_path)
    await client.on_round_opened(await open_round(chain, storage, 2000, base_fisher=False))
    update = decode_blob(storage.blobs[chain.submitted[(1, ME)][0]])
    assert set(update.sections) == {"params", "fisher"}


async def test_retraining_is_deterministic(tmp_path: Path) -> None:
    a, chain_a, storage_a, _ = make_client(tmp_path / "a")
    b, chain_b, storage_b, _ = make_client(tmp_path / "b")
    for client, chain, storage in ((a, chain_a, storage_a), (b, chain_b, storage_b)):
        await client.on_round_opened(await open_round(chain, storage, deadline=2000))
    pa = decode_blob(storage_a.blobs[chain_a.submitted[(1, ME)][0]]).sections
    pb = decode_blob(storage_b.blobs[chain_b.submitted[(1, ME)][0]]).sections
    for x, y in zip(jax.tree_util.tree_leaves(pa), jax.tree_util.tree_leaves(pb), strict=True):
        np.testing.assert_array_equal(x, y)
    assert train_seed(7, 1, ME) != train_seed(7, 2, ME)


async def test_deadline_passed_skips_training(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, chain, storage, kv = make_client(tmp_path)
    event = await open_round(chain, storage, deadline=900)
    with caplog.at_level(logging.INFO, logger="fedchain"):
        await client.on_round_opened(event)
    assert chain.sent == [] and kv.data == {}
    assert "deadline already passed" in caplog.text


async def test_late_submission_is_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, chain, storage, _ = make_client(tmp_path)
    event = await open_round(chain, storage, deadline=2000)
    original = chain.now_s

    async def now_then_late() -> int:
        chain.now_s = original  # type: ignore[method-assign]
        value = chain.now
        chain.now = 5000  # the deadline passes while training
        return value

    chain.now_s = now_then_late  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="fedchain"):
        await client.on_round_opened(event)
    assert (1, ME) not in chain.submitted
    assert "submission refused by the contract: DeadlinePassed (too late)" in caplog.text
    assert "DeadlinePassed" in caplog.text


async def test_stale_round_is_ignored(tmp_path: Path) -> None:
    client, chain, storage, _ = make_client(tmp_path)
    first = await open_round(chain, storage, deadline=2000)
    chain._closeRound(1, "x", b"\0" * 32, "m")
    await open_round(chain, storage, deadline=2000)
    await client.on_round_opened(first)
    assert chain.sent == []
    stale = dataclasses.replace(first, round_id=2)
    await client.on_round_opened(stale)
    assert [s[2][0] for s in chain.sent] == [2]


@pytest.mark.parametrize("penalty", ["none", "fedprox", "fedcurv"])
async def test_other_penalties(tmp_path: Path, penalty: str) -> None:
    client, chain, storage, _ = make_client(tmp_path)
    await client.on_round_opened(await open_round(chain, storage, 2000, penalty))
    update = decode_blob(storage.blobs[chain.submitted[(1, ME)][0]]).sections
    if penalty == "fedcurv":
        assert set(update) == {"params", "fisher", "u", "v"}
        for u, f, v, p in zip(
            *(jax.tree_util.tree_leaves(update[k]) for k in ("u", "fisher", "v", "params")),
            strict=True,
        ):
            np.testing.assert_array_equal(u, f)
            np.testing.assert_allclose(v, f * p, rtol=1e-6)
    else:
        assert set(update) == {"params", "fisher"}


async def test_tampered_base_model_skips_the_round(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Config and base are fetched side by side; a digest failure still skips the round."""
    client, chain, storage, _ = make_client(tmp_path)
    event = await open_round(chain, storage, deadline=2000)
    storage.blobs[event.base_cid] += b"x"
    with caplog.at_level(logging.ERROR, logger="fedchain.client"):
        await client.on_round_opened(event)
    assert chain.sent == []
    assert any("bad base model" in r.getMessage() for r in caplog.records)


async def test_an_encrypted_round_publishes_one_sealed_envelope(tmp_path: Path) -> None:
    """Sealed to the round config's org key; made once, so a restart re-sends the same CID."""
    org = PrivateKey(bytes(range(32)))
    client, chain, storage, _ = make_client(tmp_path)
    policy = UpdateEncryption(public_hex(org))
    event = await open_round(chain, storage, 2000, encryption=policy)
    info = chain.rounds[1]
    again = await client._update_blob(info)
    await client.on_round_opened(event)
    cid, _, _ = chain.submitted[(1, ME)]
    assert storage.blobs[cid] == again  # the envelope is kept, not re-sealed with a new key
    plain = open_update(again, org, Binding(1, ME, event.base_cid), 1 << 20)
    assert decode_blob(plain).metadata.client == ME


async def test_a_client_that_requires_encryption_skips_a_plaintext_round(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, chain, storage, _ = make_client(tmp_path)
    client.cfg = dataclasses.replace(client.cfg, encryption=EncryptionConfig(updates="encrypted"))
    with caplog.at_level(logging.ERROR):
        await client.on_round_opened(await open_round(chain, storage, 2000))
    assert chain.submitted == {}
    errors = [r.fields["error"] for r in caplog.records if hasattr(r, "fields")]  # type: ignore[attr-defined]
    assert any("asks for plaintext updates" in e for e in errors)
