"""Verify's results: one `Check` per fact re-derived, folded into a verdict per round.

A check is `ok` (re-derived and equal), `MISMATCH` (re-derived and different: the org's
record is wrong), `differs` (not bit-identical, within the tolerance, on a platform that
differs from the pinned one) or `unchecked` (could not be made, with the reason). Only a
MISMATCH makes `fedchain verify` exit non-zero.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

OK = "ok"
MISMATCH = "MISMATCH"
DIFFERS = "differs"
UNCHECKED = "unchecked"
STATUSES = (OK, MISMATCH, DIFFERS, UNCHECKED)


@dataclass(frozen=True)
class Check:
    """One re-derived fact of a round: what was checked, how it came out, and why."""

    name: str
    status: str
    detail: str = ""
    values: Mapping[str, float] = field(default_factory=dict)  # what verify re-derived

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Check.status must be one of {STATUSES}, got {self.status!r}")


def ok(name: str, detail: str = "") -> Check:
    """A fact re-derived and equal to the record."""
    return Check(name, OK, detail)


def mismatch(name: str, detail: str) -> Check:
    """A fact re-derived and different from the record (names what differs)."""
    return Check(name, MISMATCH, detail)


def unchecked(name: str, why: str) -> Check:
    """A fact that could not be re-derived, and why."""
    return Check(name, UNCHECKED, why)


@dataclass(frozen=True)
class RoundReport:
    """Every check of one settled round."""

    round_id: int
    state: str
    checks: tuple[Check, ...]
    elapsed_s: float = 0.0  # the verifier's wall time for the round, and of it fetching blobs
    fetch_s: float = 0.0

    @property
    def verdict(self) -> str:
        """MISMATCH if any check failed; "partial" if some could not be made; else "ok"."""
        statuses = {c.status for c in self.checks}
        if MISMATCH in statuses:
            return MISMATCH
        if UNCHECKED in statuses:
            return "partial"
        return "differs" if DIFFERS in statuses else OK

    def mismatches(self) -> list[Check]:
        """The failed checks, in order."""
        return [c for c in self.checks if c.status == MISMATCH]


def failed(reports: Iterable[RoundReport]) -> bool:
    """True when any round has a MISMATCH (exit non-zero)."""
    return any(r.verdict == MISMATCH for r in reports)


def _counts(report: RoundReport) -> str:
    counts = {s: sum(1 for c in report.checks if c.status == s) for s in STATUSES}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def table(reports: Sequence[RoundReport]) -> str:
    """The human report: a (round, state, checks, verdict) table, then what was not ok."""
    rows = [("round", "state", "checks", "verdict")]
    rows += [(str(r.round_id), r.state, _counts(r), r.verdict) for r in reports]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    for r in reports:
        for c in r.checks:
            if c.status != OK:
                lines.append(f"round {r.round_id}: {c.status} {c.name}: {c.detail}")
    return "\n".join(lines + ledger_table(reports))


LEDGER = "heldout "


def ledger_table(reports: Sequence[RoundReport]) -> list[str]:
    """The forgetting ledger as verify re-derived it: per round, each held-out set's headline
    metric from the re-evaluation ("-": not re-evaluated; "!" marks a MISMATCH with the
    manifest). No lines when no round has a held-out set."""
    names = sorted({c.name[len(LEDGER) :] for r in reports for c in r.checks if _ledger(c)})
    if not names:
        return []
    rows = [("round", *names)]
    for r in reports:
        by_name = {c.name[len(LEDGER) :]: c for c in r.checks if _ledger(c)}
        rows.append((str(r.round_id), *(_headline(by_name.get(n)) for n in names)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = ["", "forgetting ledger (headline metric re-evaluated by verify on each held-out set)"]
    return out + [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _ledger(check: Check) -> bool:
    return check.name.startswith(LEDGER)


def _headline(check: Check | None) -> str:
    if check is None or not check.values:
        return "-"
    name, value = next(iter(check.values.items()))
    return f"{name} {value:.4f}" + (" !" if check.status == MISMATCH else "")


def json_report(reports: Sequence[RoundReport]) -> str:
    """The machine report: every check of every round, and the overall verdict."""
    doc: dict[str, Any] = {
        "ok": not failed(reports),
        "rounds": [
            {
                "round_id": r.round_id,
                "state": r.state,
                "verdict": r.verdict,
                "elapsed_s": round(r.elapsed_s, 6),
                "fetch_s": round(r.fetch_s, 6),
                "checks": [_check_doc(c) for c in r.checks],
            }
            for r in reports
        ],
    }
    return json.dumps(doc, indent=2, sort_keys=True)


def _check_doc(check: Check) -> dict[str, Any]:
    doc = asdict(check)
    if not check.values:  # only the re-evaluations carry numbers
        del doc["values"]
    return doc
