"""The org's differential-privacy layer: its secret, the ε spent, the central DP step, the record.

The pure math is in `models.dp` (DP-FedAvg, McMahan et al. 2018) and `models.accountant`
(dp-accounting's RDP accountant); this module wires them to the config, the ledger (which
noise each opened round used, so ε survives restarts and config changes) and the manifest.
See docs/privacy.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemons.errors import ConfigError
from daemons.org.ledger import Ledger, Submission
from daemons.org.unseal import public_train as sealed_train
from daemons.runtime.config import PrivacyConfig
from daemons.wire.round_config import RoundPrivacy
from models import accountant
from models.dp import MIN_SECRET_BYTES, DpFedAvg, fixed_weights, noise_key, secret_commitment

ADJACENCY = "zero_out"  # one client's clipped change replaced by zero (Kairouz et al. 2021)
# what a client's training facts may say in a DP federation: timings, nothing about its data


def load_secret(
    cfg: PrivacyConfig, env: Mapping[str, str] | None = None, source: str = ""
) -> bytes:
    """The org's central-noise secret: hex in `secret_file`, else in the env var `secret_env`.

    Never in a config file: whoever has it can regenerate the noise and subtract it.
    """
    env = os.environ if env is None else env
    where = f"privacy.secret_file {cfg.secret_file}" if cfg.secret_file else f"${cfg.secret_env}"
    try:
        text = Path(cfg.secret_file).read_text() if cfg.secret_file else env.get(cfg.secret_env, "")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read {where}: {exc.strerror}") from None
    if not text.strip():
        raise ConfigError(
            f'{source}: privacy.mode = "central" needs the org\'s noise secret: put '
            f"{MIN_SECRET_BYTES} or more random bytes as hex in privacy.secret_file or in the "
            f'environment variable {cfg.secret_env} (e.g. python -c "import secrets; '
            f'print(secrets.token_hex(32))")'
        )
    try:
        secret = bytes.fromhex(text.strip().removeprefix("0x"))
    except ValueError:
        raise ConfigError(f"{source}: {where} is not hex") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{source}: {where} has {len(secret)} bytes; at least {MIN_SECRET_BYTES} are needed"
        )
    return secret


@dataclass(frozen=True)
class OrgPrivacy:
    """A federation's DP settings, the org's secret (central only) and its contract address."""

    cfg: PrivacyConfig
    contract: str
    secret: bytes | None = None

    @property
    def on(self) -> bool:
        """Whether the federation runs with DP."""
        return self.cfg.mode != "off"

    def round_privacy(self) -> RoundPrivacy | None:
        """What the round config tells clients (None: no DP)."""
        if not self.on:
            return None
        return RoundPrivacy(self.cfg.mode, self.cfg.clip_norm, self.cfg.noise_multiplier)

    def record_open(self, ledger: Ledger, round_id: int) -> None:
        """Remember the noise round `round_id` is opened with (before it is opened)."""
        ledger.put_json(f"privacy:round:{round_id}", {"noise_multiplier": self.noise()})

    def noise(self) -> float | None:
        """The configured noise multiplier, None without DP."""
        return self.cfg.noise_multiplier if self.on else None

    def epsilon(self, ledger: Ledger, round_id: int, next_round: bool = False) -> float:
        """ε after rounds 1..round_id (+ one more at today's noise if `next_round`).

        A round with no record (opened without DP, or by an org that lost its state) has no
        bound: ε = ∞.
        """
        spent = spent_noise(ledger, round_id)
        return accountant.epsilon_spent(
            [*spent, self.noise()] if next_round else spent, self.cfg.delta
        )

    def central(self, round_id: int, subs: Sequence[Submission]) -> DpFedAvg:
        """The round's DP-FedAvg step: W = Σ fixed weights over every on-chain submission."""
        assert self.secret is not None, "central DP without the org's secret"
        weights = fixed_weights([s.num_samples for s in subs], self.cfg.sample_cap)
        return DpFedAvg(
            clip_norm=self.cfg.clip_norm,
            noise_multiplier=self.cfg.noise_multiplier,
            denominator=max(sum(weights), 1e-12),
            key=noise_key(self.secret, self.contract, round_id),
            sample_cap=self.cfg.sample_cap,
        )

    def record(self, epsilon: float, round_id: int, denominator: float | None) -> dict[str, Any]:
        """The manifest's `privacy` object: the mechanism, its parameters and ε after the round."""
        doc: dict[str, Any] = {
            "mode": self.cfg.mode,
            "clip_norm": self.cfg.clip_norm,
            "noise_multiplier": self.cfg.noise_multiplier,
            "sampling_rate": accountant.SAMPLING_RATE,
            "adjacency": ADJACENCY,
            "accountant": accountant.ACCOUNTANT,
            "delta": self.cfg.delta,
            "epsilon": epsilon if math.isfinite(epsilon) else "inf",
            "rounds_accounted": round_id,
            "weights": "uniform" if self.cfg.sample_cap == 0 else f"capped:{self.cfg.sample_cap}",
        }
        if self.cfg.epsilon_budget > 0:
            doc["epsilon_budget"] = self.cfg.epsilon_budget
        if denominator is not None:
            doc["denominator"] = denominator
        return doc


def central_dp_pin(privacy: OrgPrivacy) -> dict[str, Any]:
    """What the round config pins so an auditor handed the secret can replay the noisy merge:
    the secret's commitment (to tell a wrong secret from a wrong merge) and the sample cap."""
    assert privacy.secret is not None
    return {
        "secret_sha256": secret_commitment(privacy.secret),
        "sample_cap": privacy.cfg.sample_cap,
    }


def spent_noise(ledger: Ledger, round_id: int) -> list[float | None]:
    """The noise multiplier each of rounds 1..round_id was opened with (None: no DP)."""
    out: list[float | None] = []
    for r in range(1, round_id + 1):
        doc = ledger.get_json(f"privacy:round:{r}")
        out.append(None if doc is None else doc.get("noise_multiplier"))
    return out


def public_train(train: Mapping[str, float], privacy: OrgPrivacy | None) -> dict[str, float]:
    """A client's training facts as the manifest may show them (no loss/accuracy under DP)."""
    return sealed_train(train, privacy is not None and privacy.on)
