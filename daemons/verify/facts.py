"""What verify gathers about one settled round: its events and the bytes they name.

Plain data, so the replay (`daemons.verify.replay`) is a pure function of it and tests can
build a round by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from contracts.events import RoundClosed, RoundFailed, RoundOpened, UpdateSubmitted
from models.data import Dataset

# (envelope, its claim (round, client, base CID), the round's required recipients) -> the
# plain update: the privacy part's `open_update` with the auditor's key; raises with a
# `.reason` for an envelope it refuses
OpenUpdate = Callable[[bytes, Any, Sequence[Any]], bytes]


@dataclass(frozen=True)
class Blob:
    """Bytes fetched from IPFS (digest checked where the chain has one), or why not."""

    data: bytes | None = None
    reason: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Fetched (and digest-checked)."""
        return self.data is not None


@dataclass(frozen=True)
class RoundFacts:
    """One round's events, who sent its open/close transactions, and the blobs they name."""

    round_id: int
    opened: RoundOpened
    opener: str
    updates: tuple[UpdateSubmitted, ...]
    closed: RoundClosed | None = None
    closer: str = ""
    failed: RoundFailed | None = None
    config: Blob = field(default_factory=Blob)
    base: Blob = field(default_factory=Blob)
    update_blobs: Mapping[str, Blob] = field(default_factory=dict)
    manifest: Blob = field(default_factory=Blob)
    model: Blob = field(default_factory=Blob)
    # models sealed to the members, opened with an auditor key (daemons/verify/sealed.py):
    # the plaintexts' sha256, authenticated inside the envelopes the chain's digests cover
    base_sha256: bytes | None = None
    model_sha256: bytes | None = None

    @property
    def state(self) -> str:
        """closed, failed or open."""
        return "closed" if self.closed else "failed" if self.failed else "open"


@dataclass(frozen=True)
class ReplayInputs:
    """What the verifier brings: held-out data, tolerance, keys; all optional."""

    eval_data: Dataset | None = None
    heldout: Mapping[str, Dataset] = field(default_factory=dict)
    tolerance: float = 0.0
    metric_tolerance: float = 1e-3
    open_update: OpenUpdate | None = None
    dp_secret: bytes | None = None  # the org's central-DP noise secret, handed to an auditor
    contract: str = ""  # the contract address (the noise key's input)
