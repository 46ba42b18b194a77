"""Tabular built-in tasks on data sets that ship with scikit-learn (the ``tabular`` extra).

- ``breast_cancer``: Wisconsin diagnostic data (569 patients, 30 features, benign/malignant),
  cross-silo: a few "hospitals" with label-skewed shares; logistic regression or a one-hidden-
  layer MLP; accuracy (headline) and ROC AUC.
- ``diabetes``: Efron et al. 2004 (442 patients, 10 features, disease progression after a
  year); linear model or MLP on the standardised target, MSE loss with the unit-Gaussian
  log-likelihood for EWC's Fisher; RMSE (headline) and MAE in the target's own units.

Features (and the diabetes target) are standardised with the training split's mean and
standard deviation, the one preprocessing step the members of a consortium agree on up front.
The train/test split is a fixed seeded 80/20 shuffle.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from models.data import Dataset
from models.networks import dense_model, dense_stack_init
from models.task import InputSpec, Task, gaussian_log_likelihood, squared_error
from models.types import ModelsError

SPLIT_SEED = 0
TEST_SHARE = 0.2
HIDDEN = 32


def _sklearn_datasets() -> Any:
    try:
        from sklearn import datasets
    except ImportError:
        raise ModelsError(
            "the breast_cancer and diabetes tasks read their data from scikit-learn, which is "
            "not installed: pip install 'fedchain[tabular]' (or scikit-learn)"
        ) from None
    return datasets


@functools.cache
def _raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(x float64, y) of the scikit-learn data set, in its shipped order."""
    datasets = _sklearn_datasets()
    loader = datasets.load_breast_cancer if name == "breast_cancer" else datasets.load_diabetes
    bunch = loader()
    return np.asarray(bunch.data, np.float64), np.asarray(bunch.target)


@functools.cache
def _splits(name: str) -> tuple[Dataset, Dataset, float, float]:
    """Standardised (train, test) and the target's (mean, std) (0, 1 for classes)."""
    x, y = _raw(name)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    n_test = round(TEST_SHARE * len(y))
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    mean, std = x[train_idx].mean(axis=0), x[train_idx].std(axis=0)
    xs = ((x - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)
    if name == "breast_cancer":
        ys, y_mean, y_std = y.astype(np.int32), 0.0, 1.0
    else:
        y_mean, y_std = float(y[train_idx].mean()), float(y[train_idx].std())
        ys = ((y - y_mean) / y_std).astype(np.float32)
    train = Dataset(xs[train_idx], ys[train_idx])
    test = Dataset(xs[test_idx], ys[test_idx])
    return train, test, y_mean, y_std


def source(name: str, path: str | None) -> tuple[Dataset, Dataset]:
    """The whole standardised (train, test) data set (it ships with scikit-learn: no path)."""
    if path:
        raise ModelsError(f"task {name!r} reads its data from scikit-learn; give no --data path")
    train, test, _, _ = _splits(name)
    return train, test


def roc_auc(scores: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos n_neg)), ties counted half."""
    pos, neg = scores[y == 1], scores[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="stable")
    values = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(values))
    i = 0
    while i < len(values):  # average ranks over ties
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2.0 + 1.0
        i = j + 1
    pos_ranks = np.empty(len(values))
    pos_ranks[order] = ranks
    u = pos_ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def classification_metrics(outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy (headline) and ROC AUC of the malignant-vs-benign logit margin."""
    accuracy = float(np.mean(np.argmax(outputs, axis=-1) == y))
    margin = outputs[:, 1].astype(np.float64) - outputs[:, 0]
    return {"accuracy": accuracy, "roc_auc": roc_auc(margin, y)}


def regression_metrics(outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """RMSE (headline) and MAE in the target's units (the standardisation undone)."""
    _, _, _, y_std = _splits("diabetes")
    diff = (outputs.reshape(len(y)).astype(np.float64) - y) * y_std
    return {"rmse": float(np.sqrt(np.mean(diff**2))), "mae": float(np.mean(np.abs(diff)))}


def _network(name: str, model: str, features: int, outputs: int) -> Any:
    sizes: tuple[int, ...] = (features, outputs)
    layers: tuple[str, ...] = ("out",)
    if model not in ("logreg", "linear"):
        sizes, layers = (features, HIDDEN, outputs), ("fc1", "out")
    return dense_model(model, dense_stack_init(sizes, layers), layers, (features,))


def make_task(name: str, model: str) -> Task:
    """The built-in tabular task ``name`` with network ``model``."""
    features = _raw(name)[0].shape[1]
    if name == "breast_cancer":
        net = _network(name, model, features, 2)
        return Task(
            name=name,
            init=net.init,
            apply=net.apply,
            input_spec=InputSpec((features,), "float32", (), "int32"),
            metrics=classification_metrics,
            source=functools.partial(source, name),
            apply_with_taps=net.apply_with_taps,
            num_classes=2,
            model_name=model,
            module=__name__,
        )
    net = _network(name, model, features, 1)
    return Task(
        name=name,
        init=net.init,
        apply=net.apply,
        input_spec=InputSpec((features,), "float32", (), "float32"),
        loss=squared_error,
        log_likelihood=gaussian_log_likelihood,
        metrics=regression_metrics,
        source=functools.partial(source, name),
        apply_with_taps=net.apply_with_taps,
        classification=False,
        model_name=model,
        module=__name__,
    )
