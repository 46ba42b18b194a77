"""The org's view of a round: the chain's state of it joined with the ledger's verdicts.

What `decide` (`daemons.org.decide`) takes; read afresh on every step.
"""

from __future__ import annotations

import asyncio

from contracts.state import RoundInfo, RoundStatus
from daemons.chain.port import Chain
from daemons.org.decide import RoundView
from daemons.org.ledger import Ledger
from daemons.org.privacy import OrgPrivacy


async def read_view(
    chain: Chain, ledger: Ledger, round_id: int, rounds: int, privacy: OrgPrivacy | None
) -> tuple[RoundView, RoundInfo | None]:
    """Round `round_id` on chain (None before the first), joined with the ledger's submissions.

    `rounds`: how many the federation runs; `privacy`: for the ε budget (None: no budget).
    """
    info, now_s = await asyncio.gather(  # independent reads: one round trip
        chain.get_round(round_id) if round_id else _no_round(), chain.now_s()
    )
    subs = ledger.submissions(round_id)
    view = RoundView(
        round_id=round_id,
        status=info.status if info else RoundStatus.NONE,
        deadline=info.deadline if info else 0,
        min_updates=info.min_updates if info else 0,
        max_updates=info.max_updates if info else 0,
        num_updates=info.num_updates if info else 0,
        now_s=now_s,
        recorded=len(subs),
        pending=sum(1 for s in subs.values() if s.verdict is None),
        rounds=rounds,
        **budget(privacy, ledger, round_id),
    )
    return view, info


def budget(privacy: OrgPrivacy | None, ledger: Ledger, round_id: int) -> dict[str, float]:
    """ε after one more round and the budget, for `decide` (nothing without a budget)."""
    if privacy is None or privacy.cfg.epsilon_budget <= 0:
        return {}
    epsilon = privacy.epsilon(ledger, round_id, next_round=True)
    return {"epsilon_next": epsilon, "epsilon_budget": privacy.cfg.epsilon_budget}


async def _no_round() -> None:
    return None
