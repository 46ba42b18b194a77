"""A user's task written with Equinox: regression on the diabetes data with EWC.

Run it on the local testnet from the repository root (examples/ is on the path there):

    fedchain testnet up --task examples.equinox_task:task --clients 3 --rounds 5 \\
        --epochs 5 --batch-size 16 --learning-rate 0.05 --penalty ewc --ewc-lambda 1

MSE loss, and the unit-Gaussian log-likelihood for the Fisher that EWC weighs the penalty
with; RMSE (the headline) and MAE in the target's units.
"""

from __future__ import annotations

import equinox as eqx
import jax

from models import adapters
from models.task import InputSpec, Task, gaussian_log_likelihood, squared_error
from models.tasks.tabular import regression_metrics
from models.tasks.tabular import source as tabular_source

FEATURES = 10


def make_mlp(key: jax.Array) -> eqx.nn.MLP:
    """10 -> 32 -> 1, tanh hidden layer; acts on one example (the adapter vmaps it)."""
    return eqx.nn.MLP(FEATURES, 1, width_size=32, depth=1, activation=jax.nn.tanh, key=key)


def source(path: str | None) -> tuple:
    """The whole (train, test) data set; here scikit-learn's diabetes data, standardised."""
    return tabular_source("diabetes", path)


init, apply = adapters.equinox(make_mlp)
task = Task(
    name="equinox_diabetes",
    init=init,
    apply=apply,
    input_spec=InputSpec((FEATURES,), "float32", (), "float32"),
    loss=squared_error,
    log_likelihood=gaussian_log_likelihood,
    metrics=regression_metrics,
    source=source,
    classification=False,
    model_name="eqx_mlp",
)
