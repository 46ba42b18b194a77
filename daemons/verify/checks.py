"""Verify's results: one `Check` per fact re-derived, folded into a verdict per round.

A check is `ok` (re-derived and equal), `MISMATCH` (re-derived and different: the org's
record is wrong), `differs` (not bit-identical, within the tolerance, on a platform that
differs from the pinned one) or `unchecked` (could not be made, with the reason). Only a
MISMATCH makes `fedchain verify` exit non-zero.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
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
    return "\n".join(lines)


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
                "checks": [asdict(c) for c in r.checks],
            }
            for r in reports
        ],
    }
    return json.dumps(doc, indent=2, sort_keys=True)
