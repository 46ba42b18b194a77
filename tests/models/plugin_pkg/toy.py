"""A user task: 3-feature linear regression, written against the Task API alone."""

import jax
import jax.numpy as jnp
import numpy as np

from models.data import Dataset
from models.strategies.base import aggregate_with
from models.strategies.fedavg import combine_fedavg
from models.task import InputSpec, Task, gaussian_log_likelihood, regression_metrics, squared_error


def init(rng: jax.Array) -> dict:
    return {"w": jax.random.normal(rng, (3, 1), jnp.float32) * 0.1, "b": jnp.zeros((1,))}


def apply(params: dict, x: jax.Array) -> jax.Array:
    return x @ params["w"] + params["b"]


def source(path: str | None) -> tuple[Dataset, Dataset]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3).astype(np.float32)
    return Dataset(x[:160], y[:160]), Dataset(x[160:], y[160:])


task = Task(
    name="toy",
    init=init,
    apply=apply,
    input_spec=InputSpec((3,), "float32", (), "float32"),
    loss=squared_error,
    log_likelihood=gaussian_log_likelihood,
    metrics=regression_metrics,
    source=source,
    classification=False,
)


def make(model: str = "toy") -> Task:
    """A factory: the config's model name picks the variant."""
    return task


not_a_task = 42


def bad_init(rng: jax.Array) -> dict:
    return {"w": jnp.zeros((2,), jnp.int32)}


int_params = Task("bad", bad_init, apply, InputSpec((3,)))


class MeanStrategy:
    """FedAvg under another name; says it reads the Fisher (so clients must send it)."""

    uses_fisher = True
    name = "mean"

    def init(self, base_params: dict) -> dict:
        return {}

    def aggregate(self, base_params: dict, updates: list, state: dict | None = None) -> object:
        return aggregate_with(base_params, updates, combine_fedavg)
