"""What the org does next, as a pure function of chain state and its own verdicts.

The chain is the source of truth: every step re-reads it and calls `decide`, so a restart
after `kill -9` at any instant picks up exactly where the protocol stands.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from contracts.state import RoundStatus


class Action(StrEnum):
    """The org's next step."""

    OPEN = "open"  # open round `round_id + 1`
    JUDGE = "judge"  # fetch and validate recorded, unjudged updates
    WAIT = "wait"  # nothing to do until an event or the deadline
    CLOSE = "close"  # aggregate, publish, closeRound
    FAIL = "fail"  # failRound: deadline passed with too few on-chain updates
    DONE = "done"  # all configured rounds are settled
    BUDGET = "budget"  # the next round would spend more than the privacy (ε) budget: stop


@dataclass(frozen=True)
class RoundView:
    """Everything `decide` looks at: the current round on chain and the org's ledger of it."""

    round_id: int
    status: RoundStatus
    deadline: int
    min_updates: int
    max_updates: int
    num_updates: int
    now_s: int
    recorded: int
    pending: int
    rounds: int
    epsilon_next: float = 0.0  # ε after one more round (models.accountant)
    epsilon_budget: float = 0.0  # 0: no budget


@dataclass(frozen=True)
class Decision:
    """An action and a short reason for the log."""

    action: Action
    reason: str


def decide(v: RoundView) -> Decision:
    """Next step of the round protocol (DESIGN.md, "One round"); deadlines by block time."""
    if v.status is RoundStatus.NONE:
        return _open(v, "no round yet")
    if v.status is not RoundStatus.OPEN:
        if v.round_id >= v.rounds:
            return Decision(Action.DONE, f"round {v.round_id} of {v.rounds} settled")
        return _open(v, f"round {v.round_id} is {v.status.name.lower()}")
    if v.pending > 0:
        return Decision(Action.JUDGE, f"{v.pending} update(s) to validate")
    full = v.num_updates >= v.max_updates
    expired = v.now_s > v.deadline
    if not (full or expired):
        return Decision(Action.WAIT, f"{v.num_updates}/{v.max_updates} updates, before deadline")
    if v.recorded < v.num_updates:
        return Decision(
            Action.WAIT, f"waiting for events: {v.recorded} of {v.num_updates} recorded"
        )
    if v.num_updates < v.min_updates:
        return Decision(Action.FAIL, f"deadline passed with {v.num_updates} < {v.min_updates}")
    why = "full" if full else "deadline passed"
    return Decision(Action.CLOSE, f"{why} with {v.num_updates} update(s)")


def _open(v: RoundView, reason: str) -> Decision:
    """Open the next round, unless it would take ε past the budget (then stop for good)."""
    if v.epsilon_budget > 0 and not v.epsilon_next <= v.epsilon_budget:
        return Decision(
            Action.BUDGET,
            f"privacy budget: opening round {v.round_id + 1} would spend ε = "
            f"{v.epsilon_next:.4g} > epsilon_budget {v.epsilon_budget:g}; no more rounds",
        )
    return Decision(Action.OPEN, reason)


ACTIVITY = {
    Action.OPEN: "opening a round",
    Action.JUDGE: "validating",
    Action.CLOSE: "aggregating",
    Action.FAIL: "failing the round",
    Action.WAIT: "waiting for updates",
    Action.DONE: "done",
    Action.BUDGET: "stopped: privacy budget",
}


def activity_of(action: Action, round_id: int) -> str:
    """A word for what the org does: round 1's opening publishes the initial model."""
    if action is Action.OPEN and round_id == 0:
        return "publishing the initial model"
    return ACTIVITY[action]
