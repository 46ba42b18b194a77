"""The org's round protocol: read chain state, decide, do one idempotent step, repeat.

view (`daemons.org.view`) -> decide (`daemons.org.decide`) -> act: open (`opening`), judge
(`collect`), close (`close`) or fail. Each step re-reads the contract, so running it twice
(after `kill -9`, or on a replayed event) is harmless: transactions go through `TxSender`
with a deterministic key, blobs are content-addressed, and the aggregation is deterministic.
Collaborators: the chain port, the ledger, the prefetcher (the blob fetcher of updates) and
`OrgParts`, which builds each step's opener, judge and closer from the current settings.
"""

from __future__ import annotations

import logging

from contracts.state import RoundInfo
from daemons.org.close import close_round
from daemons.org.collect import judge_pending
from daemons.org.decide import Action, Decision, RoundView, activity_of, decide
from daemons.org.ledger import Submission, sub_digest
from daemons.org.noblock import NoBlockWatch
from daemons.org.observe import observe_settled
from daemons.org.parts import OrgParts
from daemons.org.view import read_view
from daemons.runtime.overdue import OVERDUE_POLLS, overdue
from daemons.runtime.service import log_event

log = logging.getLogger("fedchain.org")
IDLE = (Action.WAIT, Action.DONE, Action.BUDGET)


class OrgRounds:
    """One org's view of the federation and the steps that move it forward."""

    def __init__(self, parts: OrgParts) -> None:
        self.parts = parts  # the settings, and each step's opener, judge and closer
        self.chain, self.ledger, self.metrics = parts.chain, parts.ledger, parts.metrics
        self.prefetch = parts.prefetch  # fetches each recorded update as it is announced
        self.no_blocks = NoBlockWatch(parts.cfg.chain.no_block_warn_s)
        self.round_id = 0
        self.activity = "starting"  # what the org is doing now, for /healthz and the live view

    async def view(self) -> tuple[RoundView, RoundInfo | None]:
        """The current round on chain, joined with the ledger's submissions for it."""
        round_id = await self.chain.current_round_id()
        self.round_id = round_id
        self.metrics.current_round.set(round_id)
        parts = self.parts
        return await read_view(self.chain, self.ledger, round_id, parts.fed.rounds, parts.privacy)

    async def step(self) -> Decision:
        """Decide and carry out one step; returns the decision (WAIT/DONE/BUDGET mean: idle).

        A step that takes longer than `poll_interval_s` x OVERDUE_POLLS logs a WARNING
        (and again as long as it lasts): an action the org waits on is visible."""
        view, info = await self.view()
        decision = decide(view)
        self.activity = activity_of(decision.action, view.round_id)
        self.no_blocks.observe(view, decision)
        if decision.action in IDLE:
            return decision
        r = view.round_id
        log_event(log, logging.INFO, f"{decision.action.value}: {decision.reason}", round_id=r)
        after_s = self.parts.cfg.chain.poll_interval_s * OVERDUE_POLLS
        async with overdue(log, f"{decision.action.value} of round {r}", after_s, round_id=r):
            await self._act(decision, view, info)
        return decision

    async def _act(self, decision: Decision, view: RoundView, info: RoundInfo | None) -> None:
        """Carry out one decided step (open, judge, close or fail)."""
        if decision.action is Action.OPEN:
            await self.open_next(view.round_id, info)
        elif decision.action is Action.JUDGE:
            assert info is not None
            await self.judge_pending(info)
        elif decision.action is Action.CLOSE:
            assert info is not None
            await close_round(self.parts.closer(), info)
        elif decision.action is Action.FAIL:
            await self._fail(view, info)

    async def _fail(self, view: RoundView, info: RoundInfo | None) -> None:
        """failRound: the deadline passed with too few updates on chain."""
        await self.chain.fail_round(view.round_id)
        self.metrics.rounds.labels(outcome="failed").inc()
        if info is not None:
            duration_s = self.parts.fed.round_duration_s
            await observe_settled(self.chain, self.metrics, duration_s, info, "failed")
        log_event(
            log,
            logging.WARNING,
            "round failed: too few updates by the deadline",
            round_id=view.round_id,
            num_updates=view.num_updates,
        )

    async def run_until_idle(self) -> Decision:
        """Step until there is nothing to do right now."""
        while True:
            decision = await self.step()
            if decision.action in IDLE:
                return decision

    async def open_next(self, round_id: int, info: RoundInfo | None) -> None:
        """Publish the round config and open round `round_id + 1` on the base model."""
        await self.parts.opener().open_next(round_id, info)

    async def publish_initial(self) -> tuple[str, bytes]:
        """Build the seeded round-0 model and put it to IPFS (same seed, same CID)."""
        return await self.parts.opener().publish_initial()

    def record(self, round_id: int, sub: Submission) -> None:
        """Remember an `UpdateSubmitted` (idempotent) and, in the current round, start its fetch."""
        if round_id == self.round_id:
            self.prefetch.want(sub.cid, sub_digest(sub), sub.client)
        if self.ledger.record(round_id, sub):
            who = {"client": sub.client, "cid": sub.cid}
            log_event(log, logging.INFO, "update submitted", round_id=round_id, **who)

    async def judge_pending(self, info: RoundInfo) -> None:
        """Fetch and validate each recorded, unjudged update of the round, in client order."""
        await judge_pending(self.parts.judge(), self.ledger, info)
