"""The live view of a running net: what it waits for, rounds, clients, the deadline (rich)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from daemons.testnet.records import RoundRecord
from daemons.testnet.status_view import Health, client_rows, deadline_text, waiting_for


def _fmt(v: float | None, spec: str) -> str:
    return "…" if v is None else format(v, spec)


def round_table(rounds: Sequence[RoundRecord], planned: int, last: int = 12) -> Table:
    """The most recent rounds, one row each (the headline metric named by the manifests)."""
    named = [r.headline for r in rounds if r.headline]
    headline = named[-1] if named else "accuracy"
    table = Table(expand=False)
    for col in ("round", "status", "updates", headline, "loss", "wall s"):
        table.add_column(col, justify="right" if col != "status" else "left")
    colour = {"open": "yellow", "closed": "green", "failed": "red"}
    for r in rounds[-last:]:
        bar = "█" * len(r.updates) + "·" * max(0, r.max_updates - len(r.updates))
        table.add_row(
            str(r.round_id),
            Text(r.status, style=colour.get(r.status, "")),
            f"{bar} {len(r.updates)}/{r.max_updates}",
            _fmt(r.metrics.get(headline), ".4f"),
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


def status_line(rounds: Sequence[RoundRecord], planned: int, health: Health) -> Text:
    """`waiting for: …` and, for an open round, its deadline (block time ~ wall time)."""
    text = Text("waiting for: ", style="bold")
    text.append(waiting_for(rounds, planned, health))
    deadline = deadline_text(rounds[-1], time.time()) if rounds else ""
    if deadline:
        text.append(f" · {deadline}", style="red" if "passed" in deadline else "")
    return text


def client_table(
    net: Mapping[str, Any], rounds: Sequence[RoundRecord], health: Health
) -> Table | None:
    """One row per client: the org's name for it, its state now, its last train loss."""
    clients = list(net.get("clients", []))
    if not clients:
        return None
    daemons = [f"client-{i}" for i in range(len(clients))]
    table = Table(expand=False)
    for col in ("client", "state", "train loss"):
        table.add_column(col, justify="right" if col == "train loss" else "left")
    for row in client_rows(rounds, clients, daemons, net.get("client_names", {}), health):
        table.add_row(*row)
    return table


def render(
    net: Mapping[str, Any],
    rounds: Sequence[RoundRecord],
    planned: int,
    health: Health | None = None,
) -> Group:
    """The whole live view."""
    health = health or {}
    parts: list[Any] = [header(net, rounds, planned), status_line(rounds, planned, health)]
    if rounds:
        parts.append(round_table(rounds, planned))
    else:
        parts.append(Text("waiting for the first round…", style="dim"))
    clients = client_table(net, rounds, health)
    if clients is not None:
        parts.append(clients)
    parts.append(Text("Ctrl-C stops every process", style="dim"))
    return Group(*parts)
