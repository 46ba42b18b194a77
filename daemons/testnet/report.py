"""report.html, the PNG plots and the summary table of a federation, from its round records.

The testnet writes it at the end of a run; `fedchain report --config CFG` rebuilds it for any
federation from chain events, receipts and manifests. Metric names come from the manifests.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.table import Table

from daemons.testnet.facts import lower_is_better
from daemons.testnet.plot_names import PLOT_FILES, headline_name, label, metric_series
from daemons.testnet.plot_pool import PlotWorkers
from daemons.testnet.plots import write_plots
from daemons.testnet.records import RoundRecord, first_baseline


def columns(headline: str) -> tuple[str, ...]:
    """The per-round table's columns; the headline metric's own name is the fifth."""
    return (
        "round",
        "status",
        "updates",
        "excluded",
        headline or "accuracy",
        "loss",
        "gas",
        "wall s",
        "train s",
        "overhead s",
        "MB moved",
        "ε",
        "model CID",
    )


SHORT = {"updates": "upd", "excluded": "excl", "overhead s": "ovh s", "MB moved": "MB"}


@dataclass(frozen=True)
class Summary:
    """Headline numbers of a run (the `*_accuracy` pair stays for older summary readers)."""

    rounds_closed: int
    rounds_failed: int
    final_accuracy: float | None
    best_accuracy: float | None
    total_wall_s: float | None
    total_mb: float
    headline: str = "accuracy"
    final: float | None = None
    best: float | None = None
    baseline: float | None = None
    total_gas: int | None = None
    privacy: str = ""  # "(ε, δ) = ... after round N" when the federation runs DP


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def overhead_s(r: RoundRecord) -> float | None:
    """Round wall time minus the slowest client's training time."""
    if r.wall_s is None or r.slowest_train_s is None:
        return None
    return r.wall_s - r.slowest_train_s


def table_rows(rounds: Sequence[RoundRecord]) -> list[tuple[str, ...]]:
    """One row of strings per round, in `columns()` order; round 0 when a baseline exists."""
    headline = headline_name(rounds) or "accuracy"
    rows: list[tuple[str, ...]] = []
    base = first_baseline(rounds).get("metrics", {})
    if base:
        cells = ("0", "initial", "-", "-", _fmt(base.get(headline), ".4f"))
        rows.append((*cells, _fmt(base.get("loss"), ".4f"), *("-",) * 7))
    for r in rounds:
        n_excl = sum(u.status == "excluded" for u in r.updates)
        mb = None if r.bytes_moved is None else r.bytes_moved / 1e6
        rows.append(
            (
                str(r.round_id),
                r.status,
                f"{len(r.updates)}/{r.max_updates}",
                str(n_excl),
                _fmt(r.metrics.get(headline), ".4f"),
                _fmt(r.loss, ".4f"),
                "n/a" if r.gas is None else str(r.gas.total),
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
    """Closed/failed counts, final and best headline metric, summed wall time, traffic, gas."""
    headline = headline_name(rounds) or "accuracy"
    vals = [v for r, v in metric_series(rounds, headline) if r > 0]
    pick = min if lower_is_better(headline) else max
    accs = [r.accuracy for r in rounds if r.accuracy is not None]
    walls = [r.wall_s for r in rounds if r.wall_s is not None]
    gas = [r.gas.total for r in rounds if r.gas is not None]
    base = first_baseline(rounds).get("metrics", {}).get(headline)
    return Summary(
        rounds_closed=sum(r.status == "closed" for r in rounds),
        rounds_failed=sum(r.status == "failed" for r in rounds),
        final_accuracy=accs[-1] if accs else None,
        best_accuracy=max(accs) if accs else None,
        total_wall_s=sum(walls) if walls else None,
        total_mb=sum(r.bytes_moved or 0 for r in rounds) / 1e6,
        headline=headline,
        final=vals[-1] if vals else None,
        best=pick(vals) if vals else None,
        baseline=None if base is None else float(base),
        total_gas=sum(gas) if gas else None,
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
    gas = "" if s.total_gas is None else f", {s.total_gas} gas"
    return [
        f"rounds closed {s.rounds_closed}, failed {s.rounds_failed}",
        *([s.privacy] if s.privacy else []),
        f"final test {s.headline} {_fmt(s.final, '.4f')} (best {_fmt(s.best, '.4f')}, "
        f"initial model {_fmt(s.baseline, '.4f')})",
        f"round wall time total {_fmt(s.total_wall_s, '.1f')} s, {s.total_mb:.1f} MB moved{gas}",
    ]


def rich_table(rounds: Sequence[RoundRecord], title: str = "fedchain testnet") -> Table:
    """The per-round table for the terminal (CIDs are in report.html)."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in columns(headline_name(rounds))[:-1]:
        name = SHORT.get(col, col)
        table.add_column(name, justify="left" if col == "status" else "right", no_wrap=True)
    for row in table_rows(rounds):
        table.add_row(*row[:-1])
    return table


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = html.escape
    th = "".join(f"<th>{esc(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1300px}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;font-size:90%}"
    "figure{display:inline-block;margin:0.5em;vertical-align:top}img{max-width:600px}"
)


def render_html(
    rounds: Sequence[RoundRecord],
    plots: Sequence[Path],
    facts: Mapping[str, str],
    names: Mapping[str, str] | None = None,
    title: str = "fedchain testnet report",
) -> str:
    """A self-contained page (plots referenced by relative path) with every table."""
    esc = html.escape
    names = {k.lower(): v for k, v in (names or {}).items()}
    fact_rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts.items())
    summary = "".join(f"<li>{esc(line)}</li>" for line in summary_lines(summarize(rounds)))
    figs = "".join(
        f'<figure><img src="{esc(p.parent.name)}/{esc(p.name)}" alt="{esc(p.stem)}">'
        f"<figcaption>{esc(PLOT_FILES.get(p.stem, p.stem))}</figcaption></figure>"
        for p in plots
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1><ul>{summary}</ul>"
        f"<h2>Federation</h2><table>{fact_rows}</table>"
        f"<h2>Rounds</h2>{_table(columns(headline_name(rounds)), table_rows(rounds))}"
        f"<h2>Plots</h2>{figs}"
        f"{_per_class_html(rounds)}"
        f"<h2>Updates</h2>{_updates_html(rounds, names)}{heldout_html(rounds)}</body></html>\n"
    )


def _per_class_html(rounds: Sequence[RoundRecord]) -> str:
    """The last round's per-class accuracy beside the initial model's (classification only)."""
    last = next((r for r in reversed(rounds) if r.per_class.get("accuracy")), None)
    if last is None:
        return ""
    base = first_baseline(rounds).get("per_class", {}).get("accuracy") or []
    acc, counts = last.per_class["accuracy"], last.per_class.get("num_samples", [])
    rows = [
        (
            str(i),
            _fmt(base[i] if i < len(base) else None, ".4f"),
            _fmt(a, ".4f"),
            _count(counts, i),
        )
        for i, a in enumerate(acc)
    ]
    head = ("class", "initial model", f"round {last.round_id}", "test samples")
    return f"<h2>Per-class accuracy</h2>{_table(head, rows)}"


def _count(counts: Sequence[float | None], i: int) -> str:
    value = counts[i] if i < len(counts) else None
    return "n/a" if value is None else str(int(value))


def _updates_html(rounds: Sequence[RoundRecord], names: Mapping[str, str]) -> str:
    cols: tuple[str, ...] = (
        "round",
        "client",
        "address",
        "status",
        "reason",
        "samples",
        "weight",
        "train loss",
    )
    cols += ("CID",)
    rows = [
        (
            str(r.round_id),
            label(u.client, names),
            u.client,
            u.status,
            u.reason,
            str(u.num_samples),
            _fmt(u.weight, ".4f"),
            _fmt(u.train.get("loss"), ".4f"),
            u.cid,
        )
        for r in rounds
        for u in r.updates
    ]
    return _table(cols, rows)


def heldout_rows(rounds: Sequence[RoundRecord]) -> tuple[list[str], list[tuple[str, ...]]]:
    """The forgetting ledger: set names, and per round the headline metric on each ("-": not
    recorded). The sets are the task's own (`Task.heldout_sets`) and `[federation]
    heldout_data`'s; the headline is the task's (the manifest's `headline_metric`)."""
    names = sorted({name for r in rounds for name in r.heldout})
    rows = [
        (str(r.round_id), *(_fmt(r.heldout.get(n, {}).get(_headline(r)), ".4f") for n in names))
        for r in rounds
        if r.heldout
    ]
    return names, rows


def _headline(r: RoundRecord) -> str:
    return r.headline or "accuracy"  # a manifest from before headline_metric: accuracy


def heldout_html(rounds: Sequence[RoundRecord]) -> str:
    """The forgetting-ledger table (headline metric per round on each held-out set), or nothing."""
    names, rows = heldout_rows(rounds)
    if not names:
        return ""
    esc = html.escape
    metric = next((_headline(r) for r in rounds if r.heldout), "accuracy")
    head = "".join(f"<th>{esc(c)}</th>" for c in ("round", *names))
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    title = f"<h2>Forgetting ledger ({esc(metric)} on held-out sets)</h2>"
    return f"{title}<table><tr>{head}</tr>{body}</table>"


def write_report(
    rounds: Sequence[RoundRecord],
    clients: Sequence[str],
    run_root: Path,
    facts: Mapping[str, str],
    names: Mapping[str, str] | None = None,
    title: str = "fedchain testnet report",
    workers: PlotWorkers | None = None,
) -> Path:
    """Write plots/ and report.html under `run_root`; returns the report path.

    With `workers` (plot_pool.py) they draw the plots; without, this process does.
    """
    plots = write_plots(rounds, clients, run_root / "plots", names, workers)
    path = run_root / "report.html"
    path.write_text(render_html(rounds, plots, facts, names, title))
    return path
