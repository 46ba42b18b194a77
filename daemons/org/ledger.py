"""The org's durable record of submissions and verdicts, in the StateStore's key/value table.

One JSON document per round, rewritten whole, so each change is one SQLite transaction and
replaying an event (after `kill -9`) changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

ACCEPTED = "accepted"


class KeyValue(Protocol):
    """The part of `daemons.chain.store.StateStore` the ledger needs."""

    def get(self, key: str, default: str | None = None) -> str | None: ...

    def put(self, key: str, value: str) -> None: ...


@dataclass(frozen=True)
class Submission:
    """An `UpdateSubmitted` event as recorded, and the org's verdict once judged."""

    client: str
    cid: str
    digest: str
    num_samples: int
    verdict: str | None = None
    detail: str = ""
    train: dict[str, float] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        """Judged and kept."""
        return self.verdict == ACCEPTED


def sub_digest(sub: Submission) -> bytes:
    """The submission's digest as raw bytes (the event carries it as "0x" hex)."""
    return bytes.fromhex(sub.digest.removeprefix("0x"))


class Ledger:
    """Submissions per round, keyed by client (a client submits once per round)."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    def submissions(self, round_id: int) -> dict[str, Submission]:
        """All recorded submissions of a round, by client."""
        raw = self.kv.get(f"org:subs:{round_id}")
        doc: dict[str, Any] = json.loads(raw) if raw else {}
        return {c: Submission(**s) for c, s in doc.items()}

    def record(self, round_id: int, sub: Submission) -> bool:
        """Record a submission unless already there; True if it was new."""
        subs = self.submissions(round_id)
        if sub.client in subs:
            return False
        subs[sub.client] = sub
        self._save(round_id, subs)
        return True

    def judge(self, round_id: int, client: str, verdict: str, detail: str = "", **kw: Any) -> None:
        """Store the verdict (ACCEPTED or a reason code) on a recorded submission."""
        subs = self.submissions(round_id)
        subs[client] = replace(subs[client], verdict=verdict, detail=detail, **kw)
        self._save(round_id, subs)

    def _save(self, round_id: int, subs: dict[str, Submission]) -> None:
        doc = {c: asdict(s) for c, s in sorted(subs.items())}
        self.kv.put(f"org:subs:{round_id}", json.dumps(doc, sort_keys=True))

    def get_json(self, key: str) -> Any:
        """A JSON fact stored under `org:<key>`, or None."""
        raw = self.kv.get(f"org:{key}")
        return None if raw is None else json.loads(raw)

    def put_json(self, key: str, value: Any) -> None:
        """Store a JSON fact under `org:<key>`."""
        self.kv.put(f"org:{key}", json.dumps(value, sort_keys=True))
