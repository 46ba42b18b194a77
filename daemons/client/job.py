"""The client's training job, pure: base model + round config + local data -> update blob.

The round config read into `models.rounds`: its penalty (`local_penalty`), its local
training (`client_update`, the twin of the org's `server_update`). Runs in a worker thread;
the seed is derived from (seed, round, client), so a re-run of the same round trains to the
same parameters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import jax

from daemons.runtime.config import TrainingConfig
from daemons.wire.round_config import RoundConfig, RoundPrivacy
from models.codec import BlobMetadata, DecodedBlob, encode_blob
from models.data import Dataset
from models.dp import fresh_key, privatize_update
from models.fisher import fisher_diagonal
from models.rounds import PreviousUpdate, client_update, local_penalty
from models.schema import FederationSchema
from models.task import Task
from models.tasks.fashion_mnist import get_model
from models.training import OptimizerRecipe, TrainMetrics, params_to_numpy
from models.training_many import TrainJob


def train_seed(seed: int, round_id: int, client: str) -> int:
    """A 31-bit training seed unique to (federation seed, round, client)."""
    digest = hashlib.sha256(f"{seed}:{round_id}:{client.lower()}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def train_config(training: TrainingConfig, seed: int) -> OptimizerRecipe:
    """The optimizer recipe: every `[training]` field that `OptimizerRecipe` has, by name, + seed.

    By name rather than field by field, so a field added to both (e.g. `momentum`) can never
    be dropped on the way to the optimizer (tests/daemons/test_task_pin.py,
    `test_every_training_field_reaches_the_optimizer`).
    """
    wanted = {f.name for f in dataclasses.fields(OptimizerRecipe)} - {"seed"}
    given = {k: v for k, v in dataclasses.asdict(training).items() if k in wanted}
    return OptimizerRecipe(**given, seed=seed)


@dataclass(frozen=True)
class PreparedTraining:
    """Everything one client's training of a round needs, before it runs: the local job."""

    model: Any
    config: RoundConfig
    client: str
    seed: int
    job: TrainJob


def prepare_training(
    base: DecodedBlob,
    config: RoundConfig,
    data: Dataset,
    client: str,
    previous: PreviousUpdate | None = None,
    task: Task | None = None,
) -> PreparedTraining:
    """The model, seed, optimizer recipe and penalty of this client's round.

    `task` None: Fashion-MNIST's network `config.model` (a round config from an older org).
    """
    model: Any = task if task is not None else get_model(config.model)
    t = config.training
    seed = train_seed(config.seed, config.round_id, client)
    penalty = local_penalty(base.sections, t.penalty, t.ewc_lambda, t.fedprox_mu, previous)
    job = TrainJob(base.sections["params"], data, train_config(t, seed), penalty)
    return PreparedTraining(model, config, client, seed, job)


def train_update(
    base: DecodedBlob,
    base_cid: str,
    config: RoundConfig,
    data: Dataset,
    client: str,
    previous: PreviousUpdate | None = None,
    task: Task | None = None,
) -> bytes:
    """Train on `data` from the base model and encode the update blob.

    The update carries the Fisher diagonal only when the round config asks for it.
    """
    prep = prepare_training(base, config, data, client, previous, task)
    job = prep.job
    started = time.perf_counter()
    trained, metrics = client_update(prep.model, base.sections, job.data, job.config, job.penalty)
    trained = privatized(prep, trained)
    return encode_update(prep, base_cid, trained, metrics, time.perf_counter() - started)


def privatized(prep: PreparedTraining, trained: Any) -> Any:
    """`trained` with local DP applied if the round asks for it, else as is."""
    privacy = prep.config.privacy
    if privacy is not None and privacy.mode == "local":
        return _privatize(prep.job.params, trained, privacy)
    return trained


def encode_update(
    prep: PreparedTraining, base_cid: str, trained: Any, metrics: TrainMetrics, train_s: float
) -> bytes:
    """The update blob of trained params (+ the Fisher if the round config asks for it)."""
    config, t, data = prep.config, prep.config.training, prep.job.data
    started = time.perf_counter()
    fisher = None
    if config.fisher:
        fisher = fisher_diagonal(
            prep.model, trained, data, max_samples=t.fisher_samples, seed=prep.seed
        )
        fisher = jax.block_until_ready(fisher)
    facts = {"loss": metrics.loss, "train_s": train_s}
    if metrics.accuracy is not None:  # a regression task has none
        facts["accuracy"] = metrics.accuracy
    facts["fisher_s"] = time.perf_counter() - started
    if config.privacy is not None:  # loss and accuracy on private data are not DP: they stay here
        facts = {k: v for k, v in facts.items() if k not in ("loss", "accuracy")}
    meta = BlobMetadata(
        "update",
        config.round_id,
        prep.client,
        base_cid,
        len(data),
        config.model,
        train_metrics=facts,
    )
    schema = FederationSchema.of(trained, t.penalty, "fedavg")
    params = params_to_numpy(trained)
    fisher_np = None if fisher is None else params_to_numpy(fisher)
    return encode_blob(schema.update_sections(params, fisher_np), meta)


def _privatize(base_params: Any, trained: Any, privacy: RoundPrivacy) -> Any:
    """Local DP: clip this client's change and add its own noise, from a key nobody else has
    (McMahan et al. 2018's mechanism, run by the client; see models.dp)."""
    noisy, _ = privatize_update(
        base_params, trained, privacy.clip_norm, privacy.noise_multiplier, fresh_key()
    )
    return noisy
