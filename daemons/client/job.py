"""The client's training job, pure: base model + round config + local data -> update blob.

Local objective `CE + (λ/2) Σ F ⊙ (θ - θ_base)²` (EWC, Kirkpatrick et al. 2017) with the
federation Fisher from the base blob; FedProx and FedCurv (Shoham et al. 2019) likewise.
Runs in a worker thread; the seed is derived from (seed, round, client), so a re-run of
the same round trains to the same parameters.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from daemons.round_config import RoundConfig
from models.codec import BlobMetadata, DecodedBlob, encode_blob
from models.data import Dataset
from models.fisher import fisher_diagonal
from models.networks import get_model
from models.penalties import fedcurv_others, make_penalty
from models.training import TrainConfig, local_train, params_to_numpy


@dataclass(frozen=True)
class PreviousUpdate:
    """This client's u_i, v_i from the round whose model is now the base (FedCurv only)."""

    u: Mapping[str, Any]
    v: Mapping[str, Any]


def train_seed(seed: int, round_id: int, client: str) -> int:
    """A 31-bit training seed unique to (federation seed, round, client)."""
    digest = hashlib.sha256(f"{seed}:{round_id}:{client.lower()}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def train_update(
    base: DecodedBlob,
    base_cid: str,
    config: RoundConfig,
    data: Dataset,
    client: str,
    previous: PreviousUpdate | None = None,
) -> bytes:
    """Train on `data` from the base model and encode the update blob.

    The update carries the Fisher diagonal only when the round config asks for it.
    """
    model = get_model(config.model)
    t = config.training
    seed = train_seed(config.seed, config.round_id, client)
    penalty = _penalty(base, t.penalty, t.ewc_lambda, t.fedprox_mu, previous)
    train_config = TrainConfig(
        epochs=t.epochs,
        batch_size=t.batch_size,
        learning_rate=t.learning_rate,
        optimizer=t.optimizer,
        seed=seed,
    )
    started = time.perf_counter()
    trained, metrics = local_train(model, base.sections["params"], data, train_config, penalty)
    trained = jax.block_until_ready(trained)  # JAX dispatches asynchronously: time the work
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    fisher = None
    if config.fisher:
        fisher = fisher_diagonal(model, trained, data, max_samples=t.fisher_samples, seed=seed)
        fisher = jax.block_until_ready(fisher)
    facts = {"loss": metrics.loss, "accuracy": metrics.accuracy, "train_s": train_s}
    facts["fisher_s"] = time.perf_counter() - started
    meta = BlobMetadata(
        "update", config.round_id, client, base_cid, len(data), config.model, train_metrics=facts
    )
    return encode_blob(_sections(trained, fisher, t.penalty), meta)


def _sections(trained: Any, fisher: Any | None, penalty: str) -> dict[str, Any]:
    """Update sections: params and (if computed) Fisher, plus FedCurv's u = F, v = F ⊙ θ."""
    sections: dict[str, Any] = {"params": params_to_numpy(trained)}
    if fisher is None:
        return sections
    sections["fisher"] = params_to_numpy(fisher)
    if penalty == "fedcurv":
        sections["u"] = sections["fisher"]
        sections["v"] = jax.tree_util.tree_map(np.multiply, sections["fisher"], sections["params"])
    return sections


def _penalty(
    base: DecodedBlob, kind: str, lam: float, mu: float, previous: PreviousUpdate | None
) -> Any:
    """The configured penalty anchored at the base model (None for "none")."""
    params = base.sections["params"]
    if kind != "fedcurv":
        fisher = base.sections.get("fisher")
        if fisher is None and kind == "ewc":  # a base from rounds that used no Fisher: zero,
            fisher = jax.tree_util.tree_map(np.zeros_like, params)  # as in round 1
        return make_penalty(kind, anchor=params, fisher=fisher, lam=lam, mu=mu)
    zeros = jax.tree_util.tree_map(np.zeros_like, params)
    u_sum, v_sum = base.sections.get("u", zeros), base.sections.get("v", zeros)
    own_u = previous.u if previous else None
    own_v = previous.v if previous else None
    u_others, v_others = fedcurv_others(u_sum, v_sum, own_u, own_v)  # type: ignore[arg-type]
    return make_penalty(kind, u_others=u_others, v_others=v_others, lam=lam)
