"""Re-judging a round's submitted updates with the org's own validation (`check_update`).

Each `UpdateSubmitted` must appear in the manifest once, with the event's CID, digest and
sample count; an included update must pass validation; an excluded one must fail it with
the reason the manifest gives. "unavailable" (the org could not fetch it in time) can be
neither confirmed nor refuted by anyone later: it is reported as unchecked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from daemons.org.collect import UpdateClaim, Verdict, check_update, samples_verdict
from daemons.org.ledger import ACCEPTED, Submission
from daemons.verify.checks import Check, mismatch, ok, unchecked
from daemons.verify.facts import Blob, OpenUpdate, RoundFacts
from daemons.wire.manifest import Excluded, Included, Manifest
from daemons.wire.round_config import RoundConfig
from models.strategies import ClientUpdate
from models.validation import Limits

UNAVAILABLE = "unavailable"
STRATEGY = "strategy"


@dataclass
class Judged:
    """The verifier's verdicts as ledger submissions, the accepted updates, and the checks."""

    subs: dict[str, Submission] = field(default_factory=dict)
    updates: list[ClientUpdate] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    blind: list[str] = field(default_factory=list)  # kept by the org, not checkable here
    # valid updates the org excluded with a reason: right only if the round-level bounds
    # (over all of the round's updates) reject them with it; settled by `settle_deferred`
    deferred: dict[str, tuple[str, Excluded]] = field(default_factory=dict)


def short(client: str) -> str:
    """A client address cut for check names (0x1234…abcd)."""
    return f"{client[:6]}…{client[-4:]}"


def org_verdict(entry: Included | Excluded) -> str:
    """The org's validation verdict: accepted (merged or left out by the strategy) or why not."""
    if isinstance(entry, Included) or entry.reason == STRATEGY:
        return ACCEPTED
    return entry.reason


def judge_updates(
    facts: RoundFacts,
    cfg: RoundConfig,
    template: Mapping[str, Any],
    limits: Limits,
    manifest: Manifest,
    open_update: OpenUpdate | None = None,
    max_samples: int = 0,
) -> Judged:
    """Re-validate every submitted update and compare with the manifest's entry for it."""
    entries: dict[str, Included | Excluded] = {e.client: e for e in manifest.included}
    entries |= {e.client: e for e in manifest.excluded}
    judged = Judged()
    submitted = {ev.client for ev in facts.updates}
    for client in sorted(set(entries) - submitted):
        judged.checks.append(
            mismatch(f"update {short(client)}", f"in the manifest, but {client} submitted nothing")
        )
    for ev in sorted(facts.updates, key=lambda e: e.client):
        name = f"update {short(ev.client)}"
        sub = Submission(ev.client, ev.update_cid, "0x" + ev.digest.hex(), ev.num_samples)
        entry = entries.get(ev.client)
        if entry is None:
            judged.checks.append(mismatch(name, "submitted on chain but absent from the manifest"))
            continue
        wrong = _identity(entry, sub)
        if wrong:
            judged.checks.append(mismatch(name, wrong))
            continue
        blob = facts.update_blobs.get(ev.client, Blob(reason=UNAVAILABLE, detail="not fetched"))
        claim = UpdateClaim(facts.round_id, ev.client, facts.opened.base_cid, ev.num_samples)
        ours, decoded = _revalidate(blob, template, claim, cfg, limits, open_update, max_samples)
        _compare(judged, name, sub, entry, ours, decoded)
    return judged


def _identity(entry: Included | Excluded, sub: Submission) -> str:
    """What in the manifest entry contradicts the chain's event, or ""."""
    if entry.cid != sub.cid:
        return f"manifest names CID {entry.cid}, the chain {sub.cid}"
    if isinstance(entry, Included) and entry.digest.lower() != sub.digest:
        return f"manifest names digest {entry.digest}, the chain {sub.digest}"
    if isinstance(entry, Included) and entry.num_samples != sub.num_samples:
        return f"manifest says {entry.num_samples} samples, the chain {sub.num_samples}"
    return ""


def _revalidate(
    blob: Blob,
    template: Mapping[str, Any],
    claim: UpdateClaim,
    cfg: RoundConfig,
    limits: Limits,
    open_update: OpenUpdate | None,
    max_samples: int,
) -> tuple[Verdict, Any]:
    """The org's verdict, re-reached: a fetch failure's reason, else `check_update`'s."""
    too_many = samples_verdict(claim.num_samples, max_samples)
    if too_many is not None:  # the org refuses these before fetching anything
        return too_many, None
    if blob.data is None:
        return Verdict(blob.reason, blob.detail), None
    data, sealed = blob.data, cfg.encryption is not None
    if sealed and open_update is None:
        return Verdict(UNAVAILABLE, "sealed to the org and its auditors: pass --auditor-key"), None
    if sealed and open_update is not None and cfg.encryption is not None:
        try:
            data = open_update(data, claim, cfg.encryption.recipients())
        except Exception as exc:  # the opener's error type is the privacy part's, with .reason
            reason, detail = getattr(exc, "reason", "decrypt"), getattr(exc, "detail", str(exc))
            return Verdict(reason, detail), None
    return check_update(data, template, claim, cfg.model, limits, sealed)


def _compare(
    judged: Judged,
    name: str,
    sub: Submission,
    entry: Included | Excluded,
    ours: Verdict,
    decoded: Any,
) -> None:
    """Record our verdict against the org's and keep what the replay merges."""
    theirs = org_verdict(entry)
    kept = Submission(sub.client, sub.cid, sub.digest, sub.num_samples, theirs, "", {})
    if ours.code == UNAVAILABLE:
        judged.checks.append(unchecked(name, f"not checked here: {ours.detail}"))
        if theirs == ACCEPTED:
            judged.blind.append(sub.client)
        judged.subs[sub.client] = _with_detail(kept, entry)
        return
    if theirs == UNAVAILABLE:  # no one can refute "I could not fetch it in time" later
        now = _describe_ours(ours)
        judged.checks.append(unchecked(name, f"the org says not retrievable in time; now: {now}"))
        judged.subs[sub.client] = _with_detail(kept, entry)
        return
    if ours.code == ACCEPTED and isinstance(entry, Excluded) and theirs != ACCEPTED:
        judged.deferred[sub.client] = (name, entry)
    elif ours.code != theirs:
        judged.checks.append(
            mismatch(name, f"manifest: {_describe(entry)}; re-validation: {_describe_ours(ours)}")
        )
    else:
        judged.checks.append(ok(name, "accepted" if theirs == ACCEPTED else f"rejected: {theirs}"))
    judged.subs[sub.client] = Submission(
        sub.client, sub.cid, sub.digest, sub.num_samples, ours.code, ours.detail, ours.train
    )
    if ours.code == ACCEPTED and decoded is not None:
        judged.updates.append(
            ClientUpdate.from_sections(sub.client, sub.num_samples, decoded.sections)
        )


def _with_detail(kept: Submission, entry: Included | Excluded) -> Submission:
    detail = entry.detail if isinstance(entry, Excluded) else ""
    train = dict(entry.train) if isinstance(entry, Included) else {}
    return Submission(
        kept.client, kept.cid, kept.digest, kept.num_samples, kept.verdict, detail, train
    )


def _describe(entry: Included | Excluded) -> str:
    if isinstance(entry, Included):
        return "included"
    if entry.reason == STRATEGY:
        return f"left out by the strategy ({entry.detail})"
    return f"excluded as {entry.reason!r}" + (f" ({entry.detail})" if entry.detail else "")


def _describe_ours(ours: Verdict) -> str:
    if ours.code == ACCEPTED:
        return "valid"
    return f"rejected as {ours.code!r} ({ours.detail})"


def settle_deferred(judged: Judged, rejected: Mapping[str, tuple[str, str]] | None) -> list[Check]:
    """Valid updates the manifest excludes: confirmed only by the replayed round-level bounds.

    `rejected`: what the replayed screen refused (None: the replay could not run).
    """
    checks = []
    for client, (name, entry) in sorted(judged.deferred.items()):
        if rejected is None:
            checks.append(unchecked(name, f"{_describe(entry)}: round-level bounds not replayed"))
        elif client in rejected and rejected[client][0] == entry.reason:
            checks.append(ok(name, f"rejected: {entry.reason} (round-level bound)"))
        else:
            checks.append(mismatch(name, f"manifest: {_describe(entry)}; re-validation: valid"))
    return checks
