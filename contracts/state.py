"""Typed views of FederatedRounds storage, as returned by the binding's getters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class RoundStatus(IntEnum):
    """Mirror of the Solidity enum: a round is Open, then Closed or Failed (NONE: no round yet)."""

    NONE = 0
    OPEN = 1
    CLOSED = 2
    FAILED = 3


@dataclass(frozen=True)
class RoundInfo:
    """One round as stored on chain (update CIDs are in UpdateSubmitted events, not here)."""

    round_id: int
    status: RoundStatus
    deadline: int
    min_updates: int
    max_updates: int
    num_updates: int
    base_digest: bytes
    model_digest: bytes
    base_cid: str
    config_cid: str
    model_cid: str
    manifest_cid: str

    @property
    def settled(self) -> bool:
        return self.status in (RoundStatus.CLOSED, RoundStatus.FAILED)

    @classmethod
    def from_tuple(cls, round_id: int, values: Sequence[Any]) -> RoundInfo:
        """Build from getRound's ABI tuple (Solidity struct field order)."""
        status, deadline, min_u, max_u, num_u, base_d, model_d, *cids = values
        base_cid, config_cid, model_cid, manifest_cid = cids
        return cls(
            round_id=round_id,
            status=RoundStatus(status),
            deadline=deadline,
            min_updates=min_u,
            max_updates=max_u,
            num_updates=num_u,
            base_digest=bytes(base_d),
            model_digest=bytes(model_d),
            base_cid=base_cid,
            config_cid=config_cid,
            model_cid=model_cid,
            manifest_cid=manifest_cid,
        )


@dataclass(frozen=True)
class UpdateInfo:
    """What the chain stores about one client's update in one round."""

    submitted: bool
    digest: bytes
    num_samples: int

    @classmethod
    def from_tuple(cls, values: Sequence[Any]) -> UpdateInfo:
        """Build from getUpdate's ABI tuple (digest, numSamples, submitted)."""
        digest, num_samples, submitted = values
        return cls(submitted=bool(submitted), digest=bytes(digest), num_samples=num_samples)
