"""Client-level differential privacy for FedAvg: clip each client's change, add Gaussian noise.

DP-FedAvg (McMahan et al. 2018, "Learning Differentially Private Recurrent Language Models"):
each client's change from the base, Δ_i = θ_i − θ_base, is scaled onto the L2 ball of radius
C; the org releases

    θ = θ_base + (Σ_i w_i clip_C(Δ_i) + N(0, (z C)² I)) / W

with fixed weights w_i ∈ [0, 1] and a denominator W fixed before the updates are seen (their
estimator f̃_f). Replacing one client's clipped change by zero ("zero-out" adjacency, Kairouz
et al. 2021) moves the numerator by at most C, so the release is a Gaussian mechanism with
noise multiplier z. Weighting by the claimed num_samples, or dividing by the sum of the
included weights, would make that bound depend on the data: hence uniform weights (w_i = 1),
or num_samples capped at `sample_cap` (w_i = min(n_i / cap, 1)), and W from public facts.

The local variant (`privatize_update`) has each client release θ_base + clip_C(Δ_i) + N(0,
(z C)² I) itself: the same mechanism per client, whoever aggregates afterwards.

The central noise key comes from a secret the org holds (`noise_key`), never from public data,
or anyone could regenerate the noise and subtract it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from models.errors import StrategyError
from models.strategies.base import (
    AggregateResult,
    ClientUpdate,
    Flat,
    Params,
    Stateless,
    check_same_names,
    flat64,
    prepare,
    to_tree,
    weighted_sum,
)

MIN_SECRET_BYTES = 32
_NOISE_DOMAIN = b"fedchain/dp/central-noise/v1"
_COMMIT_DOMAIN = b"fedchain/dp/secret-commitment/v1|"


def global_norm(flat: Flat) -> float:
    """L2 norm over every leaf of a flat tree, summed in float64 in name order."""
    return float(np.sqrt(sum(float(np.vdot(a, a)) for _, a in sorted(flat.items()))))


def clip_delta(base: Flat, params: Flat, clip_norm: float) -> tuple[Flat, float]:
    """(Δ scaled onto the ball of radius `clip_norm`, ||Δ|| before clipping), float64."""
    check_same_names([params], "params", base)
    delta = {name: params[name] - base[name] for name in base}
    norm = global_norm(delta)
    scale = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    return {name: d * scale for name, d in delta.items()}, norm


def fixed_weights(num_samples: Sequence[int], sample_cap: int = 0) -> list[float]:
    """w_i = 1 (sample_cap 0), else min(n_i / cap, 1): each in [0, 1], so one client moves
    the weighted sum of clipped changes by at most the clip norm."""
    if sample_cap < 0:
        raise StrategyError(f"sample_cap must be >= 0, got {sample_cap}")
    if sample_cap == 0:
        return [1.0] * len(num_samples)
    return [min(max(n, 0) / sample_cap, 1.0) for n in num_samples]


def noise_key(secret: bytes, contract: str, round_id: int) -> jax.Array:
    """The round's central-noise key: HMAC-SHA256(secret, domain|contract|round) → threefry.

    Only who holds `secret` can regenerate the noise; the contract address and round make
    every round's key distinct. JAX's threefry key holds the first 64 bits of the MAC.
    """
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the DP secret must have >= {MIN_SECRET_BYTES} bytes, got {len(secret)}")
    message = b"|".join((_NOISE_DOMAIN, contract.lower().encode(), str(round_id).encode()))
    mac = hmac.new(secret, message, hashlib.sha256).digest()
    words = np.frombuffer(mac[:8], dtype=">u4").astype(np.uint32)
    return jax.random.wrap_key_data(jnp.asarray(words), impl="threefry2x32")


def secret_commitment(secret: bytes) -> str:
    """sha256 of the domain-tagged secret ("0x" hex), published so an auditor handed the
    secret can tell it is the org's; it reveals nothing usable (the secret is >= 32 random
    bytes, and the noise key is an HMAC under it)."""
    return "0x" + hashlib.sha256(_COMMIT_DOMAIN + secret).hexdigest()


def fresh_key() -> jax.Array:
    """A key from the OS's CSPRNG, for a client's own local noise (nobody can regenerate it)."""
    import secrets

    words = np.frombuffer(secrets.token_bytes(8), dtype=">u4").astype(np.uint32)
    return jax.random.wrap_key_data(jnp.asarray(words), impl="threefry2x32")


@partial(jax.jit, static_argnames=("shapes",))
def _standard_normals(key: jax.Array, shapes: tuple[tuple[int, ...], ...]) -> list[jax.Array]:
    """One standard normal array per shape, from independent subkeys (jitted per model)."""
    keys = jax.random.split(key, len(shapes))
    return [jax.random.normal(k, s, jnp.float32) for k, s in zip(keys, shapes, strict=True)]


def gaussian_noise(key: jax.Array, like: Flat, std: float) -> Flat:
    """N(0, std²) per coordinate, one array per leaf of `like` (sorted names), float64."""
    names = sorted(like)
    draws = _standard_normals(key, tuple(tuple(like[n].shape) for n in names))
    return {n: np.asarray(d, np.float64) * std for n, d in zip(names, draws, strict=True)}


@dataclass(frozen=True)
class DpFedAvg(Stateless):
    """Central DP-FedAvg for one round (McMahan et al. 2018), a strategy of fixed weights.

    `denominator` is W, fixed from public facts before aggregation (e.g. Σ w_i over every
    on-chain submission of the round, rejected ones included); `key` the round's secret
    noise key. Same inputs and key give bit-identical params.
    """

    clip_norm: float
    noise_multiplier: float
    denominator: float
    key: Any
    sample_cap: int = 0
    name: str = "fedavg"

    def __post_init__(self) -> None:
        if not self.clip_norm > 0:
            raise StrategyError(f"clip_norm must be > 0, got {self.clip_norm}")
        if not self.noise_multiplier >= 0:
            raise StrategyError(f"noise_multiplier must be >= 0, got {self.noise_multiplier}")
        if not self.denominator > 0:
            raise StrategyError(f"the DP denominator must be > 0, got {self.denominator}")

    def aggregate(
        self, base_params: Params, updates: Sequence[ClientUpdate], state: Params | None = None
    ) -> AggregateResult | None:
        """θ_base + (Σ w_i clip(Δ_i) + N(0, (zC)²)) / W; None for no usable update."""
        kept, excluded = prepare(updates)
        if not kept:
            return None
        base = flat64(base_params)
        weights = fixed_weights([u.num_samples for u in kept], self.sample_cap)
        if sum(weights) > self.denominator * (1 + 1e-9):
            raise StrategyError(f"weights sum {sum(weights)} > denominator {self.denominator}")
        deltas = [clip_delta(base, flat64(u.params), self.clip_norm)[0] for u in kept]
        total = weighted_sum(deltas, weights)
        noise = gaussian_noise(self.key, base, self.noise_multiplier * self.clip_norm)
        params = {n: base[n] + (total[n] + noise[n]) / self.denominator for n in base}
        shares = {u.client: w / self.denominator for u, w in zip(kept, weights, strict=True)}
        return AggregateResult(
            params=to_tree(params), fisher=None, weights=shares, excluded=excluded
        )


@jax.jit
def _privatize(base: Any, params: Any, key: jax.Array, clip_norm: Any, std: Any) -> Any:
    """base + clip(params − base) + N(0, std²), all leaves at once (float32, jitted)."""
    delta = jax.tree_util.tree_map(jnp.subtract, params, base)
    norm = jnp.sqrt(sum(jnp.vdot(d, d) for d in jax.tree_util.tree_leaves(delta)))
    scale = jnp.minimum(1.0, clip_norm / jnp.maximum(norm, 1e-30))
    leaves, treedef = jax.tree_util.tree_flatten(delta)
    keys = jax.random.split(key, len(leaves))
    noisy = [
        d * scale + std * jax.random.normal(k, d.shape, d.dtype)
        for d, k in zip(leaves, keys, strict=True)
    ]
    out = jax.tree_util.tree_map(jnp.add, base, jax.tree_util.tree_unflatten(treedef, noisy))
    return out, norm


def privatize_update(
    base_params: Mapping[str, Any],
    params: Mapping[str, Any],
    clip_norm: float,
    noise_multiplier: float,
    key: jax.Array,
) -> tuple[Params, float]:
    """Local DP: (θ_base + clip_C(θ − θ_base) + N(0, (z C)² I), ||θ − θ_base||), float32.

    A client calls it on its own trained params with a key nobody else knows (`fresh_key`).
    """
    if not clip_norm > 0 or not noise_multiplier >= 0:
        raise StrategyError(f"bad local DP parameters C={clip_norm}, z={noise_multiplier}")
    as32 = lambda t: jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), dict(t))  # noqa: E731
    out, norm = _privatize(
        as32(base_params), as32(params), key, clip_norm, noise_multiplier * clip_norm
    )
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), out), float(norm)
