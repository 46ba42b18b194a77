"""TxSender outbox against a real anvil: sign once, persist, re-send after crashes."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from web3 import AsyncHTTPProvider, AsyncWeb3

from contracts.binding import FederatedRounds
from contracts.errors import ContractPaused, NotOrg
from contracts.events import RoundOpened, decode_log
from daemons.chain.fees import BLIND_BUMPS, raised_fees, worth_repricing
from daemons.chain.identity import check_identity
from daemons.chain.sender import TxDropped, TxSender
from daemons.chain.store import (
    OUTBOX_DEAD,
    OUTBOX_DONE,
    OUTBOX_PENDING,
    OutboxEntry,
    StateStore,
)
from daemons.errors import ChainResetError
from daemons.testnet.nodes.anvil import Anvil
from tests.daemons.chain_helpers import digest, open_round
from tests.fixtures.anvil import ALL_NODES, Deployed
from tests.fixtures.rpc_proxy import RpcProxy

pytestmark = [pytest.mark.timeout(90), pytest.mark.evm_nodes(*ALL_NODES)]


class Crash(BaseException):
    """Stands in for kill -9 at a chosen instant (BaseException: nothing catches it)."""


def crash_on_broadcast(sender: TxSender) -> None:
    """Make the sender 'die' right after persisting, before the node sees the transaction."""

    async def die(raw: Any) -> Any:
        raise Crash

    sender.w3.eth.send_raw_transaction = die  # type: ignore[method-assign, assignment]


async def nonce(d: Deployed, account: Any) -> int:
    return int(await d.w3.eth.get_transaction_count(account.address, "latest"))


async def mined_nonce(d: Deployed, account: Any, wanted: int, timeout_s: float = 10) -> int:
    """The account's nonce once it reaches `wanted` (automine mines just after the send)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (got := await nonce(d, account)) < wanted and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return got


async def open_round_args(d: Deployed, cid: str = "bafyround") -> tuple[Any, ...]:
    deadline = int((await d.w3.eth.get_block("latest"))["timestamp"]) + 600
    return (cid, digest(cid), deadline, 1, 3, "bafyconfig")


async def round_opened_events(d: Deployed) -> list[RoundOpened]:
    logs = await d.w3.eth.get_logs({"address": d.contract.address, "fromBlock": 0})
    return [e for e in map(decode_log, logs) if isinstance(e, RoundOpened)]


async def assert_one_open_round(d: Deployed, before: int) -> None:
    """Exactly one transaction reached the chain: the org's nonce moved by one, one RoundOpened."""
    assert await nonce(d, d.org) == before + 1
    assert len(await round_opened_events(d)) == 1


async def send_after_restart(
    d: Deployed, path: Path, args: tuple[Any, ...]
) -> tuple[Any, OutboxEntry | None]:
    """A restarted daemon: a fresh sender on the same state file sends `openRound:1` again."""
    with StateStore(path) as store:
        fresh = TxSender(d.contract, d.org, store)
        receipt = await asyncio.wait_for(fresh.send("openRound:1", "openRound", *args), 30)
        return receipt, store.outbox_get("openRound:1")


async def test_same_key_twice_is_one_transaction(deployed: Deployed, tmp_path: Path) -> None:
    before = await nonce(deployed, deployed.org)
    with StateStore(tmp_path / "s.db") as store:
        sender = TxSender(deployed.contract, deployed.org, store)
        args = await open_round_args(deployed)
        first = await asyncio.wait_for(sender.send("openRound:1", "openRound", *args), 30)
        again = await asyncio.wait_for(sender.send("openRound:1", "openRound", *args), 30)
        entry = store.outbox_get("openRound:1")
    assert first["transactionHash"] == again["transactionHash"] and first["status"] == 1
    assert entry is not None and entry.status == OUTBOX_DONE
    assert entry.tx_hash == first["transactionHash"].to_0x_hex()
    await assert_one_open_round(deployed, before)


async def test_duplicate_event_delivery_sends_one_transaction(
    deployed: Deployed, tmp_path: Path
) -> None:
    round_id = await open_round(deployed)
    (event,) = await round_opened_events(deployed)
    before = await nonce(deployed, deployed.clients[0])
    receipts = []
    with StateStore(tmp_path / "s.db") as store:
        sender = TxSender(deployed.contract, deployed.clients[0], store)

        async def on_round_opened(ev: RoundOpened) -> None:
            cid = f"bafyupdate{ev.round_id}"
            args = (ev.round_id, cid, digest(cid), 7)
            receipts.append(await sender.send(f"submit:{ev.round_id}", "submitUpdate", *args))

        for _ in range(2):
            await asyncio.wait_for(on_round_opened(event), 30)
    assert receipts[0]["transactionHash"] == receipts[1]["transactionHash"]
    assert await nonce(deployed, deployed.clients[0]) == before + 1
    assert (await deployed.contract.get_round(round_id)).num_updates == 1


async def test_crash_before_send_resends_the_stored_transaction(
    deployed: Deployed, tmp_path: Path
) -> None:
    path = tmp_path / "s.db"
    before = await nonce(deployed, deployed.org)
    args = await open_round_args(deployed)
    with StateStore(path) as store:
        dying = TxSender(deployed.contract, deployed.org, store)
        crash_on_broadcast(dying)
        with pytest.raises(Crash):
            await asyncio.wait_for(dying.send("openRound:1", "openRound", *args), 30)
        stored = store.outbox_get("openRound:1")
    del deployed.w3.eth.send_raw_transaction  # back to the class's method
    assert stored is not None and stored.status == OUTBOX_PENDING and stored.nonce == before
    assert await nonce(deployed, deployed.org) == before  # nothing reached the chain
    receipt, _ = await send_after_restart(deployed, path, args)
    assert receipt["transactionHash"].to_0x_hex() == stored.tx_hash
    await assert_one_open_round(deployed, before)


async def test_crash_after_send_before_receipt_waits_for_the_same_tx(
    deployed: Deployed, tmp_path: Path
) -> None:
    path = tmp_path / "s.db"
    args = await open_round_args(deployed)
    before = await nonce(deployed, deployed.org)
    with StateStore(path) as store:
        dying = TxSender(deployed.contract, deployed.org, store)
        entry = await dying.prepare("openRound:1", "openRound", *args)
        assert entry == await dying.prepare("openRound:1", "openRound", *args)
        await dying.broadcast(entry)  # ...and the daemon dies before reading the receipt
        assert await mined_nonce(deployed, deployed.org, before + 1) == before + 1
        assert store.outbox_get("openRound:1").status == OUTBOX_PENDING  # type: ignore[union-attr]
    receipt, done = await send_after_restart(deployed, path, args)
    assert done is not None and done.status == OUTBOX_DONE
    assert receipt["status"] == 1 and receipt["transactionHash"].to_0x_hex() == entry.tx_hash
    await assert_one_open_round(deployed, before)


@pytest.mark.parametrize("chain", ["making_blocks", "making_no_blocks"])
async def test_nonce_taken_by_another_tx_marks_the_entry_dead(
    deployed: Deployed, tmp_path: Path, chain: str
) -> None:
    path = tmp_path / "s.db"
    args = await open_round_args(deployed)
    with StateStore(path) as store:
        dying = TxSender(deployed.contract, deployed.org, store)
        crash_on_broadcast(dying)
        with pytest.raises(Crash):
            await dying.send("openRound:1", "openRound", *args)
        del deployed.w3.eth.send_raw_transaction
        await deployed.contract.pause(deployed.org)  # signed outside the outbox: same nonce
    # pause took the stored tx's nonce, so the stored openRound can never be mined; it is
    # called dead after 2 new blocks, or (no blocks) 1 s, with no receipt for any version
    grace = {"dead_grace_blocks": 2, "dead_grace_s": 60.0 if chain == "making_blocks" else 1.0}
    async with Miner(deployed, every_s=0.3) as miner:
        if chain == "making_blocks":
            miner.start()
        else:
            deployed.anvil.set_automine(True)
        with StateStore(path) as store:
            fresh = TxSender(deployed.contract, deployed.org, store, **grace)  # type: ignore[arg-type]
            with pytest.raises(TxDropped, match="can never be mined"):
                await asyncio.wait_for(fresh.send("openRound:1", "openRound", *args), 30)
            assert store.outbox_get("openRound:1").status == OUTBOX_DEAD  # type: ignore[union-attr]
            # sending again signs a new transaction, which now reverts on estimation
            with pytest.raises(ContractPaused):
                await asyncio.wait_for(fresh.send("openRound:1", "openRound", *args), 30)


async def test_status_zero_receipt_raises_contract_revert(
    deployed: Deployed, tmp_path: Path
) -> None:
    client = deployed.clients[0]
    round_id = await open_round(deployed)
    cid = "bafyupdate"
    with StateStore(tmp_path / "s.db") as store:
        dying = TxSender(deployed.contract, client, store)
        crash_on_broadcast(dying)
        with pytest.raises(Crash):
            await dying.send("submit:1", "submitUpdate", round_id, cid, digest(cid), 5)
        del deployed.w3.eth.send_raw_transaction
        await deployed.contract.pause(deployed.org)  # another account: the nonce stays free
        fresh = TxSender(deployed.contract, client, store)
        with pytest.raises(ContractPaused):
            args = (round_id, cid, digest(cid), 5)
            await asyncio.wait_for(fresh.send("submit:1", "submitUpdate", *args), 30)
        entry = store.outbox_get("submit:1")
    assert entry is not None and entry.status == OUTBOX_DONE  # mined (status 0), not re-signed
    receipt = await deployed.w3.eth.get_transaction_receipt(entry.tx_hash)  # type: ignore[arg-type]
    assert receipt["status"] == 0


async def test_new_send_goes_above_unsent_entries(deployed: Deployed, tmp_path: Path) -> None:
    before = await nonce(deployed, deployed.org)
    with StateStore(tmp_path / "s.db") as store:
        dying = TxSender(deployed.contract, deployed.org, store)
        crash_on_broadcast(dying)
        with pytest.raises(Crash):
            await dying.send("add:outsider", "addClient", deployed.outsider.address)
        del deployed.w3.eth.send_raw_transaction
        fresh = TxSender(deployed.contract, deployed.org, store)
        args = await open_round_args(deployed)
        receipt = await asyncio.wait_for(fresh.send("openRound:1", "openRound", *args), 30)
        assert store.outbox_get("openRound:1").nonce == before + 1  # type: ignore[union-attr]
        assert receipt["status"] == 1
        await asyncio.wait_for(fresh.reconcile(), 30)
        assert store.outbox_get("add:outsider").status == OUTBOX_DONE  # type: ignore[union-attr]
    assert await nonce(deployed, deployed.org) == before + 2
    assert await deployed.contract.is_client(deployed.outsider.address)


async def test_revert_at_estimation_stores_nothing(deployed: Deployed, tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as store:
        sender = TxSender(deployed.contract, deployed.outsider, store)
        with pytest.raises(NotOrg):
            await asyncio.wait_for(sender.send("pause", "pause"), 30)
        assert store.outbox_entries() == []


async def test_automined_send_does_not_wait_a_poll_interval(
    deployed: Deployed, tmp_path: Path
) -> None:
    """The receipt is read right after the broadcast, not after a poll_interval_s sleep."""
    with StateStore(tmp_path / "s.db") as store:
        # a poll interval far above a send's round trips, even to a Node.js chain under load
        sender = TxSender(deployed.contract, deployed.org, store, poll_interval_s=10.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        receipt = await asyncio.wait_for(
            sender.send("openRound:1", "openRound", *await open_round_args(deployed)), 30
        )
        elapsed = loop.time() - started
    assert receipt["status"] == 1
    assert elapsed < 5.0, f"send took {elapsed:.2f} s on automine (a poll interval: 10 s)"


class Miner:
    """Automine off; mine a block every `every_s` while in use (as a slow real chain)."""

    def __init__(self, d: Deployed, every_s: float = 0.2) -> None:
        self.d, self.every_s = d, every_s
        self.task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            self.d.anvil.mine()

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._loop())

    async def __aenter__(self) -> Miner:
        self.d.anvil.set_automine(False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.d.anvil.set_automine(True)


@pytest.mark.evm_nodes("anvil")  # anvil_setNextBlockBaseFeePerGas: anvil only
async def test_a_transaction_the_base_fee_overtook_is_re_signed_higher(
    deployed: Deployed, tmp_path: Path
) -> None:
    args = await open_round_args(deployed)
    before = await nonce(deployed, deployed.org)
    async with Miner(deployed) as miner:
        with StateStore(tmp_path / "s.db") as store:
            sender = TxSender(
                deployed.contract, deployed.org, store, rebroadcast_s=0.2, bump_after_s=0
            )
            first = await sender.prepare("openRound:1", "openRound", *args)
            await sender.broadcast(first)
            # the base fee jumps past the stored max fee: anvil drops the transaction
            deployed.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(100 * 10**9)])
            deployed.anvil.rpc("evm_mine")
            assert await nonce(deployed, deployed.org) == before
            miner.start()
            receipt = await asyncio.wait_for(sender.send("openRound:1", "openRound", *args), 30)
            entry = store.outbox_get("openRound:1")
            superseded = store.outbox_superseded("openRound:1")
    assert receipt["status"] == 1 and entry is not None and entry.status == OUTBOX_DONE
    assert receipt["transactionHash"].to_0x_hex() == entry.tx_hash != first.tx_hash
    assert superseded[0] == first.tx_hash and entry.nonce == first.nonce
    await assert_one_open_round(deployed, before)


async def test_a_slow_transaction_is_re_signed_after_bump_after_s(
    deployed: Deployed, tmp_path: Path
) -> None:
    args = await open_round_args(deployed)
    before = await nonce(deployed, deployed.org)
    async with Miner(deployed, every_s=1.0) as miner:
        with StateStore(tmp_path / "s.db") as store:
            sender = TxSender(deployed.contract, deployed.org, store, bump_after_s=0.3)
            miner.start()
            receipt = await asyncio.wait_for(sender.send("openRound:1", "openRound", *args), 30)
            entry = store.outbox_get("openRound:1")
            superseded = store.outbox_superseded("openRound:1")
    assert entry is not None and entry.status == OUTBOX_DONE
    assert len(superseded) >= 1, "not mined within bump_after_s: re-signed at least once"
    # one nonce, several versions: exactly one of them is mined, and it settles the intent
    assert receipt["transactionHash"].to_0x_hex() in {entry.tx_hash, *superseded}
    await assert_one_open_round(deployed, before)


async def test_whichever_version_is_mined_settles_the_intent(
    deployed: Deployed, tmp_path: Path
) -> None:
    """A restart finds the receipt of an earlier version (the bump never reached the node)."""
    path = tmp_path / "s.db"
    args = await open_round_args(deployed)
    before = await nonce(deployed, deployed.org)
    with StateStore(path) as store:
        dying = TxSender(deployed.contract, deployed.org, store)
        first = await dying.prepare("openRound:1", "openRound", *args)
        await dying.broadcast(first)  # automine: mined; then the daemon re-signs and dies
        bumped = await dying._bump(first, "test")  # stored, never sent
        assert bumped.tx_hash != first.tx_hash
    receipt, entry = await send_after_restart(deployed, path, args)
    assert receipt["transactionHash"].to_0x_hex() == first.tx_hash
    assert entry is not None and entry.status == OUTBOX_DONE
    assert await nonce(deployed, deployed.org) == before + 1


def test_raised_fees_rise_enough_and_respect_the_cap() -> None:
    fields = {"maxFeePerGas": 3_000, "maxPriorityFeePerGas": 1_000}
    fees = raised_fees(fields, base_fee=1_000, cap=0)
    assert fees == {"maxFeePerGas": 3_375, "maxPriorityFeePerGas": 1_125}
    fees = raised_fees(fields, base_fee=100_000, cap=0)  # at least 2 x base fee + tip
    assert fees == {"maxFeePerGas": 201_125, "maxPriorityFeePerGas": 1_125}
    fees = raised_fees(fields, base_fee=100_000, cap=5_000)
    assert fees == {"maxFeePerGas": 5_000, "maxPriorityFeePerGas": 1_125}
    assert raised_fees(fields, base_fee=100_000, cap=3_200) is None  # < the 12.5% rise


def test_a_stalled_chain_does_not_escalate_fees_without_end() -> None:
    fields = {"maxFeePerGas": 3_000, "maxPriorityFeePerGas": 1_000}  # signed at base fee 1000
    assert all(worth_repricing(fields, 1_000, v) for v in range(1, BLIND_BUMPS + 1))
    assert not worth_repricing(fields, 1_000, BLIND_BUMPS + 1)  # the market did not move
    assert worth_repricing(fields, 1_500, BLIND_BUMPS + 1)  # base fee rose past its cover


async def lagging_sender(
    d: Deployed, proxy: RpcProxy, store: StateStore, **kwargs: Any
) -> tuple[TxSender, AsyncWeb3]:
    """A sender whose node is the proxy (the contract binding, too)."""
    w3 = AsyncWeb3(AsyncHTTPProvider(proxy.rpc_url))
    return TxSender(FederatedRounds(w3, d.contract.address), d.org, store, **kwargs), w3


async def test_a_receipt_served_after_the_nonce_is_no_false_drop(
    deployed: Deployed, tmp_path: Path
) -> None:
    """The node reports the new nonce but serves the receipt only from the 4th poll on."""
    args = await open_round_args(deployed)
    before = await nonce(deployed, deployed.org)
    async with RpcProxy(deployed.anvil.rpc_url, lag_polls=3) as proxy:
        with StateStore(tmp_path / "s.db") as store:
            sender, w3 = await lagging_sender(deployed, proxy, store)
            receipt = await asyncio.wait_for(sender.send("openRound:1", "openRound", *args), 30)
            entry = store.outbox_get("openRound:1")
            await w3.provider.disconnect()
    assert proxy.hidden >= 3, "the fault must have been injected"
    assert receipt["status"] == 1 and entry is not None and entry.status == OUTBOX_DONE
    await assert_one_open_round(deployed, before)


async def test_a_receipt_lagging_blocks_behind_is_no_false_drop(
    deployed: Deployed, tmp_path: Path
) -> None:
    """A block every 0.2 s; each receipt is served 2 blocks after its block (grace: more)."""
    args = await open_round_args(deployed)
    async with Miner(deployed) as miner, RpcProxy(deployed.anvil.rpc_url, lag_blocks=2) as proxy:
        with StateStore(tmp_path / "s.db") as store:
            sender, w3 = await lagging_sender(deployed, proxy, store, dead_grace_blocks=4)
            miner.start()
            receipt = await asyncio.wait_for(sender.send("openRound:1", "openRound", *args), 30)
            entry = store.outbox_get("openRound:1")
            await w3.provider.disconnect()
    assert proxy.hidden >= 1
    assert receipt["status"] == 1 and entry is not None and entry.status == OUTBOX_DONE


async def test_reconcile_does_not_drop_a_lagging_receipt(
    deployed: Deployed, tmp_path: Path
) -> None:
    """An older entry sent (and mined) before a restart, its receipt not yet served."""
    async with RpcProxy(deployed.anvil.rpc_url, lag_polls=4) as proxy:
        with StateStore(tmp_path / "s.db") as store:
            sender, w3 = await lagging_sender(deployed, proxy, store)
            first = await sender.prepare("add:outsider", "addClient", deployed.outsider.address)
            await sender.broadcast(first)  # automine: mined now
            args = await open_round_args(deployed)
            await asyncio.wait_for(sender.send("openRound:1", "openRound", *args), 30)
            assert store.outbox_get("add:outsider").status == OUTBOX_PENDING  # type: ignore[union-attr]
            for _ in range(5):  # each reconcile asks for the receipt once more
                await asyncio.wait_for(sender.reconcile(), 30)
            statuses = {e.key: e.status for e in store.outbox_entries()}
            await w3.provider.disconnect()
    assert statuses == {"add:outsider": OUTBOX_DONE, "openRound:1": OUTBOX_DONE}


@pytest.mark.evm_nodes("anvil")  # anvil_setNextBlockBaseFeePerGas: anvil only
async def test_re_pricing_an_older_entry_while_signing_a_new_one_does_not_deadlock(
    deployed: Deployed, tmp_path: Path
) -> None:
    """A new send settles older entries under the sender's lock; one refused as underpriced
    is re-signed there, which must not wait for that same lock (a silent stall)."""
    async with Miner(deployed) as miner:
        with StateStore(tmp_path / "s.db") as store:
            sender = TxSender(deployed.contract, deployed.org, store, bump_after_s=0)
            older = await sender.prepare("add:outsider", "addClient", deployed.outsider.address)
            await sender.broadcast(older)
            deployed.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(100 * 10**9)])
            deployed.anvil.rpc("evm_mine")  # anvil drops the older one: base fee overtook it
            miner.start()
            args = await open_round_args(deployed)
            await asyncio.wait_for(sender.send("openRound:1", "openRound", *args), 20)
            await asyncio.wait_for(sender.reconcile(), 20)
            statuses = {e.key: e.status for e in store.outbox_entries()}
    assert statuses == {"add:outsider": OUTBOX_DONE, "openRound:1": OUTBOX_DONE}
    assert await deployed.contract.is_client(deployed.outsider.address)


async def test_a_transaction_signed_below_the_base_fee_is_re_priced(
    deployed: Deployed, tmp_path: Path
) -> None:
    """Each node words "fee too low" its own way; the base fee says it for all of them."""
    args = await open_round_args(deployed)
    with StateStore(tmp_path / "s.db") as store:
        sender = TxSender(deployed.contract, deployed.org, store, bump_after_s=0)
        entry = await sender.prepare("openRound:1", "openRound", *args)
        fields = dict(TypedTransaction.from_bytes(HexBytes(entry.raw)).as_dict())
        for name in ("v", "r", "s", "yParity"):
            fields.pop(name, None)
        cheap = deployed.org.sign_transaction(
            {**fields, "maxFeePerGas": 2, "maxPriorityFeePerGas": 1}
        )
        stored = replace(entry, raw=bytes(cheap.raw_transaction), tx_hash=cheap.hash.to_0x_hex())
        store.outbox_put(stored)
        receipt = await asyncio.wait_for(sender.send("openRound:1", "openRound", *args), 30)
        settled = store.outbox_get("openRound:1")
        superseded = store.outbox_superseded("openRound:1")
    assert receipt["status"] == 1 and settled is not None and settled.status == OUTBOX_DONE
    assert superseded == [stored.tx_hash] and settled.tx_hash != stored.tx_hash
    assert len(await round_opened_events(deployed)) == 1


async def test_a_chain_reset_under_a_pending_transaction_raises_at_once(tmp_path: Path) -> None:
    """Signed on one chain, sent after a reset: the new chain never mines it (its nonce is
    past the fresh account's), so waiting the receipt timeout would leave the daemon deaf to
    the reset for minutes; the late receipt makes the sender check the chain instead."""
    path = tmp_path / "s.db"
    with Anvil(log_path=tmp_path / "anvil-1.log") as first:
        w3 = AsyncWeb3(AsyncHTTPProvider(first.rpc_url))
        org = Account.from_key(first.dev_private_keys[0])
        contract = await FederatedRounds.deploy(w3, org)  # nonce 0: the next send gets 1
        d = Deployed(first, w3, contract, org, (), org)
        args = await open_round_args(d)
        with StateStore(path) as store:
            await check_identity(w3, store, contract.address)
            entry = await TxSender(contract, org, store).prepare("openRound:1", "openRound", *args)
        assert entry.nonce == 1
    try:
        with Anvil(port=first.port, log_path=tmp_path / "anvil-2.log"), StateStore(path) as store:
            sender = TxSender(contract, org, store, rebroadcast_s=0.5)
            started = asyncio.get_running_loop().time()
            with pytest.raises(ChainResetError, match="chain was reset"):
                await asyncio.wait_for(sender.send("openRound:1", "openRound", *args), 30)
            waited = asyncio.get_running_loop().time() - started
            assert waited < 5, f"the reset was noticed only after {waited:.1f} s"
            assert store.outbox_get("openRound:1") == entry  # kept: nothing is lost
    finally:
        await w3.provider.disconnect()
