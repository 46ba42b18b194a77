"""The org's per-round operator metrics: round duration in chain time, evaluation metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from contracts.state import RoundInfo

if TYPE_CHECKING:
    from daemons.org.rounds import OrgRounds


async def observe_settled(
    org: OrgRounds, info: RoundInfo, outcome: str, metrics: Mapping[str, float] | None = None
) -> None:
    """Round duration (opened = deadline - round_duration_s, by block time) and its metrics."""
    now_s = await org.chain.now_s()
    opened_s = info.deadline - org.fed.round_duration_s
    org.metrics.round_seconds.labels(outcome=outcome).observe(max(0, now_s - opened_s))
    if metrics:
        org.metrics.observe_eval(info.round_id, metrics)
