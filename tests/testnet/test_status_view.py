"""The live view says what the federation waits for and each client's state (from tables)."""

from __future__ import annotations

import time

import pytest
from rich.console import Console

from daemons.testnet.progress import render
from daemons.testnet.records import RoundRecord, UpdateRecord
from daemons.testnet.status_view import client_rows, deadline_text, waiting_for

A, B, C = ("0x" + c * 40 for c in "abc")
OPEN = RoundRecord(2, "open", 3, "b", "0x", (UpdateRecord(A, "u", "0x", 5),), deadline=1000)
CLOSED = RoundRecord(1, "closed", 3, "b", "0x", (UpdateRecord(A, "u", "0x", 5, "included"),))


def h(org: str = "", *clients: str) -> dict[str, dict[str, str] | None]:
    docs: dict[str, dict[str, str] | None] = {"org": {"activity": org} if org else None}
    for i, act in enumerate(clients):
        docs[f"client-{i}"] = {"activity": act} if act else None
    return docs


@pytest.mark.parametrize(
    ("rounds", "health", "expected"),
    [
        ([], {}, "the org to publish the initial model and open round 1"),
        ([], h("publishing the initial model"), "the org: publishing the initial model"),
        (
            [CLOSED, OPEN],
            h("waiting for updates", "submitted round 2", "compiling round 2", "training round 2"),
            "client updates for round 2 (1/3; 1 compiling, 1 training)",
        ),
        ([CLOSED, OPEN], h("validating"), "the org: validating round 2"),
        ([CLOSED, OPEN], h("aggregating"), "the org: aggregating round 2"),
        ([CLOSED], h("waiting for updates"), "the org to open round 2"),
        ([CLOSED], h("opening a round"), "the org: opening a round"),
    ],
)
def test_waiting_for(rounds: list[RoundRecord], health: dict, expected: str) -> None:
    assert waiting_for(rounds, 5, health) == expected


def test_waiting_for_nothing_once_every_round_settled() -> None:
    assert waiting_for([CLOSED], 1, {}).startswith("nothing")


def test_deadline_text() -> None:
    assert deadline_text(OPEN, 958.2) == "deadline in 42 s"
    assert deadline_text(OPEN, 1003) == "deadline passed 3 s ago"
    assert deadline_text(CLOSED, 0) == ""


def test_client_rows_take_the_chain_first_then_the_daemon() -> None:
    names = {A.lower(): "hospital-a"}
    health = h("waiting", "", "training round 2")  # client-0's daemon does not answer
    health["client-2"] = None
    rows = client_rows(
        [CLOSED, OPEN], [A, B, C], ["client-0", "client-1", "client-2"], names, health
    )
    assert rows == [
        ("hospital-a", "submitted", "…"),  # on chain: its daemon's silence does not matter
        ("client-1", "training round 2", "…"),
        ("client-2", "no answer", "…"),
    ]


def test_render_shows_waiting_for_deadline_and_clients() -> None:
    opened = RoundRecord(1, "open", 2, "b", "0x", (), deadline=int(time.time()) + 120)
    net = {"phase": "running", "started_at": time.time(), "clients": [A, B]}
    health = h("waiting for updates", "compiling round 1", "fetching round 1")
    console = Console(record=True, width=120)
    console.print(render(net, [opened], 3, health))
    text = console.export_text()
    assert "waiting for: client updates for round 1 (0/2; 1 fetching, 1 compiling)" in text
    assert "deadline in 1" in text  # 119 or 120 s
    assert "compiling round 1" in text and "fetching round 1" in text
