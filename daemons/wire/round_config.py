"""The per-round config JSON the org publishes (configCid) so every client trains alike."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemons.errors import RejectedUpdate
from daemons.privacy.models import ModelEncryption
from daemons.privacy.policy import UpdateEncryption
from daemons.runtime.config import TrainingConfig
from models import registry
from models.schema import fisher_in_use as fisher_in_use

FORMAT_VERSION = 1
# Penalties and strategies that read the Fisher diagonal: one list, in models.registry.
FISHER_PENALTIES = registry.FISHER_PENALTIES
FISHER_STRATEGIES = registry.FISHER_STRATEGIES
# Training keys added after format 1 shipped: written only when not at their default, so an
# older client (which rejects unknown training keys) still reads a config that does not use them.
_NEWER_TRAINING_DEFAULTS: dict[str, Any] = {"momentum": 0.0}
_IDENTITY_KEYS = {"name": str, "model": str, "template": dict, "digest": str}


@dataclass(frozen=True)
class RoundPrivacy:
    """The round's DP recipe for clients (`local`: clip and noise your own change)."""

    mode: str
    clip_norm: float
    noise_multiplier: float


@dataclass(frozen=True)
class RoundConfig:
    """What a client needs to train round `round_id`: model name, seed, training recipe.

    `fisher`: whether the update carries the Fisher diagonal (and the base model may); a
    config without the key (from an older org) means yes. `encryption`: to whom updates are
    sealed (docs/security.md); None (absent) means plaintext updates. `task`: the task's
    identity (`models.tasks.task_identity`: name, model, parameter template, source sha256);
    a config without it (an older org) means Fashion-MNIST with `model`, unchecked. `privacy`:
    absent = no DP.
    """

    round_id: int
    model: str
    seed: int
    training: TrainingConfig
    fisher: bool = True
    encryption: UpdateEncryption | None = None
    task: Mapping[str, Any] | None = None
    privacy: RoundPrivacy | None = None
    # what `fedchain verify` needs to replay the round (daemons/verify/pins.py); None: an
    # older org that pinned nothing
    replay: dict[str, Any] | None = None
    # models sealed to the members (docs/security.md): to whom; None (absent) = public models
    models: ModelEncryption | None = None


def _training_doc(training: TrainingConfig) -> dict[str, Any]:
    doc = dataclasses.asdict(training)
    for key, default in _NEWER_TRAINING_DEFAULTS.items():
        if doc.get(key) == default:
            del doc[key]
    return doc


def encode_round_config(cfg: RoundConfig) -> bytes:
    """Deterministic JSON bytes (sorted keys), so the same round gives the same CID."""
    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "round_id": cfg.round_id,
        "model": cfg.model,
        "seed": cfg.seed,
        "training": _training_doc(cfg.training),
        "fisher": cfg.fisher,
    }
    if cfg.encryption is not None:  # absent for public updates: their config CIDs stay as they were
        doc["encryption"] = cfg.encryption.to_json()
    if cfg.task is not None:
        doc["task"] = dict(cfg.task)
    if cfg.privacy is not None:  # absent key = no DP: older configs keep their bytes and CIDs
        doc["privacy"] = dataclasses.asdict(cfg.privacy)
    if cfg.replay is not None:
        doc["replay"] = cfg.replay
    if cfg.models is not None:  # absent for public models: their config CIDs stay as they were
        doc["models"] = cfg.models.to_json()
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
    task = doc.get("task")
    if task is None and doc["model"] not in registry.MODELS:
        raise ValueError(f"model {doc['model']!r} not one of {', '.join(registry.MODELS)}")
    if task is not None:
        _check_identity(task)
    if not isinstance(doc["model"], str):
        raise ValueError(f"model must be a string, got {doc['model']!r}")
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
    privacy = _privacy(doc.get("privacy"))
    if privacy is not None and fisher:
        raise ValueError("privacy is on but fisher is true: DP does not cover the Fisher")
    return RoundConfig(
        round_id=int(doc["round_id"]),
        model=str(doc["model"]),
        seed=int(doc["seed"]),
        training=training,
        fisher=fisher,
        encryption=None if encryption is None else UpdateEncryption.from_json(encryption),
        task=task,
        privacy=privacy,
        replay=_replay(doc.get("replay")),
        models=None if doc.get("models") is None else ModelEncryption.from_json(doc["models"]),
    )


def _replay(value: Any) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"replay must be a table, got {type(value).__name__}")
    return value


def _check_identity(task: Any) -> None:
    """A task identity has exactly name, model, template and digest of the right types."""
    if not isinstance(task, dict) or set(task) != set(_IDENTITY_KEYS):
        raise ValueError(f"task must be an object with keys {sorted(_IDENTITY_KEYS)}")
    for key, kind in _IDENTITY_KEYS.items():
        if not isinstance(task[key], kind):
            raise ValueError(f"task.{key} must be a {kind.__name__}")


def _privacy(doc: Any) -> RoundPrivacy | None:
    """The `privacy` object of a round config (None when absent), checked."""
    if doc is None:
        return None
    privacy = RoundPrivacy(
        mode=str(doc["mode"]),
        clip_norm=float(doc["clip_norm"]),
        noise_multiplier=float(doc["noise_multiplier"]),
    )
    if privacy.mode not in ("central", "local"):
        raise ValueError(f"privacy.mode {privacy.mode!r} not one of central, local")
    if not (privacy.clip_norm > 0 and privacy.noise_multiplier > 0):
        raise ValueError(f"privacy needs clip_norm > 0 and noise_multiplier > 0, got {doc}")
    return privacy
