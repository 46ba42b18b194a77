"""The live view of a running net: rounds, updates arriving, accuracy (rich)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from daemons.testnet.records import RoundRecord


def _fmt(v: float | None, spec: str) -> str:
    return "…" if v is None else format(v, spec)


def round_table(rounds: Sequence[RoundRecord], planned: int, last: int = 12) -> Table:
    """The most recent rounds, one row each, plus how many are still to come."""
    table = Table(expand=False)
    for col in ("round", "status", "updates", "accuracy", "loss", "wall s"):
        table.add_column(col, justify="right" if col != "status" else "left")
    colour = {"open": "yellow", "closed": "green", "failed": "red"}
    for r in rounds[-last:]:
        bar = "█" * len(r.updates) + "·" * max(0, r.max_updates - len(r.updates))
        table.add_row(
            str(r.round_id),
            Text(r.status, style=colour.get(r.status, "")),
            f"{bar} {len(r.updates)}/{r.max_updates}",
            _fmt(r.accuracy, ".4f"),
            _fmt(r.loss, ".4f"),
            _fmt(r.wall_s, ".1f"),
        )
    return table


def header(net: Mapping[str, Any], rounds: Sequence[RoundRecord], planned: int) -> Text:
    """One line: phase, settled/planned rounds, elapsed time, restarts."""
    settled = sum(r.status != "open" for r in rounds)
    elapsed = time.time() - float(net.get("started_at", time.time()))
    restarts = sum(net.get("restarts", {}).values())
    text = Text()
    text.append("fedchain testnet ", style="bold")
    text.append(f"[{net.get('phase', 'starting')}] ")
    text.append(f"{len(net.get('clients', []))} clients · rounds {settled}/{planned} · ")
    text.append(f"{elapsed:.0f} s")
    if restarts:
        text.append(f" · {restarts} daemon restart(s)", style="yellow")
    return text


def render(net: Mapping[str, Any], rounds: Sequence[RoundRecord], planned: int) -> Group:
    """The whole live view."""
    parts: list[Any] = [header(net, rounds, planned)]
    if rounds:
        parts.append(round_table(rounds, planned))
    else:
        parts.append(Text("waiting for the first round…", style="dim"))
    parts.append(Text("Ctrl-C stops every process", style="dim"))
    return Group(*parts)
