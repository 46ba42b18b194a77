"""The report's plot names and the series it plots: no matplotlib (report.html needs only these).

`plots.py` and `plots_ops.py` draw, and import matplotlib (~0.5 CPU-s) on their first plot,
which `testnet up` draws in its plot workers (plot_pool.py), not in its own process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from daemons.testnet.records import RoundRecord, first_baseline

PlotJob = tuple[Callable[..., Path], tuple[Any, ...]]  # a plot function and its arguments

PLOT_FILES = {
    "headline": "Headline test metric per round (round 0: the initial model)",
    "loss": "Test loss per round",
    "per_class": "Per-class test accuracy per round",
    "participation": "Per-client participation",
    "train_loss": "Per-client train loss",
    "gas": "Gas used per round",
    "bytes_moved": "Bytes moved per round",
    "round_time": "Round wall time",
}


def headline_name(rounds: Sequence[RoundRecord]) -> str:
    """The federation's headline metric: the one its manifests name (last round wins)."""
    named = [r.headline for r in rounds if r.headline]
    return named[-1] if named else ""


def metric_series(rounds: Sequence[RoundRecord], metric: str) -> list[tuple[int, float]]:
    """(round, value) of `metric`, with round 0 from the baseline when it was recorded."""
    base = first_baseline(rounds).get("metrics", {})
    pts = [(0, float(base[metric]))] if metric in base else []
    pts += [(r.round_id, r.metrics[metric]) for r in rounds if metric in r.metrics]
    return pts


def short(client: str) -> str:
    """`0x1234…abcd` for axis labels."""
    return f"{client[:6]}…{client[-4:]}"


def label(client: str, names: Mapping[str, str]) -> str:
    """The org's name for a client ([federation] client_names), else its short address."""
    return names.get(client.lower()) or short(client)
