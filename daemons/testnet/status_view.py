"""What a running federation waits for, and each client's state, for the live view (pure).

The chain says which updates arrived; the daemons' /healthz say what each one is doing now
(`activity`: the org publishing the initial model, validating, aggregating; a client
fetching, compiling — its first training in the process traces and compiles the jitted
steps —, training, submitting). No second protocol: only what the daemons already serve.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from daemons.testnet.records import RoundRecord

Health = Mapping[str, Mapping[str, Any] | None]  # daemon name -> /healthz doc (None: no answer)
CLIENT_BUSY = ("fetching", "compiling", "training", "submitting")
ORG_BUSY = ("validating", "aggregating", "opening a round", "publishing the initial model")


def _activity(health: Health, name: str) -> str:
    doc = health.get(name)
    return str(doc.get("activity", "")) if doc else ""


def waiting_for(rounds: Sequence[RoundRecord], planned: int, health: Health) -> str:
    """One phrase: what the federation waits for right now."""
    org = _activity(health, "org")
    if not rounds:
        return f"the org: {org}" if org else "the org to publish the initial model and open round 1"
    r = rounds[-1]
    if r.status != "open":
        if sum(x.status != "open" for x in rounds) >= planned:
            return "nothing: every planned round is settled"
        return f"the org: {org}" if org in ORG_BUSY else f"the org to open round {r.round_id + 1}"
    if org in ("validating", "aggregating"):
        return f"the org: {org} round {r.round_id}"
    if len(r.updates) < r.max_updates:
        doing = [_activity(health, n).split(" round")[0] for n in health if n != "org"]
        counts = {w: doing.count(w) for w in CLIENT_BUSY if w in doing}
        busy = ", ".join(f"{n} {w}" for w, n in counts.items())
        tail = f"; {busy}" if busy else ""
        return f"client updates for round {r.round_id} ({len(r.updates)}/{r.max_updates}{tail})"
    return f"the org to validate and aggregate round {r.round_id}"


def deadline_text(r: RoundRecord, now_s: float) -> str:
    """`deadline in 42 s` / `deadline passed 3 s ago` for an open round ("" otherwise)."""
    if r.status != "open" or not r.deadline:
        return ""
    left = r.deadline - now_s
    return f"deadline in {left:.0f} s" if left >= 0 else f"deadline passed {-left:.0f} s ago"


def client_rows(
    rounds: Sequence[RoundRecord],
    clients: Sequence[str],
    daemon_names: Sequence[str],
    names: Mapping[str, str],
    health: Health,
) -> list[tuple[str, str, str]]:
    """(client, state in the latest round, last train loss) per client.

    State: the chain's (submitted, included, excluded) once its update is there, else what its
    daemon says it does, else `no answer` when its /healthz does not respond.
    """
    last = rounds[-1] if rounds else None
    rows = []
    for address, daemon in zip(clients, daemon_names, strict=True):
        label = names.get(address.lower()) or daemon
        upd = (
            next((u for u in last.updates if u.client.lower() == address.lower()), None)
            if last
            else None
        )
        if upd is not None:
            state = {"pending": "submitted"}.get(upd.status, upd.status)
        else:
            doc = health.get(daemon)
            state = (_activity(health, daemon) or "running") if doc else "no answer"
        loss = _last_train_loss(rounds, address)
        rows.append((label, state, "…" if loss is None else f"{loss:.4f}"))
    return rows


def _last_train_loss(rounds: Sequence[RoundRecord], client: str) -> float | None:
    for r in reversed(rounds):
        for u in r.updates:
            if u.client.lower() == client.lower() and "loss" in u.train:
                return float(u.train["loss"])
    return None
