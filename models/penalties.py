"""Quadratic penalties that tie local training to earlier knowledge, as one optax transform.

Every penalty here is ``lam/2 * sum w (theta - c)^2`` with per-parameter weights ``w`` and
centre ``c``; only how ``w`` and ``c`` are built differs:

- EWC (Kirkpatrick et al. 2017): ``w = F`` (the base model's Fisher), ``c`` = the base model.
- FedProx (Li et al. 2020): ``w = 1``, ``c`` = the base model (``mu/2 * ||theta - c||^2``).
- FedCurv (Shoham et al. 2019): ``lam/2 * sum_{j != i} F_j (theta - theta_j)^2`` from the
  federation's sums ``U = sum u_j``, ``V = sum v_j`` (``u = F``, ``v = F * theta``), minus this
  client's own: ``w = U'``, ``c = V' / U'``. That is the exact penalty up to a constant
  (``sum_j F_j theta_j^2``, which clients do not publish): same gradient, zero at its minimum.

The gradient the transform adds is ``jax.grad`` of the value, never written by hand. A
``Penalty`` is a JAX pytree (its arrays are leaves, its kind is static), so one jitted
training function serves every round without recompiling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax

from models import registry
from models.types import ModelsError, Params

PENALTY_KINDS = registry.PENALTIES
# The kinds a `Penalty` can have: every registered name but "none" (no penalty at all).
QUADRATIC_KINDS = tuple(k for k in PENALTY_KINDS if k != "none")


class PenaltyError(ModelsError):
    """A penalty was asked for with an unknown kind or a missing or inconsistent argument."""


def _tmap(fn: Any, *trees: Any) -> Any:
    return jax.tree_util.tree_map(fn, *trees)


def _tsum(tree: Any) -> jax.Array:
    return sum((jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(tree)), jnp.float32(0.0))


def _unknown(kind: str) -> PenaltyError:
    return PenaltyError(f"unknown penalty {kind!r}; choose one of {', '.join(PENALTY_KINDS)}")


@jax.tree_util.register_pytree_node_class
@dataclass(frozen=True)
class Penalty:
    """``lam/2 * sum w (theta - c)^2``; ``transform()`` for optax, ``value(params)`` for the loss.

    ``kind`` (ewc | fedprox | fedcurv) only names where ``weight`` and ``centre`` came from.
    """

    kind: str
    strength: Any
    weight: Params
    centre: Params

    def __post_init__(self) -> None:
        if self.kind not in QUADRATIC_KINDS:
            raise _unknown(self.kind)

    def tree_flatten(self) -> tuple[tuple[Any, ...], str]:
        return (self.strength, self.weight, self.centre), self.kind

    @classmethod
    def tree_unflatten(cls, kind: str, children: tuple[Any, ...]) -> Penalty:
        return cls(kind, *children)

    def value(self, params: Params) -> jax.Array:
        """The penalty term added to the reported loss."""
        # In this order jax.grad computes (lam * w) * (theta - c), bit-equal to the
        # hand-written EWC and FedProx gradients it replaced (test_penalties pins it).
        terms = _tmap(lambda t, w, c: w * (t - c) ** 2, params, self.weight, self.centre)
        return 0.5 * self.strength * _tsum(terms)

    def transform(self) -> optax.GradientTransformation:
        """The gradient transform to chain before the optimizer (`add_penalty`)."""
        return add_penalty(self)


def add_penalty(penalty: Penalty) -> optax.GradientTransformation:
    """A stateless transform that adds ``jax.grad(penalty.value)(params)`` to the gradient."""
    grad_fn = jax.grad(penalty.value)

    def init_fn(params: Params) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        if params is None:
            raise PenaltyError("penalty transforms need params: call update(g, state, params)")
        return _tmap(jnp.add, updates, grad_fn(params)), state

    return optax.GradientTransformation(init_fn, update_fn)


def _f32(tree: Params) -> Params:
    return _tmap(lambda a: jnp.asarray(a, jnp.float32), tree)


def _check_same_tree(name: str, tree: Params, like: Params) -> None:
    same = str(jax.tree_util.tree_structure(tree)) == str(jax.tree_util.tree_structure(like))
    if not same:
        raise PenaltyError(f"{name} must have the same tree structure as the anchor/params")
    for a, b in zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(like), strict=True):
        if jnp.shape(a) != jnp.shape(b):
            raise PenaltyError(f"{name} leaf has shape {jnp.shape(a)}, expected {jnp.shape(b)}")


def ewc(anchor: Params, fisher: Params, lam: float) -> Penalty:
    """EWC penalty around ``anchor`` weighted by the Fisher diagonal (Kirkpatrick et al. 2017)."""
    _check_same_tree("fisher", fisher, anchor)
    return Penalty("ewc", jnp.float32(lam), _f32(fisher), _f32(anchor))


def fedprox(anchor: Params, mu: float) -> Penalty:
    """FedProx proximal penalty around ``anchor`` (Li et al. 2020): unit weights."""
    centre = _f32(anchor)
    return Penalty("fedprox", jnp.float32(mu), _tmap(jnp.ones_like, centre), centre)


def fedcurv(u_others: Params, v_others: Params, lam: float) -> Penalty:
    """FedCurv penalty from the other clients' sums ``U - u_i``, ``V - v_i`` (Shoham 2019).

    Weight ``U'``, centre ``V' / U'`` (0 where ``U' = 0``: no curvature, no pull).
    """
    _check_same_tree("v_others", v_others, u_others)
    u, v = _f32(u_others), _f32(v_others)
    safe_u = _tmap(lambda a: jnp.where(a > 0, a, 1.0), u)
    centre = _tmap(lambda a, b, s: jnp.where(a > 0, b / s, 0.0), u, v, safe_u)
    return Penalty("fedcurv", jnp.float32(lam), u, centre)


def fedcurv_others(
    u_sum: Params, v_sum: Params, u_own: Params | None, v_own: Params | None
) -> tuple[Params, Params]:
    """Subtract this client's previous ``u_i``, ``v_i`` (None in its first round) from the sums."""
    if (u_own is None) != (v_own is None):
        raise PenaltyError("give both u_own and v_own, or neither")
    if u_own is None or v_own is None:
        return u_sum, v_sum
    _check_same_tree("u_own", u_own, u_sum)
    _check_same_tree("v_own", v_own, v_sum)
    # Clip at 0: float cancellation must not turn a sum of Fishers negative.
    u = _tmap(lambda a, b: jnp.maximum(a - b, 0.0), u_sum, u_own)
    return u, _tmap(jnp.subtract, v_sum, v_own)


def make_penalty(
    kind: str,
    *,
    anchor: Params | None = None,
    fisher: Params | None = None,
    lam: float = 0.0,
    mu: float = 0.0,
    u_others: Params | None = None,
    v_others: Params | None = None,
) -> Penalty | None:
    """Build the penalty named ``kind`` (none | ewc | fedprox | fedcurv); None for "none"."""
    if kind == "none":
        return None
    if kind == "ewc":
        if anchor is None or fisher is None:
            raise PenaltyError("ewc needs anchor and fisher (the base model and its Fisher)")
        return ewc(anchor, fisher, lam)
    if kind == "fedprox":
        if anchor is None:
            raise PenaltyError("fedprox needs anchor (the base model)")
        return fedprox(anchor, mu)
    if kind == "fedcurv":
        if u_others is None or v_others is None:
            raise PenaltyError("fedcurv needs u_others and v_others (see fedcurv_others)")
        return fedcurv(u_others, v_others, lam)
    raise _unknown(kind)
