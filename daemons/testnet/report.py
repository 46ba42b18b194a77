"""report.html, the PNG plots and the summary table of a run, from its round records."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.table import Table

from daemons.testnet.plots import PLOT_FILES, write_plots
from daemons.testnet.records import RoundRecord

COLUMNS = (
    "round",
    "status",
    "updates",
    "excluded",
    "accuracy",
    "loss",
    "wall s",
    "train s",
    "overhead s",
    "MB moved",
    "ε",
    "model CID",
)

SHORT_COLUMNS = (
    "round",
    "status",
    "upd",
    "excl",
    "acc",
    "loss",
    "wall s",
    "train s",
    "ovh s",
    "MB",
    "ε",
)


@dataclass(frozen=True)
class Summary:
    """Headline numbers of a run."""

    rounds_closed: int
    rounds_failed: int
    final_accuracy: float | None
    best_accuracy: float | None
    total_wall_s: float | None
    total_mb: float
    privacy: str = ""  # "(ε, δ) = ... after round N" when the federation runs DP


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def overhead_s(r: RoundRecord) -> float | None:
    """Round wall time minus the slowest client's training time."""
    if r.wall_s is None or r.slowest_train_s is None:
        return None
    return r.wall_s - r.slowest_train_s


def table_rows(rounds: Sequence[RoundRecord]) -> list[tuple[str, ...]]:
    """One row of strings per round, in COLUMNS order."""
    rows: list[tuple[str, ...]] = []
    for r in rounds:
        n_excl = sum(u.status == "excluded" for u in r.updates)
        mb = None if r.bytes_moved is None else r.bytes_moved / 1e6
        rows.append(
            (
                str(r.round_id),
                r.status,
                f"{len(r.updates)}/{r.max_updates}",
                str(n_excl),
                _fmt(r.accuracy, ".4f"),
                _fmt(r.loss, ".4f"),
                _fmt(r.wall_s, ".2f"),
                _fmt(r.slowest_train_s, ".2f"),
                _fmt(overhead_s(r), ".2f"),
                _fmt(mb, ".2f"),
                "-" if r.epsilon is None else format(r.epsilon, ".3g"),  # "-": no DP
                r.model_cid or "-",
            )
        )
    return rows


def summarize(rounds: Sequence[RoundRecord]) -> Summary:
    """Closed/failed counts, final and best accuracy, summed wall time and traffic."""
    accs = [r.accuracy for r in rounds if r.accuracy is not None]
    walls = [r.wall_s for r in rounds if r.wall_s is not None]
    return Summary(
        rounds_closed=sum(r.status == "closed" for r in rounds),
        rounds_failed=sum(r.status == "failed" for r in rounds),
        final_accuracy=accs[-1] if accs else None,
        best_accuracy=max(accs) if accs else None,
        total_wall_s=sum(walls) if walls else None,
        total_mb=sum(r.bytes_moved or 0 for r in rounds) / 1e6,
        privacy=_privacy_line(rounds),
    )


def _privacy_line(rounds: Sequence[RoundRecord]) -> str:
    """The last DP round's (ε, δ) and mechanism, or "" without DP."""
    dp = [r for r in rounds if r.epsilon is not None]
    if not dp:
        return ""
    last = dp[-1]
    mode, delta = last.privacy.get("mode", "?"), last.privacy.get("delta", "?")
    return (
        f"privacy ({mode} DP): (ε, δ) = ({last.epsilon:.3g}, {delta}) after round {last.round_id}"
    )


def summary_lines(s: Summary) -> list[str]:
    """The summary as short human lines."""
    return [
        f"rounds closed {s.rounds_closed}, failed {s.rounds_failed}",
        *([s.privacy] if s.privacy else []),
        f"final test accuracy {_fmt(s.final_accuracy, '.4f')} "
        f"(best {_fmt(s.best_accuracy, '.4f')})",
        f"round wall time total {_fmt(s.total_wall_s, '.1f')} s, {s.total_mb:.1f} MB moved",
    ]


def rich_table(rounds: Sequence[RoundRecord], title: str = "fedchain testnet") -> Table:
    """The per-round table for the terminal."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in SHORT_COLUMNS:  # CIDs are in report.html; the terminal keeps the numbers
        table.add_column(col, justify="left" if col == "status" else "right", no_wrap=True)
    for row in table_rows(rounds):
        table.add_row(*row[:-1])
    return table


def render_html(
    rounds: Sequence[RoundRecord], plots: Sequence[Path], facts: Mapping[str, str]
) -> str:
    """A self-contained page (plots referenced by relative path) with every table."""
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in table_rows(rounds)
    )
    fact_rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts.items())
    summary = "".join(f"<li>{esc(line)}</li>" for line in summary_lines(summarize(rounds)))
    figs = "".join(
        f'<figure><img src="{esc(p.parent.name)}/{esc(p.name)}" alt="{esc(p.stem)}">'
        f"<figcaption>{esc(PLOT_FILES.get(p.stem, p.stem))}</figcaption></figure>"
        for p in plots
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>fedchain testnet report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;font-size:90%}"
        "figure{display:inline-block;margin:0.5em}img{max-width:600px}</style></head><body>"
        f"<h1>fedchain testnet report</h1><ul>{summary}</ul>"
        f"<h2>Run</h2><table>{fact_rows}</table>"
        f"<h2>Rounds</h2><table><tr>{head}</tr>{body}</table>"
        f"<h2>Plots</h2>{figs}"
        f"<h2>Updates</h2>{_updates_html(rounds)}{heldout_html(rounds)}</body></html>\n"
    )


def heldout_rows(rounds: Sequence[RoundRecord]) -> tuple[list[str], list[tuple[str, ...]]]:
    """The forgetting ledger: set names, and per round the accuracy on each ("-": not recorded)."""
    names = sorted({name for r in rounds for name in r.heldout})
    rows = [
        (str(r.round_id), *(_fmt(r.heldout.get(n, {}).get("accuracy"), ".4f") for n in names))
        for r in rounds
        if r.heldout
    ]
    return names, rows


def heldout_html(rounds: Sequence[RoundRecord]) -> str:
    """The forgetting-ledger table (accuracy per round on each held-out set), or nothing."""
    names, rows = heldout_rows(rounds)
    if not names:
        return ""
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in ("round", *names))
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    title = "<h2>Forgetting ledger (accuracy on held-out sets)</h2>"
    return f"{title}<table><tr>{head}</tr>{body}</table>"


def _updates_html(rounds: Sequence[RoundRecord]) -> str:
    esc = html.escape
    cols = ("round", "client", "status", "reason", "samples", "weight", "train loss", "CID")
    rows = []
    for r in rounds:
        for u in r.updates:
            cells = (
                str(r.round_id),
                u.client,
                u.status,
                u.reason,
                str(u.num_samples),
                _fmt(u.weight, ".4f"),
                _fmt(u.train.get("loss"), ".4f"),
                u.cid,
            )
            rows.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{c}</th>" for c in cols)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def write_report(
    rounds: Sequence[RoundRecord],
    clients: Sequence[str],
    run_root: Path,
    facts: Mapping[str, str],
) -> Path:
    """Write plots/ and report.html under `run_root`; returns the report path."""
    plots = write_plots(rounds, clients, run_root / "plots")
    path = run_root / "report.html"
    path.write_text(render_html(rounds, plots, facts))
    return path
