"""Operator plots of a federation: participation, train loss, gas, bytes, round time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemons.testnet.plot_names import PlotJob, label
from daemons.testnet.records import RoundRecord

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, imported on first use: importing it costs ~0.5
    CPU-s, which `testnet up` spends in its plot workers (plot_pool.py), not in itself."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Figure, path: Path) -> Path:
    """Integer round ticks, tight layout, 100 dpi PNG."""
    from matplotlib.ticker import MaxNLocator

    for ax in fig.axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return finish(fig, path)


def finish(fig: Figure, path: Path) -> Path:
    """Tight layout, 100 dpi PNG, figure closed (for plots that set their own ticks)."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path


def _no_data(ax: Any, message: str) -> None:
    """Say so on an empty plot instead of drawing bare axes."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_yticks([])


def plot_participation(
    rounds: Sequence[RoundRecord], clients: Sequence[str], names: Mapping[str, str], path: Path
) -> Path:
    """A clients × rounds grid: absent, submitted, included, excluded."""
    code = {"pending": 1, "included": 2, "excluded": 3}
    grid = [[0] * len(rounds) for _ in clients]
    row = {c.lower(): i for i, c in enumerate(clients)}
    for j, r in enumerate(rounds):
        for u in r.updates:
            if u.client.lower() in row:
                grid[row[u.client.lower()]][j] = code[u.status]
    colours = ["#dddddd", "#f2c94c", "#27ae60", "#eb5757"]
    fig, ax = pyplot().subplots(figsize=(6, 1.4 + 0.3 * max(len(clients), 1)))
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    ax.imshow(grid, cmap=ListedColormap(colours), vmin=0, vmax=3, aspect="auto")
    ax.set_xticks(range(len(rounds)), [str(r.round_id) for r in rounds])
    ax.set_yticks(range(len(clients)), [label(c, names) for c in clients])
    ax.set_xlabel("round")
    kinds = ("absent", "submitted", "included", "excluded")
    handles = [Patch(color=c, label=n) for c, n in zip(colours, kinds, strict=True)]
    ax.legend(
        handles=handles,
        ncols=4,
        fontsize="small",
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        frameon=False,
    )
    return finish(fig, path)


def plot_train_loss(
    rounds: Sequence[RoundRecord],
    clients: Sequence[str],
    names: Mapping[str, str],
    path: Path,
    title: str,
) -> Path:
    """Each client's local train loss per round (from its update's train metrics)."""
    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    for c in clients:
        pts = [
            (r.round_id, u.train["loss"])
            for r in rounds
            for u in r.updates
            if u.client.lower() == c.lower() and "loss" in u.train
        ]
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", label=label(c, names))
    ax.set_xlabel("round")
    ax.set_ylabel("train loss")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    else:
        _no_data(ax, "no client train loss known")
    ax.set_title(title)
    return save(fig, path)


def plot_gas(rounds: Sequence[RoundRecord], path: Path, title: str) -> Path:
    """Gas per round, stacked: the org's transactions and the clients' submissions."""
    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    known = [r for r in rounds if r.gas is not None]
    xs = [r.round_id for r in known]
    org = [r.gas.org for r in known if r.gas is not None]
    cli = [r.gas.clients for r in known if r.gas is not None]
    ax.bar(xs, org, label="org (open, close/fail)")
    ax.bar(xs, cli, bottom=org, label="clients (submit)")
    top = max((o + c for o, c in zip(org, cli, strict=True)), default=0)
    ax.set_ylim(0, top * 1.3 or 1)  # headroom: the legend never covers a bar
    ax.set_xlabel("round")
    ax.set_ylabel("gas")
    ax.legend(fontsize="small")
    ax.set_title(title)
    return save(fig, path)


def plot_bytes(rounds: Sequence[RoundRecord], path: Path, title: str) -> Path:
    """MB moved per round (base downloads + update uploads + new model)."""
    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    ax.bar([r.round_id for r in rounds], [(r.bytes_moved or 0) / 1e6 for r in rounds])
    if all(r.bytes_moved is None for r in rounds):
        _no_data(ax, "no blob sizes known (blobs not fetched)")
    ax.set_xlabel("round")
    ax.set_ylabel("MB moved")
    ax.set_title(title)
    return save(fig, path)


def plot_round_time(rounds: Sequence[RoundRecord], path: Path, title: str) -> Path:
    """Round wall time, split into the slowest client's training and everything else."""
    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    xs = [r.round_id for r in rounds]
    wall = [r.wall_s or 0.0 for r in rounds]
    train = [min(r.slowest_train_s or 0.0, w) for r, w in zip(rounds, wall, strict=True)]
    ax.bar(xs, train, label="slowest client training")
    ax.bar(xs, [w - t for w, t in zip(wall, train, strict=True)], bottom=train, label="overhead")
    if all(r.wall_s is None for r in rounds):
        _no_data(ax, "no round wall time known")
    ax.set_xlabel("round")
    ax.set_ylabel("seconds")
    ax.legend(fontsize="small")
    ax.set_title(title)
    return save(fig, path)


def ops_plot_jobs(
    rounds: Sequence[RoundRecord],
    clients: Sequence[str],
    out: Path,
    names: Mapping[str, str],
    titles: Mapping[str, str],
) -> list[PlotJob]:
    """Participation, train loss, gas (where receipts were read), bytes and round time, as
    (plot function, arguments) to draw here or in a plot worker."""
    names = {k.lower(): v for k, v in names.items()}
    jobs: list[PlotJob] = [
        (plot_participation, (rounds, clients, names, out / "participation.png")),
        (plot_train_loss, (rounds, clients, names, out / "train_loss.png", titles["train_loss"])),
    ]
    if any(r.gas is not None for r in rounds):
        jobs.append((plot_gas, (rounds, out / "gas.png", titles["gas"])))
    jobs.append((plot_bytes, (rounds, out / "bytes_moved.png", titles["bytes_moved"])))
    jobs.append((plot_round_time, (rounds, out / "round_time.png", titles["round_time"])))
    return jobs
