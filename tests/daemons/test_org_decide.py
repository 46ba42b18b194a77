"""The org's close/fail/open decision as a pure function of chain state, and its ledger."""

from __future__ import annotations

from dataclasses import replace

import pytest

from contracts.state import RoundStatus
from daemons.org.decide import Action, RoundView, decide
from daemons.org.ledger import ACCEPTED, Ledger, Submission
from tests.daemons.fakes import MemKV

OPEN = RoundView(
    round_id=2,
    status=RoundStatus.OPEN,
    deadline=1000,
    min_updates=2,
    max_updates=3,
    num_updates=1,
    now_s=900,
    recorded=1,
    pending=0,
    rounds=3,
)


@pytest.mark.parametrize(
    ("changes", "action"),
    [
        ({"status": RoundStatus.NONE, "round_id": 0}, Action.OPEN),
        ({"status": RoundStatus.CLOSED}, Action.OPEN),
        ({"status": RoundStatus.FAILED}, Action.OPEN),
        ({"status": RoundStatus.CLOSED, "round_id": 3}, Action.DONE),
        ({"status": RoundStatus.FAILED, "round_id": 3}, Action.DONE),
        ({}, Action.WAIT),
        ({"pending": 1}, Action.JUDGE),
        ({"pending": 1, "now_s": 2000}, Action.JUDGE),
        ({"num_updates": 3, "recorded": 3}, Action.CLOSE),
        ({"num_updates": 3, "recorded": 2}, Action.WAIT),
        ({"now_s": 1000, "num_updates": 2, "recorded": 2}, Action.WAIT),
        ({"now_s": 1001, "num_updates": 2, "recorded": 2}, Action.CLOSE),
        ({"now_s": 1001}, Action.FAIL),
        ({"now_s": 1001, "num_updates": 0, "recorded": 0}, Action.FAIL),
        ({"now_s": 1001, "num_updates": 2, "recorded": 1}, Action.WAIT),
        # the privacy budget: checked only where a round would be opened
        ({"status": RoundStatus.CLOSED, "epsilon_next": 3.9, "epsilon_budget": 4.0}, Action.OPEN),
        ({"status": RoundStatus.CLOSED, "epsilon_next": 4.0, "epsilon_budget": 4.0}, Action.OPEN),
        ({"status": RoundStatus.CLOSED, "epsilon_next": 4.1, "epsilon_budget": 4.0}, Action.BUDGET),
        ({"status": RoundStatus.FAILED, "epsilon_next": 4.1, "epsilon_budget": 4.0}, Action.BUDGET),
        (
            {"status": RoundStatus.NONE, "round_id": 0, "epsilon_next": 9.0, "epsilon_budget": 8.0},
            Action.BUDGET,
        ),
        (
            {"status": RoundStatus.CLOSED, "epsilon_next": float("inf"), "epsilon_budget": 8.0},
            Action.BUDGET,
        ),
        (
            {"status": RoundStatus.CLOSED, "epsilon_next": float("nan"), "epsilon_budget": 8.0},
            Action.BUDGET,
        ),
        ({"status": RoundStatus.CLOSED, "epsilon_next": 99.0, "epsilon_budget": 0.0}, Action.OPEN),
        (
            {
                "status": RoundStatus.CLOSED,
                "round_id": 3,
                "epsilon_next": 9.0,
                "epsilon_budget": 8.0,
            },
            Action.DONE,
        ),
        (
            {"epsilon_next": 9.0, "epsilon_budget": 8.0, "num_updates": 3, "recorded": 3},
            Action.CLOSE,
        ),
    ],
)
def test_decide(changes: dict[str, object], action: Action) -> None:
    decision = decide(replace(OPEN, **changes))  # type: ignore[arg-type]
    assert decision.action is action, decision.reason


def test_budget_stop_says_why() -> None:
    view = replace(OPEN, status=RoundStatus.CLOSED, epsilon_next=4.25, epsilon_budget=4.0)
    reason = decide(view).reason
    assert "round 3" in reason and "4.25" in reason and "epsilon_budget 4" in reason


def test_ledger_records_once_and_judges() -> None:
    ledger = Ledger(MemKV())
    sub = Submission(client="0xB", cid="bafy", digest="0x00", num_samples=5)
    assert ledger.record(1, sub) is True
    assert ledger.record(1, replace(sub, cid="other")) is False
    assert ledger.submissions(1)["0xB"].cid == "bafy"
    assert ledger.submissions(2) == {}
    ledger.judge(1, "0xB", ACCEPTED, train={"loss": 0.5})
    got = ledger.submissions(1)["0xB"]
    assert got.accepted and got.train == {"loss": 0.5}
    ledger.judge(1, "0xB", "non_finite", "params/w has NaN")
    assert not ledger.submissions(1)["0xB"].accepted
    ledger.put_json("x", {"a": 1})
    assert ledger.get_json("x") == {"a": 1} and ledger.get_json("y") is None


def test_every_action_has_a_live_view_activity() -> None:
    from daemons.org.decide import ACTIVITY

    assert set(ACTIVITY) == set(Action)  # a new Action without one crashed the org (KeyError)
