"""PNG plots of a federation's rounds (matplotlib, Agg backend: no display needed).

Metric plots read the metric names from the manifests (the headline first), so a regression
task's RMSE is plotted as readily as a classifier's accuracy; round 0 is the initial model.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from daemons.testnet.facts import lower_is_better
from daemons.testnet.plot_names import PLOT_FILES, PlotJob, headline_name, metric_series
from daemons.testnet.plot_pool import PlotWorkers
from daemons.testnet.plots_ops import finish, ops_plot_jobs, pyplot, save
from daemons.testnet.records import RoundRecord, first_baseline


def warm_up() -> None:
    """Load what a first plot would (fonts, the Agg canvas, the PNG writer), drawing nothing."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1], "o-", label="warm-up")
    ax.set_title("warm-up")
    fig.tight_layout()
    fig.savefig(io.BytesIO(), format="png", dpi=100)
    plt.close(fig)


def data_limits(values: Sequence[float], bounded: bool) -> tuple[float, float]:
    """Axis limits around the data with a 10% margin (clipped to [0, 1] for a fraction)."""
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or max(abs(hi) * 0.05, 0.01)
    lo, hi = lo - pad, hi + pad
    return (max(lo, 0.0), min(hi, 1.0)) if bounded else (lo, hi)


def plot_metric(rounds: Sequence[RoundRecord], metric: str, path: Path, title: str) -> Path:
    """One metric per round on its own axis, scaled to the trained rounds' values.

    Round 0 (the initial model) is a separate marker; when it lies far outside the trained
    rounds' range (an untrained classifier near chance) it is written at the axis edge
    instead of squashing the rounds' differences into a sliver.
    """
    pts = metric_series(rounds, metric)
    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    trained = [(x, y) for x, y in pts if x > 0]
    if trained:
        xs, ys = zip(*trained, strict=True)
        ax.plot(xs, ys, "o-", color="tab:blue", label=metric)
        bounded = "accuracy" in metric and all(0 <= y <= 1 for _, y in pts)
        lo, hi = data_limits(ys, bounded)
        ax.set_ylim(lo, hi)
        best = min(ys) if lower_is_better(metric) else max(ys)
        ax.axhline(best, color="tab:green", linestyle=":", linewidth=1, label=f"best {best:.4g}")
        if pts[0][0] == 0:
            _initial(ax, pts[0][1], lo, hi)
        ax.legend(fontsize="small", loc="best")
    else:
        ax.text(0.5, 0.5, f"no {metric or 'metric'} recorded", ha="center", transform=ax.transAxes)
    ax.set_xlabel("round")
    ax.set_ylabel(f"test {metric}")
    ax.set_title(title)
    return save(fig, path)


def _initial(ax: Any, value: float, lo: float, hi: float) -> None:
    """The initial model's value: a marker inside the axis, else a note at the nearer edge."""
    span = hi - lo
    if lo - span <= value <= hi + span:  # close enough: widen the axis to include it
        ax.set_ylim(min(lo, value - 0.05 * span), max(hi, value + 0.05 * span))
        ax.plot([0], [value], "D", color="tab:gray", markersize=8, label="initial model")
        return
    y, arrow = (lo, "↓") if value < lo else (hi, "↑")
    ax.annotate(
        f"initial model {value:.4g} {arrow}",
        (0, y),
        xytext=(4, 6 if value < lo else -14),
        textcoords="offset points",
        color="tab:gray",
        fontsize="small",
    )
    ax.set_xlim(left=-0.3)


def per_class_grid(rounds: Sequence[RoundRecord]) -> tuple[list[int], list[list[float]]]:
    """Round ids (0 = baseline) and a classes × rounds grid of per-class accuracy (NaN: none)."""
    cols: list[tuple[int, Sequence[Any]]] = []
    base = first_baseline(rounds).get("per_class", {}).get("accuracy")
    if base:
        cols.append((0, base))
    cols += [(r.round_id, r.per_class["accuracy"]) for r in rounds if r.per_class.get("accuracy")]
    k = max((len(c) for _, c in cols), default=0)
    grid = [[_num(c[i]) if i < len(c) else float("nan") for _, c in cols] for i in range(k)]
    return [r for r, _ in cols], grid


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _annotate(ax: Any, grid: list[list[float]]) -> None:
    """Write each cell's value into the heat map (small grids only: it stays legible)."""
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if v == v:  # not NaN
                colour = "black" if v > 0.6 else "white"
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color=colour)


def plot_per_class(rounds: Sequence[RoundRecord], path: Path) -> Path:
    """A classes × rounds heat map of per-class accuracy; a forgotten class shows at once."""
    ids, grid = per_class_grid(rounds)
    fig, ax = pyplot().subplots(figsize=(6, 1.2 + 0.3 * max(len(grid), 1)))
    if grid:
        im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(ids)), [str(i) for i in ids])
        ax.set_yticks(range(len(grid)), [str(i) for i in range(len(grid))])
        if len(ids) * len(grid) <= 200:
            _annotate(ax, grid)
        fig.colorbar(im, ax=ax, fraction=0.04)
    else:
        ax.text(0.5, 0.5, "no per-class accuracy recorded", ha="center", transform=ax.transAxes)
    ax.set_xlabel("round (0: initial model)")
    ax.set_ylabel("class")
    ax.set_title(PLOT_FILES["per_class"])
    return finish(fig, path)


def write_plots(
    rounds: Sequence[RoundRecord],
    clients: Sequence[str],
    out: Path,
    names: Mapping[str, str] | None = None,
    workers: PlotWorkers | None = None,
) -> list[Path]:
    """All plots into `out`, named after PLOT_FILES (per-class only where recorded).

    With `workers` (plot_pool.py) they draw the plots, side by side; else this process does.
    """
    out.mkdir(parents=True, exist_ok=True)
    jobs = plot_jobs(rounds, clients, out, names or {})
    if workers is not None:
        return workers.draw(jobs)
    return [draw(*args) for draw, args in jobs]


def plot_jobs(
    rounds: Sequence[RoundRecord], clients: Sequence[str], out: Path, names: Mapping[str, str]
) -> list[PlotJob]:
    """Every plot of the report as (function, arguments), in the report's order."""
    headline = headline_name(rounds) or "accuracy"
    title = f"Test {headline} per round"
    jobs: list[PlotJob] = [(plot_metric, (rounds, headline, out / "headline.png", title))]
    if headline != "loss":
        jobs.append((plot_metric, (rounds, "loss", out / "loss.png", PLOT_FILES["loss"])))
    if any(r.per_class for r in rounds):
        jobs.append((plot_per_class, (rounds, out / "per_class.png")))
    return jobs + ops_plot_jobs(rounds, clients, out, names, PLOT_FILES)
