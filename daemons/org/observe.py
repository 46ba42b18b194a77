"""The org's per-round operator metrics: round duration in chain time, evaluation metrics."""

from __future__ import annotations

from collections.abc import Mapping

from contracts.state import RoundInfo
from daemons.chain.port import Chain
from daemons.runtime.metrics import Metrics


async def observe_settled(
    chain: Chain,
    metrics: Metrics,
    round_duration_s: int,
    info: RoundInfo,
    outcome: str,
    values: Mapping[str, float] | None = None,
) -> None:
    """Round duration (opened = deadline - round_duration_s, by block time) and its metrics."""
    now_s = await chain.now_s()
    opened_s = info.deadline - round_duration_s
    metrics.round_seconds.labels(outcome=outcome).observe(max(0, now_s - opened_s))
    if values:
        metrics.observe_eval(info.round_id, values)
