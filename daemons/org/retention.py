"""Which pinned blobs a participant may let go: keep the last N rounds, unpin the rest.

Pure: the daemon records what it pinned per round and calls `cids_to_unpin`; it then unpins
the result (and may run `repo/gc`). A CID still used by a kept round is never returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RoundBlobs:
    """The blobs of one round: its model, the updates it was built from, and extras."""

    round_id: int
    model_cid: str | None
    update_cids: tuple[str, ...] = ()
    extra_cids: tuple[str, ...] = ()  # manifest, round config, ...

    def cids(self) -> set[str]:
        found = {*self.update_cids, *self.extra_cids}
        if self.model_cid:
            found.add(self.model_cid)
        return found


def cids_to_unpin(history: Iterable[RoundBlobs], keep_rounds: int) -> list[str]:
    """CIDs of every round older than the newest `keep_rounds`, minus those still kept (sorted)."""
    if keep_rounds < 1:
        raise ValueError(
            f"keep_rounds must be >= 1 (the current model is always kept), got {keep_rounds}"
        )
    by_round: dict[int, set[str]] = {}
    for blobs in history:
        by_round.setdefault(blobs.round_id, set()).update(blobs.cids())
    newest_first = sorted(by_round, reverse=True)
    kept = set().union(*(by_round[r] for r in newest_first[:keep_rounds]))
    dropped = set().union(*(by_round[r] for r in newest_first[keep_rounds:]))
    return sorted(dropped - kept)
