"""The verdict on one settled round, as a pure function of what was gathered (`RoundFacts`).

Checks, in order: the round config parses and what it pins; the base is the previous
round's model (the seeded initial model for round 1; unchanged after a Failed round); the
event counts; the manifest's identity; every update re-validated; the aggregation replayed
to the model digest on chain; the metrics and the forgetting ledger re-evaluated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from daemons.errors import RejectedUpdate
from daemons.org.model_step import model_metadata, update_limits
from daemons.verify import pins as pinning
from daemons.verify.checks import DIFFERS, Check, RoundReport, mismatch, ok, unchecked
from daemons.verify.dp import dp_step
from daemons.verify.facts import ReplayInputs, RoundFacts
from daemons.verify.model import metrics_check, replay_model
from daemons.verify.sealed import NO_KEY, is_sealed
from daemons.verify.task import round_task, task_heldout
from daemons.verify.updates import judge_updates, settle_deferred
from daemons.wire.manifest import Manifest, decode_manifest
from daemons.wire.round_config import RoundConfig, decode_round_config
from models.codec import decode_blob, encode_blob
from models.errors import BlobRejected
from models.rounds import initial_sections
from models.types import ModelsError

DEFAULT_MAX_BLOB_BYTES = 64 * 1024 * 1024


def verify_round(
    facts: RoundFacts, prev: RoundFacts | None, inputs: ReplayInputs, here: Mapping[str, str]
) -> RoundReport:
    """Every check of one settled round; `prev` is round_id - 1 (None for round 1)."""
    cfg, checks = _config_checks(facts, here)
    checks.append(base_check(facts, prev, cfg))
    if facts.failed is not None:
        checks.append(_failed_check(facts))
    elif facts.closed is not None and cfg is not None:
        same = cfg.replay is not None and not pinning.platform_differences(cfg.replay, here)
        checks += _closed_checks(facts, cfg, inputs, same)
    elif facts.closed is not None:
        checks.append(unchecked("model", "no readable round config: nothing to replay with"))
    return RoundReport(facts.round_id, facts.state, tuple(checks))


def _config_checks(
    facts: RoundFacts, here: Mapping[str, str]
) -> tuple[RoundConfig | None, list[Check]]:
    blob = facts.config
    if blob.data is None:
        return None, [
            unchecked("config", f"{facts.opened.config_cid}: {blob.reason} {blob.detail}")
        ]
    try:
        cfg = decode_round_config(blob.data)
    except RejectedUpdate as exc:
        return None, [mismatch("config", f"the round config does not parse: {exc.detail}")]
    checks = [ok("config", f"model {cfg.model}, seed {cfg.seed}, penalty {cfg.training.penalty}")]
    if cfg.round_id != facts.round_id:
        checks[0] = mismatch("config", f"round config says round {cfg.round_id}")
    if cfg.replay is None:
        checks.append(
            unchecked(
                "pins",
                "the round config pins nothing (older org): strategy options "
                "assumed empty, limits default, platform unknown",
            )
        )
    else:
        diffs = pinning.platform_differences(cfg.replay, here)
        checks.append(
            Check("platform", DIFFERS, "; ".join(diffs))
            if diffs
            else ok("platform", "same as pinned")
        )
    return cfg, checks


def base_check(facts: RoundFacts, prev: RoundFacts | None, cfg: RoundConfig | None) -> Check:
    """The base: the previous model, the previous base after a Failed round, or round 0's."""
    opened = facts.opened
    if facts.base.data is None:
        return mismatch(
            "base",
            f"base {opened.base_cid} not retrievable with the chain's digest: "
            f"{facts.base.reason} {facts.base.detail}",
        )
    if facts.round_id == 1:
        if is_sealed(facts.base):
            return unchecked("base", f"initial model not re-derived: {NO_KEY}")
        if cfg is None:
            return unchecked("base", "no readable round config: initial model not re-derived")
        rt, _ = round_task(cfg, str((cfg.replay or {}).get("strategy", "fedavg")))
        if rt is None:
            return unchecked("base", "the pinned task is not installed here: no initial model")
        sections = initial_sections(cfg.model, cfg.seed, cfg.fisher, rt.task)
        blob = encode_blob(sections, model_metadata(0, facts.opener, "", 0, cfg.model))
        if hashlib.sha256(blob).digest() != (facts.base_sha256 or opened.base_digest):
            return mismatch(
                "base",
                f"round 1's base is not the seeded initial model "
                f"(model {cfg.model}, seed {cfg.seed})",
            )
        return ok("base", f"seeded initial model (seed {cfg.seed})")
    if prev is None:
        return unchecked("base", f"round {facts.round_id - 1} not found on chain")
    if prev.closed is not None:
        want = (prev.closed.model_cid, prev.closed.model_digest, f"round {prev.round_id}'s model")
    else:
        want = (
            prev.opened.base_cid,
            prev.opened.base_digest,
            f"round {prev.round_id}'s base (it failed)",
        )
    if (opened.base_cid, opened.base_digest) != want[:2]:
        return mismatch("base", f"swapped base: {opened.base_cid} is not {want[2]} {want[0]}")
    return ok("base", f"= {want[2]}")


def _failed_check(facts: RoundFacts) -> Check:
    assert facts.failed is not None
    n, low = facts.failed.num_updates, facts.opened.min_updates
    if n != len(facts.updates) or n >= low:
        return mismatch(
            "failed", f"failed with {n} updates ({len(facts.updates)} events), min {low}"
        )
    return ok("failed", f"{n} < min {low} updates")


def _strategy(cfg: RoundConfig, manifest: Manifest) -> tuple[str, dict[str, Any]]:
    if cfg.replay is None:
        return manifest.strategy, {}
    return str(cfg.replay["strategy"]), dict(cfg.replay.get("strategy_options", {}))


def _closed_checks(
    facts: RoundFacts, cfg: RoundConfig, inputs: ReplayInputs, same: bool
) -> list[Check]:
    assert facts.closed is not None
    checks: list[Check] = []
    n = facts.closed.num_updates
    if n != len(facts.updates) or n < facts.opened.min_updates:
        checks.append(mismatch("updates", f"closed with {n} updates, {len(facts.updates)} events"))
    manifest, check = _manifest(facts, cfg)
    checks.append(check)
    if manifest is None:
        return [*checks, unchecked("model", "no manifest: included updates unknown")]
    if is_sealed(facts.base) or is_sealed(facts.model):
        return [*checks, unchecked("updates", NO_KEY), unchecked("model", NO_KEY)]
    try:
        base = decode_blob(facts.base.data or b"")
    except BlobRejected as exc:
        return [*checks, mismatch("model", f"the base model does not parse: {exc}")]
    pins = cfg.replay or {}
    strategy = _strategy(cfg, manifest)
    rt, task_check = round_task(cfg, strategy[0])
    checks.append(task_check)
    if rt is None:
        return [*checks, unchecked("model", "no task to replay the round with")]
    try:
        template = rt.schema.update_template(base.sections["params"])
    except ModelsError as exc:
        return [*checks, mismatch("base", f"the base does not fit the pinned task: {exc}")]
    judged = judge_updates(
        facts,
        cfg,
        template,
        _limits(cfg),
        manifest,
        inputs.open_update,
        int(pins.get("max_samples_per_client", 0)),
    )
    checks += judged.checks
    if judged.blind:
        checks += settle_deferred(judged, None)
        return [*checks, unchecked("model", f"included updates not retrievable: {judged.blind}")]
    if cfg.privacy is not None and cfg.privacy.mode == "central":
        dp_args = (base, strategy, same, judged)
        return [*checks, *_central_dp_checks(facts, rt.task, cfg, manifest, inputs, *dp_args)]
    tolerance = None if same else inputs.tolerance
    bounds = pinning.bounds_from_doc(pins.get("influence"))
    replayed = replay_model(facts, cfg, base, judged, manifest, strategy, tolerance, bounds)
    checks += settle_deferred(judged, replayed.report.rejected)
    checks += replayed.checks

    def params() -> Any:  # the published model's, which the org's metrics are about
        return _published_params(facts) or replayed.sections["params"]

    tolerance = None if same else inputs.metric_tolerance
    checks += _metric_checks(rt.task, cfg, manifest, params, inputs, tolerance)
    return checks


def _central_dp_checks(
    facts: RoundFacts,
    task: Any,
    cfg: RoundConfig,
    manifest: Manifest,
    inputs: ReplayInputs,
    base: Any,
    strategy: tuple[str, dict[str, Any]],
    same: bool,
    judged: Any,
) -> list[Check]:
    """A central-DP round: the merge's noise comes from the org's secret. Without it the
    weights and the model cannot be re-derived by a third party (docs/privacy.md), the rest
    still can; with it (`--dp-secret-file`) the merge is replayed as any other round's."""
    why = (
        "central DP: the org adds noise keyed by its secret (docs/privacy.md), so the merge "
        "cannot be replayed without it (an auditor handed it: --dp-secret-file FILE)"
    )
    tolerance = None if same else inputs.tolerance
    step, checks = (None, []) if inputs.dp_secret is None else dp_step(facts, cfg, manifest, inputs)
    if step is None:
        if inputs.dp_secret is not None:
            why = "the DP secret given is not the org's (see dp secret)"
        checks += [
            *settle_deferred(judged, None),
            unchecked("weights", why),
            unchecked("model", why),
        ]
    else:
        replayed = replay_model(facts, cfg, base, judged, manifest, strategy, tolerance, None, step)
        checks += [*settle_deferred(judged, replayed.report.rejected), *replayed.checks]
    published = _published_params(facts)
    if published is None:
        return [*checks, unchecked("metrics", "the published model is not retrievable")]
    tolerance = None if same else inputs.metric_tolerance
    return checks + _metric_checks(task, cfg, manifest, lambda: published, inputs, tolerance)


def _limits(cfg: RoundConfig) -> Any:
    if cfg.replay is None or "limits" not in cfg.replay:
        return update_limits(DEFAULT_MAX_BLOB_BYTES, cfg.fisher, 0.0)
    return pinning.limits_from_doc(cfg.replay["limits"])


def _manifest(facts: RoundFacts, cfg: RoundConfig) -> tuple[Manifest | None, Check]:
    assert facts.closed is not None
    if facts.manifest.data is None:
        what = f"{facts.closed.manifest_cid}: {facts.manifest.reason} {facts.manifest.detail}"
        return None, unchecked("manifest", what)
    try:
        m = decode_manifest(facts.manifest.data)
    except (ValueError, KeyError, TypeError) as exc:
        return None, mismatch("manifest", f"does not parse: {type(exc).__name__}: {exc}")
    wrong = []
    if m.round_id != facts.round_id:
        wrong.append(f"round_id {m.round_id}")
    if m.base_cid != facts.opened.base_cid:
        wrong.append(f"base_cid {m.base_cid} (chain: {facts.opened.base_cid})")
    if m.model_cid != facts.closed.model_cid:
        wrong.append(f"model_cid {m.model_cid} (chain: {facts.closed.model_cid})")
    if cfg.replay is not None and m.strategy != cfg.replay.get("strategy"):
        wrong.append(f"strategy {m.strategy!r} (pinned: {cfg.replay.get('strategy')!r})")
    if wrong:
        return m, mismatch("manifest", "; ".join(wrong))
    return m, ok("manifest", f"{len(m.included)} included, {len(m.excluded)} excluded")


def _published_params(facts: RoundFacts) -> Any:
    if facts.model.data is None:
        return None
    try:
        return decode_blob(facts.model.data).sections["params"]
    except (BlobRejected, KeyError):
        return None


def _metric_checks(
    task: Any,
    cfg: RoundConfig,
    manifest: Manifest,
    params: Callable[[], Any],
    inputs: ReplayInputs,
    tolerance: float | None,
) -> list[Check]:
    """Re-evaluate the model on the eval set and on every forgetting-ledger set.

    The ledger's sets are the task's own (`Task.heldout_sets`, derived here from the
    installed task whose source the `task` check matched), the org's config additions the
    verifier passes with `--heldout NAME=FILE`, and any the manifest or the pins name. A set
    the task declares must be in the manifest: the org cannot drop it.
    """
    pinned = cfg.replay or {}
    pinned_sets = pinned.get("heldout_data", {})
    own = task_heldout(task) if task.heldout_sets is not None else None
    declared = set(own.digests) if own is not None else set()
    sets: list[tuple[str, Any, Mapping[str, float] | None, Any, str]] = [
        ("metrics", inputs.eval_data, manifest.metrics, pinned.get("eval_data"), "")
    ]
    for name in sorted(set(manifest.heldout) | set(pinned_sets) | declared):
        data, origin = inputs.heldout.get(name), "--heldout"
        if data is None and own is not None and name in declared:
            data, origin = own.sets[name], "task"
        claimed = manifest.heldout.get(name)
        sets.append((f"heldout {name}", data, claimed, pinned_sets.get(name), origin))
    checks = []
    if own is not None and own.error:
        checks.append(unchecked("heldout", own.error))
    for label, data, recorded, digest, origin in sets:
        if recorded is None:
            why = (
                f"task {task.name!r} declares this held-out set but the manifest records no "
                "metrics on it"
                if label[8:] in declared
                else "pinned in the round config but absent from the manifest"
            )
            checks.append(mismatch(label, why))
        elif data is None:
            flag = "--eval-data FILE" if label == "metrics" else f"--heldout {label[8:]}=FILE"
            checks.append(unchecked(label, f"not re-evaluated (pass {flag})"))
        elif digest is not None and _digest(data, label, origin, own) != digest:
            what = (
                f"the task's set as derived here ({_digest(data, label, origin, own)[:18]}…) is not"
                if origin == "task"
                else "the given data is not"
            )
            checks.append(unchecked(label, f"{what} the set the org pinned ({digest[:18]}…)"))
        else:
            check = metrics_check(label, task, params(), data, recorded, tolerance)
            checks.append(
                replace(check, detail=f"{check.detail} (the task's set)")
                if origin == "task" and check.status == "ok"
                else check
            )
    return checks


def _digest(data: Any, label: str, origin: str, own: Any) -> str:
    """A held-out set's digest; the task's own sets' were computed once, when derived."""
    if origin == "task":
        return str(own.digests[label[len("heldout ") :]])
    return pinning.dataset_digest(data)
