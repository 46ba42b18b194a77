"""The per-round config JSON the org publishes (configCid) so every client trains alike."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from daemons.config import MODELS, TrainingConfig
from daemons.errors import RejectedUpdate
from daemons.privacy.policy import UpdateEncryption

FORMAT_VERSION = 1
# Penalties and strategies that read the Fisher diagonal (EWC's importance, FedCurv's u = F,
# Fisher-weighted merging). With none of them the Fisher is neither computed nor sent.
FISHER_PENALTIES = frozenset({"ewc", "fedcurv"})
FISHER_STRATEGIES = frozenset({"fedcurv", "fisher_merge"})


def fisher_in_use(penalty: str, strategy: str) -> bool:
    """Whether updates and models of a federation carry the Fisher section."""
    return penalty in FISHER_PENALTIES or strategy in FISHER_STRATEGIES


@dataclass(frozen=True)
class RoundConfig:
    """What a client needs to train round `round_id`: model name, seed, training recipe.

    `fisher`: whether the update carries the Fisher diagonal (and the base model may); a
    config without the key (from an older org) means yes. `encryption`: to whom updates are
    sealed (docs/security.md); None (absent) means plaintext updates.
    """

    round_id: int
    model: str
    seed: int
    training: TrainingConfig
    fisher: bool = True
    encryption: UpdateEncryption | None = None


def encode_round_config(cfg: RoundConfig) -> bytes:
    """Deterministic JSON bytes (sorted keys), so the same round gives the same CID."""
    doc = {
        "format_version": FORMAT_VERSION,
        "round_id": cfg.round_id,
        "model": cfg.model,
        "seed": cfg.seed,
        "training": dataclasses.asdict(cfg.training),
        "fisher": cfg.fisher,
    }
    if cfg.encryption is not None:  # absent for public updates: their config CIDs stay as they were
        doc["encryption"] = cfg.encryption.to_json()
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode_round_config(data: bytes) -> RoundConfig:
    """Parse and check a round config; a bad one is a `RejectedUpdate("round_config")`."""
    try:
        doc = json.loads(data)
        return _from_doc(doc)
    except (ValueError, TypeError, KeyError) as exc:
        raise RejectedUpdate("round_config", f"{type(exc).__name__}: {exc}") from None


def _from_doc(doc: dict[str, Any]) -> RoundConfig:
    if doc["format_version"] != FORMAT_VERSION:
        raise ValueError(f"format_version {doc['format_version']} (this daemon reads 1)")
    if doc["model"] not in MODELS:
        raise ValueError(f"model {doc['model']!r} not one of {', '.join(MODELS)}")
    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    unknown = set(doc["training"]) - fields
    if unknown:
        raise ValueError(f"unknown training keys {sorted(unknown)}")
    training = TrainingConfig(**doc["training"])
    fisher = doc.get("fisher", True)
    if not isinstance(fisher, bool):
        raise ValueError(f"fisher must be true or false, got {fisher!r}")
    if training.penalty in FISHER_PENALTIES and not fisher:
        raise ValueError(f"penalty {training.penalty!r} needs the Fisher but fisher is false")
    encryption = doc.get("encryption")
    return RoundConfig(
        round_id=int(doc["round_id"]),
        model=str(doc["model"]),
        seed=int(doc["seed"]),
        training=training,
        fisher=fisher,
        encryption=None if encryption is None else UpdateEncryption.from_json(encryption),
    )
