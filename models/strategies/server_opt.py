"""Adaptive server optimizers on the FedAvg pseudo-gradient (Reddi et al. 2021), via optax.

Each round: Δ = base − FedAvg(updates) is treated as a gradient and fed to an optax optimizer
(FedAdam: adam, FedYogi: yogi, FedAvgM: sgd with momentum). optax's adam and yogi include
bias correction, which the paper omits (it fades after a few rounds); yogi's moments start
at 0 (optax's default seeds both with 1e-6, which would move the model with a zero
pseudo-gradient). The optimizer state is returned as a nested dict of arrays (named after its optax
path) so the org can store it in its model blob under `server_state/`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from models import pytree
from models.errors import StrategyError
from models.strategies.base import AggregateResult, ClientUpdate, Params
from models.strategies.fedavg import FedAvg

SERVER_OPTIMIZERS = ("fedadam", "fedyogi", "fedavgm")
DEFAULT_SERVER_LR = {"fedadam": 0.01, "fedyogi": 0.01, "fedavgm": 1.0}


def _path_name(path: Sequence[Any]) -> str:
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
    return pytree.SEP.join(parts)


def state_to_tree(opt_state: Any) -> Params:
    """An optax state as a nested dict of numpy arrays, keyed by its pytree path."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(opt_state)
    return pytree.unflatten({_path_name(path): np.asarray(leaf) for path, leaf in leaves})


def tree_to_state(template: Any, tree: Params) -> Any:
    """Rebuild an optax state shaped like `template` from `state_to_tree`'s output."""
    flat = pytree.flatten(tree)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    restored = []
    for path, leaf in leaves:
        name = _path_name(path)
        if name not in flat or np.shape(flat[name]) != np.shape(leaf):
            raise StrategyError(
                f"server state lacks {name!r} (or its shape differs from the model)"
            )
        restored.append(jnp.asarray(flat[name], dtype=jnp.result_type(leaf)))
    if len(flat) != len(restored):
        raise StrategyError(f"server state has {len(flat)} arrays, the optimizer {len(restored)}")
    return jax.tree_util.tree_unflatten(treedef, restored)


@functools.lru_cache(maxsize=32)
def _stepper(optimizer: ServerOptimizer) -> Callable[..., tuple[Any, Any]]:
    """One jitted server step per optimizer configuration (equal configs share it)."""
    tx = optimizer.tx

    def step(base: Any, average: Any, opt_state: Any) -> tuple[Any, Any]:
        pseudo_grad = jax.tree_util.tree_map(jnp.subtract, base, average)
        updates, new_state = tx.update(pseudo_grad, opt_state, base)
        return optax.apply_updates(base, updates), new_state

    return jax.jit(step)


@dataclass(frozen=True)
class ServerOptimizer:
    """FedAdam / FedYogi / FedAvgM (Reddi et al. 2021; Hsu et al. 2019 for FedAvgM)."""

    name: str = "fedadam"
    server_lr: float | None = None
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    momentum: float = 0.9

    def __post_init__(self) -> None:
        if self.name not in SERVER_OPTIMIZERS:
            raise StrategyError(f"server optimizer {self.name!r} is not one of {SERVER_OPTIMIZERS}")
        if self.server_lr is not None and not self.server_lr > 0:
            raise StrategyError(f"{self.name} server_lr must be > 0, got {self.server_lr}")

    @property
    def tx(self) -> optax.GradientTransformation:
        """The optax optimizer applied to the pseudo-gradient."""
        lr = self.server_lr if self.server_lr is not None else DEFAULT_SERVER_LR[self.name]
        if self.name == "fedadam":
            return optax.adam(lr, b1=self.beta1, b2=self.beta2, eps=self.tau)
        if self.name == "fedyogi":
            # optax seeds both moments with 1e-6; the paper starts the first one at 0.
            yogi = optax.scale_by_yogi(
                b1=self.beta1, b2=self.beta2, eps=self.tau, initial_accumulator_value=0.0
            )
            return optax.chain(yogi, optax.scale(-lr))
        return optax.sgd(lr, momentum=self.momentum or None)

    def init(self, base_params: Params) -> Params:
        """Fresh optimizer state for `base_params`, as a codec-storable tree."""
        return state_to_tree(self.tx.init(_f32(base_params)))

    def aggregate(
        self, base_params: Params, updates: Sequence[ClientUpdate], state: Params | None = None
    ) -> AggregateResult | None:
        """One server step from base toward the FedAvg of `updates`; state None = fresh."""
        average = FedAvg().aggregate(base_params, updates)
        if average is None:
            return None
        base = _f32(base_params)
        template = self.tx.init(base)
        opt_state = tree_to_state(template, state) if state else template
        new_params, new_state = _stepper(self)(base, _f32(average.params), opt_state)
        params = pytree.map_leaves(np.asarray, new_params)
        return dataclasses.replace(average, params=params, state=state_to_tree(new_state))


def _f32(tree: Params) -> Params:
    return pytree.map_leaves(lambda a: jnp.asarray(a, dtype=jnp.float32), tree)
