"""Adapters: a Flax (linen or nnx) or Equinox model as a Task's plain ``init`` / ``apply``.

fedchain federates a nested dict of float32 arrays; these turn a framework's parameters into
one (and back inside ``apply``), so a user keeps writing the model the way they know. The
libraries are optional extras (``pip install 'fedchain[flax]'`` / ``'fedchain[equinox]'``),
imported only when an adapter is called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from models.task import InputSpec
from models.types import ModelsError, Params, PRNGKey

InitApply = tuple[Callable[[PRNGKey], Params], Callable[[Params, jax.Array], jax.Array]]


def _require(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModelsError(
            f"this task's model is written with {module.split('.')[0]}, which is not installed: "
            f"pip install 'fedchain[{extra}]'"
        ) from None


def _segment(entry: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _names(tree: Any) -> list[str]:
    """Dotted, '/'-free names of a pytree's leaves, in ``tree_flatten`` order."""
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    segments = [[_segment(e) for e in path] for path, _ in paths]
    segments = [s[:-1] if len(s) > 1 and s[-1] == "value" else s for s in segments]  # nnx
    names = [".".join(s).replace("/", "_") or "param" for s in segments]
    if len(set(names)) != len(names):
        raise ModelsError(f"parameter names are not unique after flattening: {names[:8]}")
    return names


def _flat_dict(names: list[str], leaves: list[Any]) -> Params:
    return {name: jnp.asarray(leaf, jnp.float32) for name, leaf in zip(names, leaves, strict=True)}


def linen(module: Any, input_spec: InputSpec) -> InitApply:
    """``init`` / ``apply`` of a ``flax.linen.Module`` called as ``module(x)`` on a batch.

    Only the ``params`` collection is federated; a module with other variable collections
    (e.g. ``batch_stats``) is refused, since clients could not agree on them.
    """
    core = _require("flax.core", "flax")
    dummy = jnp.zeros((1, *input_spec.x_shape), input_spec.x_dtype)

    def init(rng: PRNGKey) -> Params:
        variables = core.unfreeze(module.init(rng, dummy))
        extra = sorted(set(variables) - {"params"})
        if extra:
            raise ModelsError(f"linen module has variable collections {extra}; only params")
        return dict(variables["params"])

    def apply(params: Params, x: jax.Array) -> jax.Array:
        return module.apply({"params": params}, x)

    return init, apply


def nnx(make_module: Callable[[Any], Any]) -> InitApply:
    """``init`` / ``apply`` of a ``flax.nnx.Module`` built by ``make_module(rngs)``.

    Its ``nnx.Param`` state is federated (as a flat dict of dotted names); any other state
    (RNG counters, batch statistics) is refused.
    """
    nnx_ = _require("flax.nnx", "flax")
    abstract = nnx_.eval_shape(lambda: make_module(nnx_.Rngs(0)))
    graphdef, state, *rest = nnx_.split(abstract, nnx_.Param, ...)
    if any(jax.tree_util.tree_leaves(r) for r in rest):
        raise ModelsError("the nnx module has state other than nnx.Param; only params federate")
    names, treedef = _names(state), jax.tree_util.tree_structure(state)

    def init(rng: PRNGKey) -> Params:
        module = make_module(nnx_.Rngs(rng))
        params = nnx_.split(module, nnx_.Param, ...)[1]
        return _flat_dict(names, jax.tree_util.tree_leaves(params))

    def apply(params: Params, x: jax.Array) -> jax.Array:
        state = jax.tree_util.tree_unflatten(treedef, [params[n] for n in names])
        return nnx_.merge(graphdef, state, *rest)(x)

    return init, apply


def equinox(make_module: Callable[[PRNGKey], Any], batched: bool = False) -> InitApply:
    """``init`` / ``apply`` of an ``equinox.Module`` built by ``make_module(key)``.

    Its array leaves are federated (a flat dict of dotted names); the rest stays static.
    Equinox modules act on one example, so ``apply`` vmaps it over the batch unless
    ``batched`` says the module already takes a batch.
    """
    eqx = _require("equinox", "equinox")
    is_array = lambda a: isinstance(a, jax.Array | jax.ShapeDtypeStruct)  # noqa: E731
    abstract = eqx.filter_eval_shape(make_module, jax.random.PRNGKey(0))
    params_abs, static = eqx.partition(abstract, is_array)
    names, treedef = _names(params_abs), jax.tree_util.tree_structure(params_abs)

    def init(rng: PRNGKey) -> Params:
        params = eqx.partition(make_module(rng), eqx.is_array)[0]
        return _flat_dict(names, jax.tree_util.tree_leaves(params))

    def apply(params: Params, x: jax.Array) -> jax.Array:
        arrays = jax.tree_util.tree_unflatten(treedef, [params[n] for n in names])
        model = eqx.combine(arrays, static)
        return model(x) if batched else jax.vmap(model)(x)

    return init, apply
