"""Hypothesis stateful test: random calls by org, clients and an outsider, with time jumps.

Each step predicts the outcome with the reference model (tests/contracts/lifecycle_model.py)
and checks the chain agrees, error name included; the issue's invariants are checked after
every step and, from the event log, at the end of every example. One anvil serves all
examples; each starts from an evm_snapshot of the freshly deployed contract.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from web3 import AsyncHTTPProvider, AsyncWeb3

from contracts import events as ev
from contracts.binding import FederatedRounds
from contracts.errors import ContractRevert
from contracts.state import RoundStatus
from daemons.testnet.nodes.anvil import Anvil
from tests.contracts.helpers import BASE_CID, CID59, CONFIG_CID, MANIFEST_CID, MODEL_CID, sha
from tests.contracts.lifecycle_model import MAX_DURATION, Model
from tests.fixtures.anvil import dev_accounts

EXAMPLES, STEPS = int(os.environ.get("FEDCHAIN_INVARIANT_EXAMPLES", "100")), 50
AMBIGUOUS_S = 3  # a deadline this close to "now" could fall either side of the next block
NATURAL = 15  # callers below this act as the natural caller (org, a client); the rest as 0-4
callers = st.integers(0, NATURAL + 4)  # accounts: 0 = first org, 1-3 = clients, 4 = outsider
durations = st.sampled_from([0, -100, 105, 305, 1005, 3005, MAX_DURATION, MAX_DURATION + 100])
relative_round = st.sampled_from([0, 0, 0, -1, 1])
PAUSED_ALLOWED = (ev.Unpaused, ev.OrgTransferStarted, ev.OrgTransferred)


class Harness:
    """The shared chain: one anvil, one loop, one deployed contract and its snapshot."""

    def __init__(self, anvil: Anvil) -> None:
        self.anvil = anvil
        self.loop = asyncio.new_event_loop()
        self.w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
        self.accounts = dev_accounts(anvil)[:5]
        self.contract: FederatedRounds = self.run(self._deploy())
        self.snapshot = anvil.rpc("evm_snapshot")
        self.calls = 0
        self.outcomes: Counter[str] = Counter()

    async def _deploy(self) -> FederatedRounds:
        contract = await FederatedRounds.deploy(self.w3, self.accounts[0])
        await contract.add_clients(self.accounts[0], [a.address for a in self.accounts[1:4]])
        return contract

    def run(self, awaitable: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(awaitable)

    def reset(self) -> int:
        """Back to the freshly deployed state; returns the first block of the example."""
        assert self.anvil.rpc("evm_revert", [self.snapshot]) is True
        self.snapshot = self.anvil.rpc("evm_snapshot")
        return int(self.anvil.rpc("eth_blockNumber"), 16) + 1

    def close(self) -> None:
        self.run(self.w3.provider.disconnect())
        self.loop.close()


def make_machine(h: Harness) -> type[RuleBasedStateMachine]:
    class Lifecycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.model = Model()
            self.first_block = h.reset()
            self.max_round_seen = 0

        def now(self) -> int:
            return int(h.run(h.w3.eth.get_block("latest"))["timestamp"])

        def act(self, expected: str | None, call: Callable[[], Awaitable[Any]]) -> None:
            h.calls += 1
            h.outcomes[expected or "ok"] += 1
            try:
                h.run(call())
            except ContractRevert as exc:
                assert exc.error_name == expected, f"chain said {exc}, model said {expected}"
            else:
                assert expected is None, f"chain accepted, model expected {expected}"

        def ambiguous(self, round_id: int, now: int) -> bool:
            r = self.model.round(round_id)
            return r is not None and 0 <= r.deadline - now < AMBIGUOUS_S

        def pick(self, caller: int, natural: int) -> int:
            """Mostly the caller a real deployment would use; sometimes any account."""
            return natural if caller < NATURAL else caller - NATURAL

        def client(self, caller: int) -> int:
            clients = sorted(self.model.clients)
            natural = clients[caller % len(clients)] if clients else 4
            return self.pick(caller, natural)

        @rule(caller=callers, who=st.integers(1, 4))
        def add_client(self, caller: int, who: int) -> None:
            caller, address = self.pick(caller, self.model.org), h.accounts[who].address
            expected = self.model.add_client(caller, who)
            self.act(expected, lambda: h.contract.add_client(h.accounts[caller], address))

        @rule(caller=callers, who=st.integers(1, 4))
        def remove_client(self, caller: int, who: int) -> None:
            caller, address = self.pick(caller, self.model.org), h.accounts[who].address
            expected = self.model.remove_client(caller, who)
            self.act(expected, lambda: h.contract.remove_client(h.accounts[caller], address))

        @rule(caller=callers, duration=durations, lo=st.integers(0, 3), hi=st.integers(0, 4))
        def open_round(self, caller: int, duration: int, lo: int, hi: int) -> None:
            now, caller = self.now(), self.pick(caller, self.model.org)
            expected = self.model.open_round(caller, now, now + duration, lo, hi)
            args = (BASE_CID, sha("base"), now + duration, lo, hi, CONFIG_CID)
            self.act(expected, lambda: h.contract.open_round(h.accounts[caller], *args))

        @precondition(lambda m: m.model.current_round_id > 0)
        @rule(caller=callers, rel=relative_round, samples=st.sampled_from([7, 7, 7, 0]))
        def submit_update(self, caller: int, rel: int, samples: int) -> None:
            now, round_id = self.now(), max(0, self.model.current_round_id + rel)
            if self.ambiguous(round_id, now):
                return
            caller = self.client(caller)
            expected = self.model.submit(caller, now, round_id, samples)
            args = (round_id, CID59, sha(f"{round_id}/{caller}"), samples)
            self.act(expected, lambda: h.contract.submit_update(h.accounts[caller], *args))

        @precondition(lambda m: m.model.current_round_id > 0)
        @rule(first=callers)
        def submit_from_every_account(self, first: int) -> None:
            """Accounts first..first+4 submit to the current round: fills rounds, hits limits."""
            for i in range(5):
                self.submit_update(NATURAL + (first + i) % 5, 0, 7)

        @precondition(lambda m: m.model.current_round_id > 0)
        @rule(caller=callers, rel=relative_round)
        def close_round(self, caller: int, rel: int) -> None:
            now, round_id = self.now(), max(0, self.model.current_round_id + rel)
            if self.ambiguous(round_id, now):
                return
            caller = self.pick(caller, self.model.org)
            expected = self.model.close(caller, now, round_id)
            args = (round_id, MODEL_CID, sha(f"model{round_id}"), MANIFEST_CID)
            self.act(expected, lambda: h.contract.close_round(h.accounts[caller], *args))

        @precondition(lambda m: m.model.current_round_id > 0)
        @rule(caller=callers, rel=relative_round)
        def fail_round(self, caller: int, rel: int) -> None:
            now, round_id = self.now(), max(0, self.model.current_round_id + rel)
            if self.ambiguous(round_id, now):
                return
            caller = self.pick(caller, 4)
            expected = self.model.fail(caller, now, round_id)
            self.act(expected, lambda: h.contract.fail_round(h.accounts[caller], round_id))

        @precondition(lambda m: not m.model.paused)
        @rule(caller=callers)
        def pause(self, caller: int) -> None:
            caller = self.pick(caller, self.model.org)
            self.act(self.model.pause(caller), lambda: h.contract.pause(h.accounts[caller]))

        @precondition(lambda m: m.model.paused)
        @rule(caller=callers)
        def unpause(self, caller: int) -> None:
            caller = self.pick(caller, self.model.org)
            self.act(self.model.unpause(caller), lambda: h.contract.unpause(h.accounts[caller]))

        @rule(caller=callers, to=st.integers(0, 4))
        def transfer_org(self, caller: int, to: int) -> None:
            caller, address = self.pick(caller, self.model.org), h.accounts[to].address
            expected = self.model.transfer_org(caller, to)
            self.act(expected, lambda: h.contract.transfer_org(h.accounts[caller], address))

        @precondition(lambda m: m.model.pending_org is not None)
        @rule(caller=callers)
        def accept_org(self, caller: int) -> None:
            pending = self.model.pending_org
            caller = self.pick(caller, 4 if pending is None else pending)
            expected = self.model.accept_org(caller)
            self.act(expected, lambda: h.contract.accept_org(h.accounts[caller]))

        @rule(seconds=st.sampled_from([10, 100, 300, 1000]))
        def time_jump(self, seconds: int) -> None:
            h.anvil.rpc("evm_increaseTime", [seconds])
            h.anvil.rpc("evm_mine")

        @invariant()
        def chain_matches_model(self) -> None:
            current = h.run(h.contract.current_round_id())
            assert current >= self.max_round_seen, "the round id went down"
            self.max_round_seen = current
            assert current == self.model.current_round_id
            assert h.run(h.contract.paused()) == self.model.paused
            if current:
                info = h.run(h.contract.get_round(current))
                r = self.model.rounds[-1]
                assert (info.status.name.lower(), info.num_updates) == (r.status, len(r.submitted))

        def teardown(self) -> None:
            check_history(h, self.model, self.first_block)

    return Lifecycle


def check_history(h: Harness, model: Model, first_block: int) -> None:
    """The issue's invariants, read back from the chain's own event log and storage."""
    latest = h.run(h.w3.eth.block_number)
    flt = {"fromBlock": first_block, "toBlock": latest, "address": h.contract.address}
    raw = h.run(h.w3.eth.get_logs(flt)) if latest >= first_block else []  # type: ignore[arg-type]
    logs = ev.decode_logs(raw)
    opened = [e for e in logs if isinstance(e, ev.RoundOpened)]
    assert [e.round_id for e in opened] == list(range(1, len(opened) + 1))
    deadlines = {e.round_id: e.deadline for e in opened}
    subs = [e for e in logs if isinstance(e, ev.UpdateSubmitted)]
    assert len({(e.round_id, e.client) for e in subs}) == len(subs), "two updates from one client"
    for e in subs:
        block = h.run(h.w3.eth.get_block(e.meta.block_number))
        assert block["timestamp"] <= deadlines[e.round_id], "update accepted after the deadline"
    settled = Counter(e.round_id for e in logs if isinstance(e, ev.RoundClosed | ev.RoundFailed))
    assert all(n == 1 for n in settled.values()), "a round was closed or failed twice"
    per_round = Counter(e.round_id for e in subs)
    statuses = []
    for round_id in range(1, model.current_round_id + 1):
        info = h.run(h.contract.get_round(round_id))
        assert info.num_updates == per_round[round_id] == len(model.rounds[round_id - 1].submitted)
        statuses.append(info.status)
    assert statuses.count(RoundStatus.OPEN) <= 1 and RoundStatus.OPEN not in statuses[:-1]
    paused = False
    for event in logs:
        assert not paused or isinstance(event, PAUSED_ALLOWED), f"{event} while paused"
        paused = isinstance(event, ev.Paused) or (paused and not isinstance(event, ev.Unpaused))
    assert h.run(h.contract.org()) == h.accounts[model.org].address


@pytest.mark.timeout(600)
def test_random_lifecycles_keep_the_invariants() -> None:
    with Anvil() as anvil:
        h = Harness(anvil)
        try:
            run_state_machine_as_test(
                make_machine(h),
                settings=settings(
                    max_examples=EXAMPLES,
                    stateful_step_count=STEPS,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                ),
            )
        finally:
            h.close()
    print(f"{h.calls} contract calls; outcomes: {dict(h.outcomes)}")
    assert h.calls >= 25 * EXAMPLES, f"only {h.calls} contract calls were made"
    assert h.outcomes["ok"] >= 300, "too few calls succeeded to exercise the lifecycle"
