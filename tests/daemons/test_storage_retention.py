"""Retention: keep the newest N rounds' models and updates, unpin everything older."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemons.org.retention import RoundBlobs, cids_to_unpin


def history(rounds: int) -> list[RoundBlobs]:
    return [
        RoundBlobs(r, f"model{r}", (f"u{r}a", f"u{r}b"), (f"manifest{r}",))
        for r in range(1, rounds + 1)
    ]


def test_keeps_the_newest_rounds_and_drops_the_rest() -> None:
    dropped = cids_to_unpin(history(4), keep_rounds=2)
    assert dropped == sorted(
        ["model1", "u1a", "u1b", "manifest1", "model2", "u2a", "u2b", "manifest2"]
    )


def test_nothing_to_drop_while_history_is_short() -> None:
    assert cids_to_unpin(history(3), keep_rounds=3) == []
    assert cids_to_unpin([], keep_rounds=1) == []


def test_a_cid_still_used_by_a_kept_round_stays() -> None:
    # Round 3 failed and re-published round 2's model as its model of record.
    rounds = [
        RoundBlobs(1, "m1", ("a",)),
        RoundBlobs(2, "m2", ("b",)),
        RoundBlobs(3, "m2", ()),
    ]
    assert cids_to_unpin(rounds, keep_rounds=1) == ["a", "b", "m1"]


def test_order_of_history_does_not_matter() -> None:
    rounds = history(5)
    assert cids_to_unpin(reversed(rounds), 2) == cids_to_unpin(rounds, 2)


def test_records_of_one_round_are_merged() -> None:
    rounds = [RoundBlobs(1, None, ("a",)), RoundBlobs(1, "m1"), RoundBlobs(2, "m2")]
    assert cids_to_unpin(rounds, keep_rounds=1) == ["a", "m1"]


def test_keep_rounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="keep_rounds"):
        cids_to_unpin(history(2), keep_rounds=0)


@given(st.integers(1, 12), st.integers(1, 6))
def test_never_drops_a_kept_cid(rounds: int, keep: int) -> None:
    hist = history(rounds)
    dropped = set(cids_to_unpin(hist, keep))
    kept = set().union(*(b.cids() for b in hist[-keep:]))
    assert not dropped & kept
    assert dropped | kept == set().union(*(b.cids() for b in hist))
