"""Replaying a central-DP round with the org's noise secret, for an auditor the org hands it.

The org's DP-FedAvg step is a pure function of the base, the included updates, the clip
norm C, the noise multiplier z, the weights' denominator W and the round's noise key
`noise_key(secret, contract, round)` (docs/privacy.md). With the secret, verify rebuilds
that step and replays the merge bit for bit like any other round. The round config
commits to the secret (`replay.central_dp.secret_sha256`), so a wrong secret is named as
such instead of showing up as a wrong model.
"""

from __future__ import annotations

from daemons.verify.checks import Check, mismatch, ok, unchecked
from daemons.verify.facts import ReplayInputs, RoundFacts
from daemons.wire.manifest import Manifest
from daemons.wire.round_config import RoundConfig
from models.dp import DpFedAvg, fixed_weights, noise_key, secret_commitment


def dp_step(
    facts: RoundFacts, cfg: RoundConfig, manifest: Manifest, inputs: ReplayInputs
) -> tuple[DpFedAvg | None, list[Check]]:
    """The round's DP-FedAvg step rebuilt from public facts and `inputs.dp_secret`, and the
    checks of what it was rebuilt from (None: the secret is not the org's)."""
    assert inputs.dp_secret is not None and cfg.privacy is not None
    pin = (cfg.replay or {}).get("central_dp") or {}
    committed = pin.get("secret_sha256")
    checks = []
    if committed is None:
        checks.append(
            unchecked(
                "dp secret",
                "the round config commits to no secret (older org): a wrong secret shows as "
                "a model MISMATCH",
            )
        )
    elif secret_commitment(inputs.dp_secret) != committed:
        return None, [
            mismatch(
                "dp secret",
                f"the secret given (--dp-secret-file) is not the one round {facts.round_id}'s "
                f"config commits to (sha256 {str(committed)[:18]}…): the noise cannot be "
                "replayed with it",
            )
        ]
    else:
        checks.append(ok("dp secret", "matches the round config's commitment"))
    cap = _sample_cap(pin, manifest)
    claims = [ev.num_samples for ev in sorted(facts.updates, key=lambda ev: ev.client)]
    denominator = max(sum(fixed_weights(claims, cap)), 1e-12)
    recorded = manifest.privacy.get("denominator")
    if recorded != denominator:
        checks.append(
            mismatch(
                "dp denominator",
                f"manifest W = {recorded!r}; from the {len(claims)} on-chain submissions "
                f"(sample cap {cap}) W = {denominator!r}",
            )
        )
    step = DpFedAvg(
        clip_norm=cfg.privacy.clip_norm,
        noise_multiplier=cfg.privacy.noise_multiplier,
        denominator=denominator,
        key=noise_key(inputs.dp_secret, inputs.contract, facts.round_id),
        sample_cap=cap,
    )
    return step, checks


def _sample_cap(pin: dict, manifest: Manifest) -> int:
    """The pinned sample cap; an older org's from its manifest (`weights`: uniform | capped:N)."""
    if "sample_cap" in pin:
        return int(pin["sample_cap"])
    weights = str(manifest.privacy.get("weights", "uniform"))
    return int(weights.partition(":")[2]) if weights.startswith("capped:") else 0
