"""The live view renders rounds, update bars and accuracy."""

import time

from rich.console import Console

from daemons.testnet.progress import render
from daemons.testnet.records import RoundRecord, UpdateRecord

UPD = UpdateRecord("0xa", "cid", "0x", 10)


def test_live_view_shows_rounds_updates_and_accuracy() -> None:
    rounds = [
        RoundRecord(
            1,
            "closed",
            3,
            "b",
            "0x",
            (UPD, UPD, UPD),
            metrics={"accuracy": 0.8123},
            headline="accuracy",
            wall_s=2.5,
        ),
        RoundRecord(2, "open", 3, "b", "0x", (UPD,)),
    ]
    net = {"phase": "running", "started_at": time.time() - 12, "clients": ["a", "b", "c"]}
    console = Console(record=True, width=100)
    console.print(render(net, rounds, planned=5))
    text = console.export_text()
    assert "rounds 1/5" in text and "3 clients" in text
    assert "0.8123" in text and "███ 3/3" in text and "█·· 1/3" in text


def test_live_view_before_the_first_round() -> None:
    console = Console(record=True, width=100)
    console.print(render({"phase": "daemons", "restarts": {"org": 1}}, [], planned=2))
    text = console.export_text()
    assert "waiting for the first round" in text and "1 daemon restart" in text
