"""When a sent transaction with no receipt is dead: its nonce taken, held for a grace period.

A node can report an account's new nonce before it serves the receipt of the transaction
that used it (it indexes receipts after it updates state; anvil does so under load). Seeing
"nonce past, no receipt" once is therefore no proof: a transaction is dead only while that
stays true for `grace_blocks` new blocks, checked for every stored hash of the intent.
A chain that makes no blocks (automine with nothing to mine) ends the grace after
`grace_s` seconds without a single block.
"""

from __future__ import annotations

from dataclasses import dataclass

DEAD_GRACE_BLOCKS = 3
DEAD_GRACE_S = 30.0


@dataclass(frozen=True)
class Suspicion:
    """When an intent was first seen with its nonce used and no receipt: head block, time."""

    head: int
    since_s: float


class DeadTxGrace:
    """Per-intent grace periods: `expired` is True once the suspicion held long enough."""

    def __init__(self, grace_blocks: int = DEAD_GRACE_BLOCKS, grace_s: float = DEAD_GRACE_S):
        if grace_blocks < 1 or grace_s <= 0:
            raise ValueError(
                f"dead-transaction grace needs grace_blocks >= 1 and grace_s > 0, "
                f"got {grace_blocks}, {grace_s}"
            )
        self.grace_blocks, self.grace_s = grace_blocks, grace_s
        self._suspects: dict[str, Suspicion] = {}

    def clear(self, key: str) -> None:
        """The intent is fine (nonce not yet used, or a receipt was found)."""
        self._suspects.pop(key, None)

    def first_seen(self, key: str) -> Suspicion | None:
        """The open suspicion of `key`, if any."""
        return self._suspects.get(key)

    def expired(self, key: str, head: int, now_s: float) -> bool:
        """Record the suspicion (first call) and say whether its grace period is over."""
        first = self._suspects.setdefault(key, Suspicion(head, now_s))
        if head >= first.head + self.grace_blocks:
            return True
        return head == first.head and now_s >= first.since_s + self.grace_s
