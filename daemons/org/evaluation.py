"""What the org records about a round's evaluation beyond the headline metrics.

Per-class accuracy of the new model (classification tasks) and, for a round whose base is
round 0's initial model, the baseline: the initial model's metrics, so the report can show
how far training moved the federation from where it started.
"""

from __future__ import annotations

from typing import Any

from models.codec import DecodedBlob
from models.data import Dataset
from models.per_class import per_class_accuracy
from models.task import Task


def per_class(task: Task, params: Any, eval_data: Dataset) -> dict[str, list[Any]]:
    """`{"accuracy": [...], "num_samples": [...]}` by class id; {} for a non-classifier."""
    if not task.classification:
        return {}
    got = per_class_accuracy(task, params, eval_data, num_classes=task.num_classes)
    return {"accuracy": list(got.accuracy), "num_samples": list(got.num_samples)}


def baseline(
    base: DecodedBlob, task: Task, eval_data: Dataset, with_per_class: bool = True
) -> dict[str, Any]:
    """The initial model's metrics and per-class accuracy; {} unless `base` is round 0's."""
    if base.metadata.round_id != 0:
        return {}
    from daemons.org.model_step import eval_metrics

    params = base.sections["params"]
    doc: dict[str, Any] = {"metrics": eval_metrics(task, params, eval_data)}
    classes = per_class(task, params, eval_data) if with_per_class else {}
    if classes:
        doc["per_class"] = classes
    return doc


def round_extras(
    base: DecodedBlob, task: Task, params: Any, eval_data: Dataset, with_per_class: bool = True
) -> dict[str, Any]:
    """Manifest fields `per_class` and `baseline` (each left out when empty)."""
    classes = per_class(task, params, eval_data) if with_per_class else {}
    extras = {"per_class": classes, "baseline": baseline(base, task, eval_data, with_per_class)}
    return {k: v for k, v in extras.items() if v}
