"""Per-class accuracy from hand-checkable predictions."""

from __future__ import annotations

from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np

from models.data import Dataset
from models.networks import Model
from models.per_class import is_classification, per_class_accuracy


def _fixed_model() -> Model:
    """Predicts class = the first pixel's value rounded (so the test picks each prediction)."""

    def apply(params: dict, x: jnp.ndarray) -> jnp.ndarray:
        guess = jnp.round(x[:, 0, 0, 0] * 2).astype(jnp.int32)
        return jnp.eye(3)[guess] + 0.0 * params["b"].sum()

    return Model("fixed", lambda rng: {"b": jnp.zeros(1)}, apply)


def test_counts_per_true_label() -> None:
    # labels 0 0 1 1 1 2; predictions 0 1 1 1 0 2 -> class 0: 1/2, class 1: 2/3, class 2: 1/1
    preds = np.array([0, 1, 1, 1, 0, 2], np.float32) / 2
    x = np.zeros((6, 28, 28, 1), np.float32)
    x[:, 0, 0, 0] = preds
    data = Dataset(x, np.array([0, 0, 1, 1, 1, 2], np.int32))
    model = _fixed_model()
    got = per_class_accuracy(model, {"b": jnp.zeros(1)}, data, batch_size=4)
    assert got.correct == (1, 2, 1) and got.num_samples == (2, 3, 1)
    assert got.accuracy == (0.5, 2 / 3, 1.0)
    # a class the data lacks is None, not 0
    wide = per_class_accuracy(model, {"b": jnp.zeros(1)}, data, num_classes=4)
    assert wide.accuracy[3] is None and wide.num_samples == (2, 3, 1, 0)
    assert is_classification(data)
    assert not is_classification(SimpleNamespace(y=np.array([0.5, 1.5])))  # type: ignore[arg-type]
