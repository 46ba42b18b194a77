"""The org's durable record of submissions and verdicts, in the StateStore's key/value table.

One JSON row per submission (`org:sub:<round>:<client>`), so each change is one SQLite
transaction of one row and replaying an event (after `kill -9`) changes nothing. Until
2026-12-08 a round was one document (`org:subs:<round>`) rewritten whole on every event and
verdict: 2N rewrites of an N-entry document per round (0.56 s a round at 100 clients, 38 s at
1,000). Such documents in an existing state file are still read; new facts go to rows.
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

    def items(self, prefix: str) -> list[tuple[str, str]]: ...


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
        """All recorded submissions of a round, by client (in client order)."""
        subs = self._legacy(round_id)
        for _, raw in self.kv.items(f"org:sub:{round_id}:"):
            sub = Submission(**json.loads(raw))
            subs[sub.client] = sub
        return dict(sorted(subs.items()))

    def record(self, round_id: int, sub: Submission) -> bool:
        """Record a submission unless already there; True if it was new."""
        if self._get(round_id, sub.client) is not None:
            return False
        self._save(round_id, sub)
        return True

    def judge(self, round_id: int, client: str, verdict: str, detail: str = "", **kw: Any) -> None:
        """Store the verdict (ACCEPTED or a reason code) on a recorded submission."""
        sub = self._get(round_id, client)
        if sub is None:
            raise KeyError(f"round {round_id}: no submission of {client} recorded")
        self._save(round_id, replace(sub, verdict=verdict, detail=detail, **kw))

    def _get(self, round_id: int, client: str) -> Submission | None:
        raw = self.kv.get(_row_key(round_id, client))
        if raw is not None:
            return Submission(**json.loads(raw))
        return self._legacy(round_id).get(client)

    def _save(self, round_id: int, sub: Submission) -> None:
        self.kv.put(_row_key(round_id, sub.client), json.dumps(asdict(sub), sort_keys=True))

    def _legacy(self, round_id: int) -> dict[str, Submission]:
        """A round's submissions as a state file from before per-submission rows holds them."""
        raw = self.kv.get(f"org:subs:{round_id}")
        doc: dict[str, Any] = json.loads(raw) if raw else {}
        return {c: Submission(**s) for c, s in doc.items()}

    def get_json(self, key: str) -> Any:
        """A JSON fact stored under `org:<key>`, or None."""
        raw = self.kv.get(f"org:{key}")
        return None if raw is None else json.loads(raw)

    def put_json(self, key: str, value: Any) -> None:
        """Store a JSON fact under `org:<key>`."""
        self.kv.put(f"org:{key}", json.dumps(value, sort_keys=True))


def _row_key(round_id: int, client: str) -> str:
    return f"org:sub:{round_id}:{client}"
