"""The round config pins the task; a client with another task refuses; momentum reaches optax."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import jax
import numpy as np
import pytest

from contracts.events import LogMeta, RoundOpened
from daemons.client.job import train_config, train_update
from daemons.runtime.config import TrainingConfig
from daemons.runtime.task_setup import TaskMismatch, client_task
from daemons.wire.round_config import RoundConfig, decode_round_config, encode_round_config
from models.codec import BlobMetadata, decode_blob, encode_blob
from models.tasks import get_task, task_identity
from models.training import OptimizerRecipe, params_to_numpy
from tests.daemons.fakes import FakeChain, FakeStorage
from tests.daemons.test_client_rounds import ME, dataset, make_client

pytestmark = pytest.mark.timeout(120)
LOGREG = get_task("fashion_mnist", "logreg")


def pinned(**changes: object) -> dict[str, object]:
    return {**task_identity(LOGREG, "fashion_mnist"), **changes}


async def open_pinned(chain: FakeChain, storage: FakeStorage, task: object) -> RoundOpened:
    params = params_to_numpy(LOGREG.init(jax.random.PRNGKey(0)))
    zeros = jax.tree_util.tree_map(np.zeros_like, params)
    base = await storage.put(
        encode_blob(
            {"params": params, "fisher": zeros}, BlobMetadata("model", 0, "o", "", 0, "logreg")
        )
    )
    training = TrainingConfig(epochs=1, batch_size=10, fisher_samples=20)
    rc = RoundConfig(1, "logreg", 7, training, task=task)  # type: ignore[arg-type]
    cfg = await storage.put(encode_round_config(rc))
    r = chain.start_round(base.cid, base.digest, 2000, cfg.cid)
    info = chain.rounds[r]
    return RoundOpened(
        r, info.base_cid, info.base_digest, 2000, 1, 3, cfg.cid, LogMeta(1, "0x0", "0x1", 0)
    )


def test_round_config_carries_the_task_identity() -> None:
    ident = pinned()
    assert ident["template"]["out/w"] == {"shape": [784, 10], "dtype": "float32"}  # type: ignore[index]
    rc = RoundConfig(3, "logreg", 1, TrainingConfig(momentum=0.9), task=ident)
    back = decode_round_config(encode_round_config(rc))
    assert back == rc and back.training.momentum == 0.9
    # an older org's config: no task, no momentum key -> today's behaviour
    old = json.loads(encode_round_config(RoundConfig(3, "2nn", 1, TrainingConfig())))
    assert "task" not in old and "momentum" not in old["training"]
    assert decode_round_config(json.dumps(old).encode()).task is None
    with pytest.raises(Exception, match="task must be an object with keys"):
        decode_round_config(json.dumps({**old, "task": {"name": "x"}}).encode())


def test_client_task_checks_name_digest_and_template() -> None:
    assert client_task("fashion_mnist", None, "cnn").model == "cnn"  # unpinned: as before
    assert client_task("fashion_mnist", pinned(), "logreg") is LOGREG
    with pytest.raises(TaskMismatch, match="set \\[data\\] task = 'breast_cancer'"):
        client_task("fashion_mnist", pinned(name="breast_cancer"), "logreg")
    other = "ab" * 32
    with pytest.raises(TaskMismatch) as err:
        client_task("fashion_mnist", pinned(digest=other), "logreg")
    mine = task_identity(LOGREG)["digest"]
    assert other in str(err.value) and mine in str(err.value) and "install" in str(err.value)
    bad_template = pinned(template={"out/w": {"shape": [1], "dtype": "float32"}})
    with pytest.raises(TaskMismatch, match="another parameter template"):
        client_task("fashion_mnist", bad_template, "logreg")


async def test_client_trains_on_a_matching_pin(tmp_path: Path) -> None:
    client, chain, storage, _ = make_client(tmp_path)
    await client.on_round_opened(await open_pinned(chain, storage, pinned()))
    assert (1, ME) in chain.submitted


async def test_client_refuses_to_train_on_another_task_digest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, chain, storage, _ = make_client(tmp_path)
    caplog.set_level(logging.ERROR, "fedchain.client")
    await client.on_round_opened(await open_pinned(chain, storage, pinned(digest="cd" * 32)))
    assert chain.submitted == {} and chain.sent == []
    assert any(
        "task_mismatch" in str(r.__dict__) and "cd" * 32 in str(r.__dict__) for r in caplog.records
    )


def test_every_training_field_reaches_the_optimizer() -> None:
    shared = {f.name for f in dataclasses.fields(OptimizerRecipe)} - {"seed"}
    assert shared <= {f.name for f in dataclasses.fields(TrainingConfig)}  # nothing dropped
    t = TrainingConfig(epochs=2, batch_size=5, learning_rate=0.2, optimizer="sgd", momentum=0.9)
    assert train_config(t, 11) == OptimizerRecipe(2, 5, 0.2, "sgd", 0.9, 11)


def test_momentum_changes_what_a_client_trains() -> None:
    params = params_to_numpy(LOGREG.init(jax.random.PRNGKey(0)))
    blob = encode_blob({"params": params}, BlobMetadata("model", 0, "o", "", 0, "logreg"))
    base = decode_blob(blob)
    trained = []
    for momentum in (0.0, 0.9):
        t = TrainingConfig(epochs=2, batch_size=10, penalty="none", momentum=momentum)
        rc = RoundConfig(1, "logreg", 7, t, fisher=False)
        update = decode_blob(train_update(base, "cid", rc, dataset(), ME, None, LOGREG))
        trained.append(update.sections["params"]["out"]["w"])
    assert not np.allclose(trained[0], trained[1])
