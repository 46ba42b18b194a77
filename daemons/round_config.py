"""The per-round config JSON the org publishes (configCid) so every client trains alike."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from daemons.config import MODELS, TrainingConfig
from daemons.errors import RejectedUpdate

FORMAT_VERSION = 1


@dataclass(frozen=True)
class RoundConfig:
    """What a client needs to train round `round_id`: model name, seed, training recipe."""

    round_id: int
    model: str
    seed: int
    training: TrainingConfig


def encode_round_config(cfg: RoundConfig) -> bytes:
    """Deterministic JSON bytes (sorted keys), so the same round gives the same CID."""
    doc = {
        "format_version": FORMAT_VERSION,
        "round_id": cfg.round_id,
        "model": cfg.model,
        "seed": cfg.seed,
        "training": dataclasses.asdict(cfg.training),
    }
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
    return RoundConfig(
        round_id=int(doc["round_id"]),
        model=str(doc["model"]),
        seed=int(doc["seed"]),
        training=TrainingConfig(**doc["training"]),
    )
