"""The Task: everything fedchain needs to federate one problem (model, data, loss, metrics).

A user writes one module with a ``Task`` and names it in config (``[federation] task =
"my_pkg.my_task:task"``); the daemons, validation, EWC/FedCurv, strategies and the report run
on it unchanged. Shaped like fedjax's ``Model`` (init / apply / per-example loss / metrics as
plain functions) so nothing here knows a framework; ``models.adapters`` turns a Flax or
Equinox module into ``init`` / ``apply``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from models import data as datalib
from models.data import DataError, Dataset, Split, split_on_labels
from models.networks import Model, TappedApply
from models.types import Params, PRNGKey

PerExample = Callable[[jax.Array, jax.Array], jax.Array]
"""``(outputs, y) -> (N,)``: one value per example of a batch."""
Metrics = Callable[[np.ndarray, np.ndarray], dict[str, float]]
"""``(outputs, y) -> {name: value}`` over a whole evaluation set (host numpy arrays)."""


def softmax_cross_entropy(outputs: jax.Array, y: jax.Array) -> jax.Array:
    """Per-example cross-entropy of logits against integer class labels (the default loss)."""
    return optax.softmax_cross_entropy_with_integer_labels(outputs, y)


def squared_error(outputs: jax.Array, y: jax.Array) -> jax.Array:
    """Per-example squared error summed over output dimensions (MSE loss for regression)."""
    diff = outputs.reshape(outputs.shape[0], -1) - y.reshape(y.shape[0], -1)
    return jnp.sum(jnp.square(diff), axis=-1)


def gaussian_log_likelihood(outputs: jax.Array, y: jax.Array) -> jax.Array:
    """``log N(y | outputs, 1)`` up to a constant: the likelihood EWC's Fisher uses for MSE."""
    return -0.5 * squared_error(outputs, y)


def accuracy_metrics(outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Classification default: the share of argmax predictions equal to the label."""
    return {"accuracy": float(np.mean(np.argmax(outputs, axis=-1) == y))}


def regression_metrics(outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Regression default: root mean squared error (headline) and mean absolute error."""
    diff = outputs.reshape(len(y), -1).astype(np.float64) - y.reshape(len(y), -1)
    return {"rmse": float(np.sqrt(np.mean(diff**2))), "mae": float(np.mean(np.abs(diff)))}


@dataclass(frozen=True)
class InputSpec:
    """Shape (without the batch axis) and dtype of one example's input ``x`` and label ``y``."""

    x_shape: tuple[int, ...]
    x_dtype: str = "float32"
    y_shape: tuple[int, ...] = ()
    y_dtype: str = "int32"

    def conform(self, ds: Dataset, where: str = "dataset") -> Dataset:
        """``ds`` with the spec's dtypes, or a DataError naming the shape or dtype that differs."""
        x, y = _cast(ds.x, self.x_dtype, "x", where), _cast(ds.y, self.y_dtype, "y", where)
        if tuple(x.shape[1:]) != tuple(self.x_shape):
            raise DataError(
                f"{where}: x has shape {x.shape}, this task wants (N, {_dims(self.x_shape)})"
            )
        if tuple(y.shape[1:]) != tuple(self.y_shape):
            raise DataError(
                f"{where}: y has shape {y.shape}, this task wants (N, {_dims(self.y_shape)})"
            )
        return Dataset(x, y)


def _dims(shape: tuple[int, ...]) -> str:
    return ", ".join(str(d) for d in shape) or "-"


def _cast(array: np.ndarray, dtype: str, name: str, where: str) -> np.ndarray:
    if array.dtype == np.dtype(dtype):
        return array
    if not np.can_cast(array.dtype, np.dtype(dtype), "same_kind"):
        raise DataError(f"{where}: {name} has dtype {array.dtype}, this task wants {dtype}")
    return array.astype(dtype)


@dataclass(frozen=True, eq=False)
class Task:
    """One federated problem. Only ``name``, ``init``, ``apply`` and ``input_spec`` are required.

    - ``init(rng) -> params`` (a nested dict of float32 arrays), ``apply(params, x) ->
      outputs`` for a batch; plain JAX functions (``models.adapters`` wraps Flax/Equinox).
    - ``loss(outputs, y)`` per example (softmax cross-entropy by default);
      ``log_likelihood(outputs, y)`` per example, the ``log p(y | x)`` whose squared
      gradients are EWC/FedCurv's Fisher (default ``-loss``, exact for cross-entropy; use
      ``gaussian_log_likelihood`` with ``squared_error``).
    - ``metrics(outputs, y)`` over the whole evaluation set; the first entry is the headline
      shown in tables and plots; ``loss`` (mean) is added when absent.
    - ``load_data(path)`` for a client's data and ``load_eval(path)`` (default: the same) for
      the org's; ``source(path_or_None) -> (train, test)`` the full data set that
      ``fedchain data split`` and the testnet partition with ``split``.
    - ``apply_with_taps``: optional fast Fisher hook for dense-only networks (models/fisher.py).
    - ``classification``: labels are classes (accuracy in training metrics, label-skew splits).
    - ``heldout_sets() -> {name: Dataset}``: the forgetting ledger (continual learning), the
      held-out sets of earlier tasks or data the federation must not forget. The org
      evaluates every round's model on each and records it in the manifest; ``fedchain
      verify`` re-derives the sets with this same function (the round config pins the
      task's source sha256 and each set's digest) and re-evaluates them. It must return the
      same arrays on every call (load files, permute with a fixed seed; nothing random).
    """

    name: str
    init: Callable[[PRNGKey], Params]
    apply: Callable[[Params, jax.Array], jax.Array]
    input_spec: InputSpec
    loss: PerExample = softmax_cross_entropy
    log_likelihood: PerExample | None = None
    metrics: Metrics = accuracy_metrics
    load_data: Callable[[str], Dataset] = datalib.load_arrays
    load_eval: Callable[[str], Dataset] | None = None
    save_data: Callable[[str | os.PathLike[str], Dataset], None] = datalib.save_npz
    source: Callable[[str | None], tuple[Dataset, Dataset]] | None = None
    split: Split = split_on_labels
    apply_with_taps: TappedApply | None = None
    classification: bool = True
    num_classes: int = 0
    model_name: str = ""
    heldout_sets: Callable[[], Mapping[str, Dataset]] | None = None
    module: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str:
        """The model name blobs carry in their metadata (``model_name``, else ``name``)."""
        return self.model_name or self.name

    def nll(self, outputs: jax.Array, y: jax.Array) -> jax.Array:
        """Per-example negative log-likelihood (the Fisher's objective)."""
        if self.log_likelihood is None:
            return self.loss(outputs, y)
        return -self.log_likelihood(outputs, y)

    def read(self, path: str, role: str = "client") -> Dataset:
        """Load a client's (``role="client"``) or the org's (``"org"``) data and check it."""
        loader = self.load_eval if role == "org" and self.load_eval else self.load_data
        return self.input_spec.conform(loader(str(path)), f"{self.name} data {path}")

    def read_heldout(self) -> dict[str, Dataset]:
        """The task's forgetting-ledger sets, checked against ``input_spec`` ({} if none)."""
        if self.heldout_sets is None:
            return {}
        sets = self.heldout_sets()
        if not isinstance(sets, Mapping):
            raise DataError(
                f"task {self.name!r}: heldout_sets() must return {{name: Dataset}}, "
                f"got {type(sets).__name__}"
            )
        out = {}
        for name, ds in sorted(sets.items()):
            if not isinstance(name, str) or not name or "=" in name:
                raise DataError(
                    f"task {self.name!r}: held-out set name {name!r} must be a non-empty "
                    "string without '='"
                )
            if not isinstance(ds, Dataset) or len(ds) == 0:
                raise DataError(f"task {self.name!r}: held-out set {name!r} is not a Dataset")
            out[name] = self.input_spec.conform(ds, f"{self.name} held-out set {name!r}")
        return out


_AS_TASK: dict[int, tuple[Model, Task]] = {}


def as_task(model: Model | Task) -> Task:
    """A ``Task`` as is; a bare ``Model`` (logits for class labels) as a cross-entropy task.

    The same Model always maps to the same Task object, so jit caches keyed on it hold.
    """
    if isinstance(model, Task):
        return model
    hit = _AS_TASK.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1]
    task = Task(
        model.name,
        model.init,
        model.apply,
        InputSpec(tuple(model.input_shape)),
        apply_with_taps=model.apply_with_taps,
        model_name=model.name,
    )
    _AS_TASK[id(model)] = (model, task)
    return task
