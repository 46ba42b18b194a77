"""A user's task written with Flax: an MLP on the breast cancer data, as linen and as nnx.

Run it on the local testnet from the repository root (examples/ is on the path there):

    fedchain testnet up --task examples.flax_task:task --clients 4 --partition dirichlet \\
        --alpha 1.0 --rounds 5 --epochs 5 --batch-size 16 --learning-rate 0.05 --penalty none

``nnx_task`` is the same network written with ``flax.nnx``. The data is the Wisconsin
breast cancer set that scikit-learn ships, standardised (fedchain's built-in tabular source);
replace ``source`` with your own loader of ``(train, test)`` Datasets.
"""

from __future__ import annotations

import flax.linen as nn
import jax
from flax import nnx

from models import adapters
from models.task import InputSpec, Task
from models.tasks.tabular import classification_metrics
from models.tasks.tabular import source as tabular_source

FEATURES = 30
SPEC = InputSpec((FEATURES,), "float32", (), "int32")


class MLP(nn.Module):
    """30 -> 16 -> 2 logits."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.relu(nn.Dense(16)(x))
        return nn.Dense(2)(x)


class NnxMLP(nnx.Module):
    """The same network in flax.nnx."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(FEATURES, 16, rngs=rngs)
        self.out = nnx.Linear(16, 2, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jax.nn.relu(self.hidden(x)))


def source(path: str | None) -> tuple:
    """The whole (train, test) data set; here scikit-learn's breast cancer data."""
    return tabular_source("breast_cancer", path)


init, apply = adapters.linen(MLP(), SPEC)
task = Task(
    name="flax_breast_cancer",
    init=init,
    apply=apply,
    input_spec=SPEC,
    metrics=classification_metrics,  # accuracy first (the headline), then ROC AUC
    source=source,
    num_classes=2,
    model_name="flax_mlp",
)

nnx_init, nnx_apply = adapters.nnx(NnxMLP)
nnx_task = Task(
    name="nnx_breast_cancer",
    init=nnx_init,
    apply=nnx_apply,
    input_spec=SPEC,
    metrics=classification_metrics,
    source=source,
    num_classes=2,
    model_name="nnx_mlp",
)
