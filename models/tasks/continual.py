"""Permuted Fashion-MNIST: the later task of a continual-learning pair, with its forgetting ledger.

Task A is Fashion-MNIST as it is; task B, the one this federation learns, is the same images
with one fixed pixel permutation (Goodfellow et al. 2013; benchmarks/forgetting.py's
``--task-b permute``). The federation starts from a model that already knows task A:
logistic regression whose weights are task A's class centroids (a nearest-centroid
classifier, computed in float64 from task A's training images: deterministic, no training,
so ``fedchain verify`` re-derives the round-1 base bit for bit). The task declares task A's
test set as its held-out set ``task-a``: every round's manifest records the model's metrics
on it, and forgetting shows as its accuracy falls while task B's (the eval set) rises.

Task A (the initial model and the held-out set) is always read from Fashion-MNIST's default
directory (``make setup``), so the org and every verifier derive the same arrays (the round
config pins their digest); ``source(path)`` may read task B's images from another directory.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

import models.tasks.fashion_mnist as fashion_mnist
from models import data as datalib
from models.data import Dataset
from models.task import Task
from models.types import ModelsError, Params, PRNGKey

NAME = "permuted_fashion_mnist"
PERMUTATION_SEED = 5  # the pixel permutation of task B
CENTROID_SCALE = 0.1  # logits = scale * (x . mu_c - |mu_c|^2 / 2): nearest centroid, tamer loss


@functools.cache
def _task_a() -> tuple[Dataset, Dataset]:
    """Task A's (train, test): Fashion-MNIST from its default directory, as loaded for clients."""
    train, test = fashion_mnist.source(None)
    return _images(train), _images(test)


def _images(ds: Dataset) -> Dataset:
    return Dataset(ds.x.reshape(-1, *fashion_mnist.INPUT_SHAPE), ds.y)


def permuted(ds: Dataset) -> Dataset:
    """Task B's version of ``ds``: the same images, pixels in one fixed order."""
    return datalib.permute_pixels(ds, PERMUTATION_SEED)


def source(path: str | None) -> tuple[Dataset, Dataset]:
    """Task B's whole (train, test) data set: the permuted Fashion-MNIST images."""
    train, test = _task_a() if path is None else fashion_mnist.source(path)
    return permuted(_images(train)), permuted(_images(test))


def heldout_sets() -> dict[str, Dataset]:
    """The forgetting ledger: task A's test set (the images before the permutation)."""
    return {"task-a": _task_a()[1]}


@functools.cache
def _centroid_params() -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias of the nearest-centroid classifier of task A's training images."""
    train, _ = _task_a()
    x = train.x.reshape(len(train), -1).astype(np.float64)
    classes = fashion_mnist.NUM_CLASSES
    means = np.stack([x[train.y == c].mean(axis=0) for c in range(classes)])  # (C, D)
    w = CENTROID_SCALE * means.T
    b = -0.5 * CENTROID_SCALE * np.sum(means**2, axis=1)
    return w.astype(np.float32), b.astype(np.float32)


def init(rng: PRNGKey) -> Params:
    """Round 0's model: what a federation on task A handed over (``rng`` is not needed)."""
    del rng
    w, b = _centroid_params()
    return {"out": {"w": jnp.asarray(w), "b": jnp.asarray(b)}}


@functools.cache
def make_task(model: str = "logreg") -> Task:
    """Permuted Fashion-MNIST (task B) from task A's model, with task A's test set held out."""
    if model != "logreg":
        raise ModelsError(f"task {NAME!r} has only the logreg model (task A's centroids)")
    net = fashion_mnist.get_network(model)
    return Task(
        name=NAME,
        init=init,
        apply=net.apply,
        input_spec=fashion_mnist.SPEC,
        load_data=fashion_mnist.load,
        save_data=fashion_mnist.save_uint8,
        source=source,
        apply_with_taps=net.apply_with_taps,
        num_classes=fashion_mnist.NUM_CLASSES,
        model_name=model,
        heldout_sets=heldout_sets,
        module=__name__,
    )
