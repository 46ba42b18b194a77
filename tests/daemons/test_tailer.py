"""EventTailer against a real anvil: chunked backfill, cursor restart, confirmations, reorgs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import pytest
from web3 import AsyncHTTPProvider, AsyncWeb3

from contracts.events import ContractEvent, RoundOpened, UpdateSubmitted, decode_log, event_key
from daemons.chain.backoff import Backoff, NodeUnreachable
from daemons.chain.identity import check_identity
from daemons.chain.store import StateStore
from daemons.chain.tailer import EventTailer, ReorgTooDeep
from daemons.errors import ChainResetError
from daemons.testnet.nodes.anvil import Anvil
from tests.daemons.chain_helpers import digest, mine, open_round, rpc, submit
from tests.fixtures.anvil import ALL_NODES, Deployed

pytestmark = [pytest.mark.timeout(90), pytest.mark.evm_nodes(*ALL_NODES)]
ONE_TRY = Backoff(attempts=1)


class Recorder:
    """A handler that records events and can be told to fail on one of them."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.events: list[ContractEvent] = []
        self.fail_on = fail_on

    async def __call__(self, event: ContractEvent) -> None:
        if self.fail_on is not None and len(self.events) == self.fail_on:
            self.fail_on = None
            raise RuntimeError("handler crashed")
        self.events.append(event)

    @property
    def keys(self) -> list[str]:
        return [event_key(e) for e in self.events]


def tailer(d: Deployed, store: StateStore, **kw: Any) -> EventTailer:
    kw.setdefault("backoff", ONE_TRY)
    return EventTailer(d.w3, d.contract.address, store, **kw)


async def all_events(d: Deployed) -> list[ContractEvent]:
    """The reference: every contract log in one eth_getLogs call, decoded."""
    logs = await d.w3.eth.get_logs({"address": d.contract.address, "fromBlock": 0})
    return [decode_log(raw) for raw in logs]


async def test_chunked_backfill_hands_every_event_in_order(
    deployed: Deployed, tmp_path: Path
) -> None:
    round_id = await open_round(deployed)
    await mine(deployed, 5)
    for i in range(3):
        await submit(deployed, i, round_id)
    ranges: list[tuple[int, int]] = []
    get_logs = deployed.w3.eth.get_logs

    async def spy(params: Any) -> Any:
        ranges.append((params["fromBlock"], params["toBlock"]))
        return await get_logs(params)

    deployed.w3.eth.get_logs = spy  # type: ignore[method-assign, assignment]
    rec = Recorder()
    with StateStore(tmp_path / "s.db") as store:
        await asyncio.wait_for(tailer(deployed, store, chunk_blocks=3).sync(rec), 30)
        head = await deployed.w3.eth.block_number
        cursor = store.cursor()
    deployed.w3.eth.get_logs = get_logs  # type: ignore[method-assign]
    assert cursor is not None and cursor.block_number == head
    assert rec.events == await all_events(deployed)
    kinds = [type(e).__name__ for e in rec.events]
    assert kinds.count("ClientAdded") == 3 and kinds.count("UpdateSubmitted") == 3
    assert all(hi - lo + 1 <= 3 for lo, hi in ranges) and len(ranges) >= head // 3
    assert ranges[0][0] == 0 and ranges[-1][1] == head


async def test_restart_resumes_from_cursor_without_rehandling(
    deployed: Deployed, tmp_path: Path
) -> None:
    path = tmp_path / "s.db"
    first = Recorder()
    with StateStore(path) as store:
        await asyncio.wait_for(tailer(deployed, store, chunk_blocks=4).sync(first), 30)
    round_id = await open_round(deployed)
    await submit(deployed, 0, round_id)
    second = Recorder()
    with StateStore(path) as store:
        await asyncio.wait_for(tailer(deployed, store, chunk_blocks=4).sync(second), 30)
        assert store.handled_count() == len(first.events) + 2
    assert [type(e) for e in second.events] == [RoundOpened, UpdateSubmitted]
    assert not set(first.keys) & set(second.keys)


async def test_crash_in_handler_reruns_only_that_event(deployed: Deployed, tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    crashing = Recorder(fail_on=1)
    with StateStore(path) as store, pytest.raises(RuntimeError, match="handler crashed"):
        await asyncio.wait_for(tailer(deployed, store).sync(crashing), 30)
    assert len(crashing.events) == 1
    again = Recorder()
    with StateStore(path) as store:
        await asyncio.wait_for(tailer(deployed, store).sync(again), 30)
    reference = [event_key(e) for e in await all_events(deployed)]
    assert crashing.keys + again.keys == reference


async def test_confirmations_hold_back_recent_blocks(deployed: Deployed, tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as store:
        tail = tailer(deployed, store, confirmations=2)
        await asyncio.wait_for(tail.sync(Recorder()), 30)
        cursor = store.cursor()
        assert cursor is not None
        assert cursor.block_number == await deployed.w3.eth.block_number - 2
        await open_round(deployed)
        rec = Recorder()
        for _ in range(2):
            await asyncio.wait_for(tail.sync(rec), 30)
            assert RoundOpened not in [type(e) for e in rec.events]
            await mine(deployed, 1)
        await asyncio.wait_for(tail.sync(rec), 30)
        assert type(rec.events[-1]) is RoundOpened


async def _follow_until(tail: EventTailer, wanted: type, action: Any) -> float:
    """Run the follow loop, trigger `action`, return seconds until `wanted` arrives."""
    got: asyncio.Queue[ContractEvent] = asyncio.Queue()

    async def handler(event: ContractEvent) -> None:
        await got.put(event)

    task = asyncio.create_task(tail.run(handler))
    try:
        while await _drain(got):
            pass
        loop = asyncio.get_running_loop()
        started = loop.time()
        await action()
        while not isinstance(await asyncio.wait_for(got.get(), 20), wanted):
            pass
        return loop.time() - started
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _drain(queue: asyncio.Queue[ContractEvent]) -> bool:
    """Wait a moment for backfilled events; True while more keep coming."""
    try:
        await asyncio.wait_for(queue.get(), 1.0)
    except TimeoutError:
        return False
    return True


async def test_follow_picks_up_new_events_by_polling(deployed: Deployed, tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as store:
        tail = tailer(deployed, store, poll_interval_s=0.1)
        elapsed = await _follow_until(tail, RoundOpened, lambda: open_round(deployed))
    assert elapsed < 10


async def test_websocket_doorbell_wakes_a_slow_poll_loop(
    deployed: Deployed, tmp_path: Path
) -> None:
    with StateStore(tmp_path / "s.db") as store:
        tail = tailer(deployed, store, poll_interval_s=60, ws_url=deployed.anvil.ws_url)
        elapsed = await _follow_until(tail, RoundOpened, lambda: open_round(deployed))
    assert elapsed < 30  # without the doorbell the loop would sleep 60 s


async def test_reorg_within_window_is_replayed(deployed: Deployed, tmp_path: Path) -> None:
    w3 = deployed.w3
    round_id = await open_round(deployed)
    snapshot = await rpc(w3, "evm_snapshot")
    await submit(deployed, 0, round_id)
    with StateStore(tmp_path / "s.db") as store:
        tail = tailer(deployed, store)
        before = Recorder()
        await asyncio.wait_for(tail.sync(before), 30)
        orphaned = before.keys[-1]
        assert isinstance(before.events[-1], UpdateSubmitted)
        assert await rpc(w3, "evm_revert", snapshot) is True
        await submit(deployed, 1, round_id)
        await mine(deployed, 1)
        after = Recorder()
        await asyncio.wait_for(tail.sync(after), 30)
        assert not store.is_handled(orphaned)
    assert [(type(e), getattr(e, "client", None)) for e in after.events] == [
        (UpdateSubmitted, deployed.clients[1].address)
    ]
    assert after.keys[-1] != orphaned
    assert before.keys[:-1] + after.keys == [event_key(e) for e in await all_events(deployed)]


async def test_unreachable_node_is_named(tmp_path: Path) -> None:
    w3 = AsyncWeb3(AsyncHTTPProvider("http://127.0.0.1:9"))
    with StateStore(tmp_path / "s.db") as store:
        tail = EventTailer(w3, "0x" + "11" * 20, store, backoff=ONE_TRY)
        with pytest.raises(NodeUnreachable, match=r"127\.0\.0\.1:9.*rpc_url"):
            await asyncio.wait_for(tail.sync(Recorder()), 60)


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    w3 = AsyncWeb3(AsyncHTTPProvider("http://127.0.0.1:9"))
    with StateStore(tmp_path / "s.db") as store, pytest.raises(ValueError, match="chunk_blocks"):
        EventTailer(w3, "0x" + "11" * 20, store, chunk_blocks=0)


@pytest.mark.evm_nodes("anvil")  # it replaces the node: the session's shared ganache must stay
async def test_a_chain_reset_under_a_running_tailer_is_a_reset_not_a_reorg(
    deployed: Deployed, tmp_path: Path
) -> None:
    """The node is replaced by a fresh chain on the same URL while the daemon runs."""
    round_id = await open_round(deployed)
    await submit(deployed, 0, round_id)
    with StateStore(tmp_path / "s.db") as store:
        tail = tailer(deployed, store)
        await check_identity(tail.w3, store, tail.address)
        await asyncio.wait_for(tail.sync(Recorder()), 30)
        port = deployed.anvil.port
        deployed.anvil.stop()
        with Anvil(port=port, log_path=tmp_path / "fresh.log") as fresh:
            fresh.mine(3)
            with pytest.raises(ChainResetError, match=r"^chain was reset") as err:
                await asyncio.wait_for(tail.sync(Recorder()), 30)
    assert not isinstance(err.value, ReorgTooDeep)
    assert "confirmations" not in str(err.value), "a reset is not fixed by more confirmations"


@pytest.mark.evm_nodes("anvil")
async def test_a_reset_between_the_head_and_the_logs_is_a_reset(
    deployed: Deployed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node is replaced while the tailer reads a range it saw a moment before: the
    fresh node refuses the range ("block height is 0 but requested was N"), which is a reset
    (exit 3), not a node error for the daemon to crash on."""
    round_id = await open_round(deployed)
    await submit(deployed, 0, round_id)
    with StateStore(tmp_path / "s.db") as store, contextlib.ExitStack() as stack:
        tail = tailer(deployed, store)
        await check_identity(tail.w3, store, tail.address)
        await asyncio.wait_for(tail.sync(Recorder()), 30)
        await submit(deployed, 1, round_id)
        real_get_logs = tail.w3.eth.get_logs

        async def reset_then_get_logs(query: Any) -> Any:
            port = deployed.anvil.port
            deployed.anvil.stop()
            stack.enter_context(Anvil(port=port, log_path=tmp_path / "fresh.log"))
            monkeypatch.setattr(tail.w3.eth, "get_logs", real_get_logs)
            return await real_get_logs(query)

        monkeypatch.setattr(tail.w3.eth, "get_logs", reset_then_get_logs)
        with pytest.raises(ChainResetError, match=r"^chain was reset"):
            await asyncio.wait_for(tail.sync(Recorder()), 30)


async def test_event_types_read_only_those_events(deployed: Deployed, tmp_path: Path) -> None:
    round_id = await open_round(deployed)
    for i in range(3):
        await submit(deployed, i, round_id)
    rec = Recorder()
    with StateStore(tmp_path / "s.db") as store:
        only = tailer(deployed, store, event_types=(RoundOpened,))
        await asyncio.wait_for(only.sync(rec), 30)
        cursor = store.cursor()
    everything = await all_events(deployed)
    assert rec.events == [e for e in everything if isinstance(e, RoundOpened)]
    assert cursor is not None and cursor.block_number == await deployed.w3.eth.block_number


async def test_a_filtered_doorbell_rings_for_its_events_only(
    deployed: Deployed, tmp_path: Path
) -> None:
    """A client's tailer sleeps through other clients' submitUpdate blocks (no chain reads)."""
    round_id = await open_round(deployed)
    calls = 0
    get_logs = deployed.w3.eth.get_logs

    async def counting(params: Any) -> Any:
        nonlocal calls
        calls += 1
        return await get_logs(params)

    deployed.w3.eth.get_logs = counting  # type: ignore[method-assign, assignment]
    with StateStore(tmp_path / "s.db") as store:
        kw = {"poll_interval_s": 60, "ws_url": deployed.anvil.ws_url}
        tail = tailer(deployed, store, event_types=(RoundOpened,), **kw)
        got: asyncio.Queue[ContractEvent] = asyncio.Queue()
        task = asyncio.create_task(tail.run(got.put))
        try:
            await asyncio.wait_for(got.get(), 20)  # the backfilled RoundOpened
            await asyncio.sleep(1.0)  # the doorbell subscribes
            before = calls
            for i in range(3):
                await submit(deployed, i, round_id)
            await asyncio.sleep(1.5)
            assert calls == before  # three blocks, no RoundOpened: no wake-up
            loop = asyncio.get_running_loop()
            started = loop.time()
            model = "bafymodel"
            await deployed.contract.close_round(
                deployed.org, round_id, model, digest(model), "bafymanifest"
            )
            await open_round(deployed)
            assert isinstance(await asyncio.wait_for(got.get(), 20), RoundOpened)
            assert loop.time() - started < 20  # woken by the doorbell, not the 60 s poll
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            deployed.w3.eth.get_logs = get_logs  # type: ignore[method-assign]


async def test_a_doorbell_slow_to_close_holds_a_stopping_tailer_a_bounded_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from daemons.chain.tailer import stop_doorbell

    release = asyncio.Event()

    async def stubborn() -> None:  # a websocket close that outlasts the cancel
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await release.wait()
            raise

    bell = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, logger="daemons.chain.tailer"):
        await stop_doorbell(bell, timeout_s=0.2)
    assert loop.time() - started < 2.0
    assert "did not stop within" in caplog.text
    release.set()
    await asyncio.gather(bell, return_exceptions=True)
    quick = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    await stop_doorbell(quick, timeout_s=5)
    assert quick.cancelled()
