"""A pure-Python reference model of FederatedRounds: predicts which error (if any) a call hits.

The checks run in the contract's order, so the predicted error name must equal the one the
chain reports. `now` is the timestamp the transaction will see.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_DURATION = 30 * 86400


@dataclass
class ModelRound:
    deadline: int
    min_updates: int
    max_updates: int
    status: str = "open"  # open | closed | failed
    submitted: set[int] = field(default_factory=set)


@dataclass
class Model:
    """Accounts are indices into the dev accounts; 0 is the first org."""

    org: int = 0
    pending_org: int | None = None
    paused: bool = False
    clients: set[int] = field(default_factory=lambda: {1, 2, 3})
    rounds: list[ModelRound] = field(default_factory=list)

    @property
    def current_round_id(self) -> int:
        return len(self.rounds)

    def round(self, round_id: int) -> ModelRound | None:
        return self.rounds[round_id - 1] if 1 <= round_id <= len(self.rounds) else None

    def _guard(self, caller: int, org_only: bool = True, pausable: bool = True) -> str | None:
        if org_only and caller != self.org:
            return "NotOrg"
        if pausable and self.paused:
            return "ContractPaused"
        return None

    def add_client(self, caller: int, who: int) -> str | None:
        err = self._guard(caller) or ("AlreadyClient" if who in self.clients else None)
        if err is None:
            self.clients.add(who)
        return err

    def remove_client(self, caller: int, who: int) -> str | None:
        err = self._guard(caller) or ("NotClient" if who not in self.clients else None)
        if err is None:
            self.clients.discard(who)
        return err

    def open_round(self, caller: int, now: int, deadline: int, lo: int, hi: int) -> str | None:
        err = self._guard(caller)
        if err is None and self.rounds and self.rounds[-1].status == "open":
            err = "RoundNotSettled"
        if err is None and not now < deadline <= now + MAX_DURATION:
            err = "BadDeadline"
        if err is None and (lo == 0 or hi < lo):
            err = "BadUpdateBounds"
        if err is None:
            self.rounds.append(ModelRound(deadline, lo, hi))
        return err

    def submit(self, caller: int, now: int, round_id: int, num_samples: int) -> str | None:
        err = self._guard(caller, org_only=False)
        if err is None and caller not in self.clients:
            err = "NotClient"
        r = self.round(round_id)
        if err is None and (r is None or r.status != "open"):
            err = "RoundNotOpen"
        if err is None and r is not None:
            err = _submit_checks(r, caller, now, num_samples)
        if err is None and r is not None:
            r.submitted.add(caller)
        return err

    def close(self, caller: int, now: int, round_id: int) -> str | None:
        err = self._guard(caller)
        r = self.round(round_id)
        if err is None and (r is None or r.status != "open"):
            err = "RoundNotOpen"
        if err is None and r is not None:
            if now <= r.deadline and len(r.submitted) < r.max_updates:
                err = "TooEarly"
            elif len(r.submitted) < r.min_updates:
                err = "NotEnoughUpdates"
            else:
                r.status = "closed"
        return err

    def fail(self, caller: int, now: int, round_id: int) -> str | None:
        err = self._guard(caller, org_only=False)
        r = self.round(round_id)
        if err is None and (r is None or r.status != "open"):
            err = "RoundNotOpen"
        if err is None and r is not None:
            if now <= r.deadline:
                err = "TooEarly"
            elif len(r.submitted) >= r.min_updates:
                err = "EnoughUpdates"
            else:
                r.status = "failed"
        return err

    def pause(self, caller: int) -> str | None:
        err = self._guard(caller)
        if err is None:
            self.paused = True
        return err

    def unpause(self, caller: int) -> str | None:
        err = self._guard(caller, pausable=False) or (None if self.paused else "NotPaused")
        if err is None:
            self.paused = False
        return err

    def transfer_org(self, caller: int, to: int) -> str | None:
        err = self._guard(caller, pausable=False)
        if err is None:
            self.pending_org = to
        return err

    def accept_org(self, caller: int) -> str | None:
        if caller != self.pending_org:
            return "NotPendingOrg"
        self.org, self.pending_org = caller, None
        return None


def _submit_checks(r: ModelRound, caller: int, now: int, num_samples: int) -> str | None:
    if now > r.deadline:
        return "DeadlinePassed"
    if caller in r.submitted:
        return "AlreadySubmitted"
    if len(r.submitted) >= r.max_updates:
        return "RoundFull"
    return "ZeroSamples" if num_samples == 0 else None
