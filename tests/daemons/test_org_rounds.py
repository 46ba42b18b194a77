"""The org's round steps with fakes: open, judge (keep/reject), close, fail, idempotency."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from contracts.state import RoundStatus
from daemons.ipfs.blobs import BlobCache
from daemons.org.decide import Action
from daemons.org.ledger import Ledger, Submission
from daemons.org.parts import OrgParts
from daemons.org.rounds import OrgRounds
from daemons.runtime.config import (
    ChainConfig,
    DaemonConfig,
    FederationConfig,
    IdentityConfig,
    IpfsConfig,
    ServiceConfig,
    TrainingConfig,
)
from daemons.runtime.metrics import Metrics
from daemons.wire.manifest import decode_manifest
from models.codec import BlobMetadata, decode_blob, encode_blob
from models.data import Dataset
from tests.daemons.fakes import FakeChain, FakeStorage, MemKV

pytestmark = pytest.mark.timeout(120)
ORG = "0x" + "0A" * 20
CLIENTS = tuple("0x" + c * 40 for c in "BCD")


def leaves(tree: object) -> list[np.ndarray]:
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(tree)]


def eval_data() -> Dataset:
    rng = np.random.default_rng(1)
    x = rng.random((50, 28, 28, 1), dtype=np.float32)
    return Dataset(x=x, y=rng.integers(0, 10, 50).astype(np.int32))


def make_org(
    tmp_path: Path,
    min_updates: int = 1,
    rounds: int = 2,
    retention: int = 3,
    training: TrainingConfig | None = None,
) -> tuple[OrgRounds, FakeChain, FakeStorage]:
    fed = FederationConfig(
        clients=CLIENTS,
        rounds=rounds,
        round_duration_s=60,
        min_updates=min_updates,
        max_updates=3,
        model="logreg",
        seed=3,
        eval_data="x",
        retention_rounds=retention,
    )
    cfg = DaemonConfig(
        path="org.toml",
        role="org",
        chain=ChainConfig(),
        identity=IdentityConfig(),
        ipfs=IpfsConfig(timeout_s=5, max_blob_bytes=1 << 20),
        service=ServiceConfig(state_dir=str(tmp_path)),
        federation=fed,
        training=training or TrainingConfig(),
    )
    chain, storage = FakeChain(ORG), FakeStorage()
    org = OrgRounds(
        OrgParts(
            cfg,
            chain,
            storage,
            Ledger(MemKV()),
            BlobCache(tmp_path / "blobs"),
            eval_data(),
            Metrics("org"),
        )
    )
    return org, chain, storage


async def submit(
    org: OrgRounds,
    chain: FakeChain,
    storage: FakeStorage,
    client: str,
    shift: float,
    **meta_changes: object,
) -> None:
    """Play a client: an update = base params + shift, Fisher of ones; recorded like an event."""
    r = await chain.current_round_id()
    info = chain.rounds[r]
    base = decode_blob(storage.blobs[info.base_cid]).sections["params"]
    params = jax.tree_util.tree_map(lambda a: (a + shift).astype(np.float32), base)
    fisher = jax.tree_util.tree_map(lambda a: np.ones_like(a), base)
    fields = dict(
        kind="update",
        round_id=r,
        client=client,
        base_cid=info.base_cid,
        num_samples=100,
        model_name="logreg",
    )
    curvature = bool(meta_changes.pop("curvature", False))
    with_fisher = bool(meta_changes.pop("with_fisher", True))
    fields.update(meta_changes)
    sections = {"params": params, "fisher": fisher} if with_fisher else {"params": params}
    if curvature:  # FedCurv: u = F, v = F * params
        sections |= {"u": fisher, "v": jax.tree_util.tree_map(np.multiply, fisher, params)}
    blob = encode_blob(sections, BlobMetadata(**fields))  # type: ignore[arg-type]
    stored = await storage.put(blob)
    chain.submit_as(client, r, stored.cid, stored.digest, 100)
    org.record(r, Submission(client, stored.cid, "0x" + stored.digest.hex(), 100))


async def test_round_with_a_rejected_update(tmp_path: Path) -> None:
    org, chain, storage = make_org(tmp_path)
    assert (await org.run_until_idle()).action is Action.WAIT
    assert [s[1] for s in chain.sent] == ["openRound"]
    await submit(org, chain, storage, CLIENTS[0], 0.01)
    await submit(org, chain, storage, CLIENTS[1], 0.03)
    await submit(org, chain, storage, CLIENTS[2], float("nan"))
    assert (await org.run_until_idle()).action is Action.WAIT
    assert [s[1] for s in chain.sent] == ["openRound", "closeRound", "openRound"]
    closed = chain.rounds[1]
    assert closed.status is RoundStatus.CLOSED and chain.rounds[2].base_cid == closed.model_cid
    manifest = decode_manifest(storage.blobs[closed.manifest_cid])
    assert [i.client for i in manifest.included] == list(CLIENTS[:2])
    assert [(e.client, e.reason) for e in manifest.excluded] == [(CLIENTS[2], "non_finite")]
    assert storage.pinned == [i.cid for i in manifest.included]  # accepted updates only
    # each update was fetched naming its client, whose node is asked first (docs/ipfs.md)
    assert set(storage.sources) - {None} == set(CLIENTS)
    assert manifest.model_cid == closed.model_cid and manifest.base_cid == closed.base_cid
    assert 0.0 <= manifest.metrics["accuracy"] <= 1.0
    assert {"fetch_s", "aggregate_s", "evaluate_s", "publish_s"} <= set(manifest.timings_s)
    model = decode_blob(storage.blobs[closed.model_cid])
    base = decode_blob(storage.blobs[closed.base_cid])
    for new, old in zip(
        leaves(model.sections["params"]), leaves(base.sections["params"]), strict=True
    ):
        np.testing.assert_allclose(new - old, 0.02, atol=1e-6)  # mean of +0.01, +0.03
    for fisher in leaves(model.sections["fisher"]):
        np.testing.assert_allclose(fisher, 1.0, atol=1e-6)  # gamma * 0 + mean of ones
    # a replayed event and another step change nothing
    subs = org.ledger.submissions(1)
    org.record(1, subs[CLIENTS[0]])
    assert (await org.run_until_idle()).action is Action.WAIT
    assert len(chain.sent) == 3


async def test_a_federation_that_reads_no_fisher_neither_asks_for_nor_publishes_one(
    tmp_path: Path,
) -> None:
    org, chain, storage = make_org(tmp_path, training=TrainingConfig(penalty="none"))
    await org.run_until_idle()
    opened = chain.rounds[1]
    assert json.loads(storage.blobs[opened.config_cid])["fisher"] is False
    assert set(decode_blob(storage.blobs[opened.base_cid]).sections) == {"params"}
    await submit(org, chain, storage, CLIENTS[0], 0.01, with_fisher=False)
    await submit(org, chain, storage, CLIENTS[1], 0.03)  # a Fisher nobody reads: still valid
    await submit(org, chain, storage, CLIENTS[2], 0.02, with_fisher=False)
    await org.run_until_idle()
    closed = chain.rounds[1]
    manifest = decode_manifest(storage.blobs[closed.manifest_cid])
    assert len(manifest.included) == 3 and not manifest.excluded
    assert set(decode_blob(storage.blobs[closed.model_cid]).sections) == {"params"}


async def test_an_ewc_federation_rejects_an_update_without_a_fisher(tmp_path: Path) -> None:
    org, chain, storage = make_org(tmp_path, min_updates=2)
    await org.run_until_idle()
    assert json.loads(storage.blobs[chain.rounds[1].config_cid])["fisher"] is True
    await submit(org, chain, storage, CLIENTS[0], 0.01, with_fisher=False)
    await submit(org, chain, storage, CLIENTS[1], 0.01)
    await submit(org, chain, storage, CLIENTS[2], 0.01)
    await org.run_until_idle()
    manifest = decode_manifest(storage.blobs[chain.rounds[1].manifest_cid])
    assert [(e.client, e.reason) for e in manifest.excluded] == [(CLIENTS[0], "keys")]
    assert "fisher" in manifest.excluded[0].detail


async def test_deadline_closes_with_enough_and_fails_with_too_few(tmp_path: Path) -> None:
    org, chain, storage = make_org(tmp_path / "a", min_updates=1)
    await org.run_until_idle()
    await submit(org, chain, storage, CLIENTS[0], 0.01)
    assert (await org.run_until_idle()).action is Action.WAIT  # 1 of 3, before the deadline
    chain.now = chain.rounds[1].deadline + 1
    await org.run_until_idle()
    assert chain.rounds[1].status is RoundStatus.CLOSED

    org, chain, storage = make_org(tmp_path / "b", min_updates=2)
    await org.run_until_idle()
    await submit(org, chain, storage, CLIENTS[0], 0.01)
    chain.now = chain.rounds[1].deadline + 1
    await org.run_until_idle()
    assert chain.rounds[1].status is RoundStatus.FAILED
    assert chain.rounds[2].base_cid == chain.rounds[1].base_cid  # the base model stays


async def test_all_rejected_keeps_base_model_and_says_so(tmp_path: Path) -> None:
    org, chain, storage = make_org(tmp_path, rounds=1)
    await org.run_until_idle()
    await submit(org, chain, storage, CLIENTS[0], 0.01, round_id=7)
    chain.now = chain.rounds[1].deadline + 1
    assert (await org.run_until_idle()).action is Action.DONE
    closed = chain.rounds[1]
    manifest = decode_manifest(storage.blobs[closed.manifest_cid])
    assert manifest.included == () and manifest.excluded[0].reason == "metadata"
    assert "base model is kept" in manifest.note
    model = decode_blob(storage.blobs[closed.model_cid]).sections["params"]
    base = decode_blob(storage.blobs[closed.base_cid]).sections["params"]
    for new, old in zip(leaves(model), leaves(base), strict=True):
        np.testing.assert_array_equal(new, old)
    assert json.loads(storage.blobs[closed.manifest_cid])["note"]


async def test_same_inputs_same_model_cid(tmp_path: Path) -> None:
    cids = []
    for name in ("a", "b"):
        org, chain, storage = make_org(tmp_path / name)
        await org.run_until_idle()
        for i, client in enumerate(CLIENTS):
            await submit(org, chain, storage, client, 0.01 * (i + 1))
        await org.run_until_idle()
        cids.append(chain.rounds[1].model_cid)
    assert cids[0] == cids[1]


async def test_retention_unpins_old_rounds(tmp_path: Path) -> None:
    org, chain, storage = make_org(tmp_path, rounds=3, retention=1)
    for _ in range(3):
        await org.run_until_idle()
        await submit(org, chain, storage, CLIENTS[0], 0.01)
        chain.now = chain.rounds[max(chain.rounds)].deadline + 1
    await org.run_until_idle()
    r1, r2, r3 = (chain.rounds[r] for r in (1, 2, 3))
    assert {r1.base_cid, r1.model_cid, r2.model_cid, r1.manifest_cid} <= set(storage.unpinned)
    assert r3.model_cid not in storage.unpinned and r3.manifest_cid not in storage.unpinned
    updates = [chain.submitted[(r, CLIENTS[0])][0] for r in (1, 2, 3)]
    assert storage.pinned == updates  # the org pins each update it accepts ...
    assert set(updates[:2]) <= set(storage.unpinned)  # ... and unpins it with its round
    assert updates[2] not in storage.unpinned


async def test_stale_open_round_is_reopened_under_a_new_key(tmp_path: Path) -> None:
    from contracts.errors import BadDeadline

    org, chain, _ = make_org(tmp_path)
    real = chain._openRound
    refused: list[int] = []

    def stale_once(*args: object) -> None:
        if not refused:
            refused.append(1)
            raise BadDeadline("BadDeadline", {})
        real(*args)  # type: ignore[arg-type]

    chain._openRound = stale_once  # type: ignore[method-assign]
    await org.run_until_idle()
    assert refused and chain.rounds[1].status is RoundStatus.OPEN
    assert [key for key, _, _ in chain.sent] == [f"open:1:{chain.rounds[1].deadline}"]


async def test_unretrievable_update_is_rejected_not_fatal(tmp_path: Path) -> None:
    org, chain, storage = make_org(tmp_path, rounds=1)
    await org.run_until_idle()
    await submit(org, chain, storage, CLIENTS[0], 0.01)
    await submit(org, chain, storage, CLIENTS[1], 0.02)
    lost = org.ledger.submissions(1)[CLIENTS[1]].cid
    del storage.blobs[lost]  # its provider went away before the org fetched it
    org.parts.cache.drop(bytes.fromhex(org.ledger.submissions(1)[CLIENTS[1]].digest[2:]))
    chain.now = chain.rounds[1].deadline + 1
    assert (await org.run_until_idle()).action is Action.DONE
    manifest = decode_manifest(storage.blobs[chain.rounds[1].manifest_cid])
    assert [i.client for i in manifest.included] == [CLIENTS[0]]
    assert [(e.client, e.reason) for e in manifest.excluded] == [(CLIENTS[1], "unavailable")]
    assert org.metrics.updates_rejected.labels(reason="unavailable")._value.get() == 1


async def test_paused_contract_waits_instead_of_crashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import dataclasses

    from contracts.errors import ContractPaused
    from daemons.org import service
    from daemons.org.decide import Decision

    org, _, _ = make_org(tmp_path)
    fed = dataclasses.replace(org.parts.fed, exit_when_done=True)
    cfg = dataclasses.replace(
        org.parts.cfg, federation=fed, chain=ChainConfig(poll_interval_s=0.01)
    )
    calls: list[int] = []

    async def paused_then_done() -> Decision:
        calls.append(1)
        if len(calls) == 1:
            raise ContractPaused("ContractPaused", {})
        return Decision(Action.DONE, "done")

    monkeypatch.setattr(org, "run_until_idle", paused_then_done)
    await asyncio.wait_for(service._drive(org, asyncio.Event(), cfg), 10)
    assert len(calls) == 2


async def test_fedcurv_round_publishes_curvature_sums(tmp_path: Path) -> None:
    import dataclasses

    org, chain, storage = make_org(tmp_path, rounds=1)
    org.parts.fed = dataclasses.replace(org.parts.fed, strategy="fedcurv")
    org.parts.training = dataclasses.replace(org.parts.training, penalty="fedcurv")
    org.parts.cfg = dataclasses.replace(
        org.parts.cfg, federation=org.parts.fed, training=org.parts.training
    )
    await org.run_until_idle()
    await submit(org, chain, storage, CLIENTS[0], 0.01, curvature=True)
    await submit(org, chain, storage, CLIENTS[1], 0.03, curvature=True)
    await submit(org, chain, storage, CLIENTS[2], 0.02)  # no u, v: wrong key set
    assert (await org.run_until_idle()).action is Action.DONE
    closed = chain.rounds[1]
    manifest = decode_manifest(storage.blobs[closed.manifest_cid])
    assert [(e.client, e.reason) for e in manifest.excluded] == [(CLIENTS[2], "keys")]
    model = decode_blob(storage.blobs[closed.model_cid]).sections
    assert {"u", "v"} <= set(model)
    for u in leaves(model["u"]):
        np.testing.assert_allclose(u, 2.0)  # the sum of two clients' Fisher of ones


async def test_an_update_of_the_current_round_is_fetched_when_its_event_arrives(
    tmp_path: Path,
) -> None:
    org, chain, storage = make_org(tmp_path)
    await org.run_until_idle()  # opens round 1
    await submit(org, chain, storage, CLIENTS[0], 0.01)
    digest = bytes.fromhex(org.ledger.submissions(1)[CLIENTS[0]].digest.removeprefix("0x"))
    await asyncio.sleep(0.05)  # no judge has run: the event alone started the fetch
    assert org.parts.cache.has(digest)
    assert org.ledger.submissions(1)[CLIENTS[0]].verdict is None
