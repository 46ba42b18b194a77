"""Per-class accuracy of a classifier: which labels a model gets right, not only how many.

A federation's overall accuracy hides a class the model forgot (non-IID splits, continual
tasks); the org records this breakdown in each round's manifest for the report. The outputs
come from `models.evaluate.predict`, the same jitted pass the task's metrics use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.data import Dataset
from models.evaluate import predict
from models.networks import Model
from models.task import Task
from models.types import Params


@dataclass(frozen=True)
class PerClass:
    """Correct predictions and samples per label (index = class id)."""

    correct: tuple[int, ...]
    num_samples: tuple[int, ...]

    @property
    def accuracy(self) -> tuple[float | None, ...]:
        """Correct / samples per class; None for a class absent from the data."""
        pairs = zip(self.correct, self.num_samples, strict=True)
        return tuple(c / n if n else None for c, n in pairs)


def is_classification(data: Dataset) -> bool:
    """Integer labels mean a classification task (regression targets are floats)."""
    return bool(np.issubdtype(np.asarray(data.y).dtype, np.integer))


def per_class_accuracy(
    model: Model | Task,
    params: Params,
    data: Dataset,
    batch_size: int = 1000,
    num_classes: int = 0,
) -> PerClass:
    """Count correct argmax predictions per true label.

    `num_classes` 0 means: as many as the outputs' last axis (or the highest label + 1).
    """
    y = np.asarray(data.y).astype(np.int64).reshape(-1)
    if not len(y):
        return PerClass((0,) * num_classes, (0,) * num_classes)
    outputs, _ = predict(model, params, data, batch_size)
    pred = np.argmax(outputs.reshape(len(y), -1), axis=-1)
    k = max(num_classes, outputs.reshape(len(y), -1).shape[-1], int(y.max()) + 1)
    correct = np.bincount(y[pred == y], minlength=k)[:k]
    counts = np.bincount(y, minlength=k)[:k]
    return PerClass(tuple(int(c) for c in correct), tuple(int(n) for n in counts))
