"""PNG plots of a finished run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from daemons.testnet.records import RoundRecord

PLOT_FILES = {
    "accuracy_loss": "Test accuracy and loss per round",
    "participation": "Per-client participation",
    "train_loss": "Per-client train loss",
    "bytes_moved": "Bytes moved per round",
    "round_time": "Round wall time",
}


def short(client: str) -> str:
    """`0x1234…abcd` for axis labels."""
    return f"{client[:6]}…{client[-4:]}"


def _save(fig: plt.Figure, path: Path) -> Path:
    for ax in fig.axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_accuracy_loss(rounds: Sequence[RoundRecord], path: Path) -> Path:
    """Held-out accuracy (left axis) and loss (right axis) of each round's model."""
    pts = [(r.round_id, r.accuracy, r.loss or 0.0) for r in rounds if r.accuracy is not None]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = [p[0] for p in pts]
    ax.plot(xs, [p[1] for p in pts], "o-", color="tab:blue", label="accuracy")
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy", color="tab:blue")
    ax.set_ylim(0, 1)
    ax2 = ax.twinx()
    ax2.plot(xs, [p[2] for p in pts], "s--", color="tab:red", label="loss")
    ax2.set_ylabel("test loss", color="tab:red")
    ax.set_title(PLOT_FILES["accuracy_loss"])
    return _save(fig, path)


def plot_participation(rounds: Sequence[RoundRecord], clients: Sequence[str], path: Path) -> Path:
    """A clients × rounds grid: absent, submitted, included, excluded."""
    code = {"pending": 1, "included": 2, "excluded": 3}
    grid = [[0] * len(rounds) for _ in clients]
    row = {c.lower(): i for i, c in enumerate(clients)}
    for j, r in enumerate(rounds):
        for u in r.updates:
            if u.client.lower() in row:
                grid[row[u.client.lower()]][j] = code[u.status]
    colours = ["#dddddd", "#f2c94c", "#27ae60", "#eb5757"]
    fig, ax = plt.subplots(figsize=(6, 1.4 + 0.3 * max(len(clients), 1)))
    ax.imshow(grid, cmap=ListedColormap(colours), vmin=0, vmax=3, aspect="auto")
    ax.set_xticks(range(len(rounds)), [str(r.round_id) for r in rounds])
    ax.set_yticks(range(len(clients)), [short(c) for c in clients])
    ax.set_xlabel("round")
    names = ("absent", "submitted", "included", "excluded")
    handles = [Patch(color=c, label=n) for c, n in zip(colours, names, strict=True)]
    ax.legend(
        handles=handles,
        ncols=4,
        fontsize="small",
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        frameon=False,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_train_loss(rounds: Sequence[RoundRecord], clients: Sequence[str], path: Path) -> Path:
    """Each client's local train loss per round (from its update's train metrics)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for c in clients:
        pts = [
            (r.round_id, u.train["loss"])
            for r in rounds
            for u in r.updates
            if u.client.lower() == c.lower() and "loss" in u.train
        ]
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", label=short(c))
    ax.set_xlabel("round")
    ax.set_ylabel("train loss")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    ax.set_title(PLOT_FILES["train_loss"])
    return _save(fig, path)


def plot_bytes(rounds: Sequence[RoundRecord], path: Path) -> Path:
    """MB moved per round (base downloads + update uploads + new model)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([r.round_id for r in rounds], [(r.bytes_moved or 0) / 1e6 for r in rounds])
    ax.set_xlabel("round")
    ax.set_ylabel("MB moved")
    ax.set_title(PLOT_FILES["bytes_moved"])
    return _save(fig, path)


def plot_round_time(rounds: Sequence[RoundRecord], path: Path) -> Path:
    """Round wall time, split into the slowest client's training and everything else."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = [r.round_id for r in rounds]
    wall = [r.wall_s or 0.0 for r in rounds]
    train = [min(r.slowest_train_s or 0.0, w) for r, w in zip(rounds, wall, strict=True)]
    ax.bar(xs, train, label="slowest client training")
    ax.bar(xs, [w - t for w, t in zip(wall, train, strict=True)], bottom=train, label="overhead")
    ax.set_xlabel("round")
    ax.set_ylabel("seconds")
    ax.legend(fontsize="small")
    ax.set_title(PLOT_FILES["round_time"])
    return _save(fig, path)


def write_plots(rounds: Sequence[RoundRecord], clients: Sequence[str], out: Path) -> list[Path]:
    """All plots into `out`, named after PLOT_FILES."""
    out.mkdir(parents=True, exist_ok=True)
    return [
        plot_accuracy_loss(rounds, out / "accuracy_loss.png"),
        plot_participation(rounds, clients, out / "participation.png"),
        plot_train_loss(rounds, clients, out / "train_loss.png"),
        plot_bytes(rounds, out / "bytes_moved.png"),
        plot_round_time(rounds, out / "round_time.png"),
    ]
