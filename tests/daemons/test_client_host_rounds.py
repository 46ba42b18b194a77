"""Hosted clients (fakes for chain and IPFS, real JAX): one batch, one base validation, and
each client's update equal to what the single client daemon trains for it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import jax
import numpy as np
import pytest

from daemons.client.host_rounds import HostedRounds, SharedBases
from daemons.client.host_train import BatchTrainer
from daemons.ipfs.blobs import BlobCache
from daemons.runtime.metrics import Metrics
from models.codec import decode_blob
from tests.daemons.fakes import FakeChain, FakeStorage, MemKV
from tests.daemons.test_client_rounds import config, dataset, make_client, open_round

pytestmark = pytest.mark.timeout(180)
CLIENTS = ["0x" + f"{i:02X}" * 20 for i in (0xA1, 0xB2, 0xC3)]


@pytest.mark.parametrize(("mode", "tolerance"), [("loop", 0.0), ("vmap", 1e-6)])
async def test_hosted_clients_train_in_one_batch_as_they_would_alone(
    tmp_path: Path, mode: str, tolerance: float
) -> None:
    # "loop" trains each client exactly as the single daemon does: the same bits
    storage, bases, trainer = FakeStorage(), SharedBases(), BatchTrainer(gather_s=30, mode=mode)
    hosted, events = [], []
    for i, address in enumerate(CLIENTS):
        chain = FakeChain(address)
        rounds = HostedRounds(
            config(tmp_path / f"c{i}"),
            chain,
            storage,
            MemKV(),
            BlobCache(tmp_path / f"b{i}"),
            dataset(seed=i),
            Metrics("client"),
        )
        rounds.bases, rounds.trainer = bases, trainer.train
        hosted.append((rounds, chain))
        events.append(await open_round(chain, storage, deadline=2000))
    trainer.begin(len(hosted))

    async def one(rounds: HostedRounds, event) -> None:
        try:
            await rounds.on_round_opened(event)
        finally:
            trainer.finished()

    await asyncio.gather(*(one(r, e) for (r, _), e in zip(hosted, events, strict=True)))
    assert (trainer.batches, trainer.last_batch_size) == (1, 3)
    assert bases.validations == 1  # the same base bytes: validated once for all three
    for i, (_, chain) in enumerate(hosted):
        update = decode_blob(storage.blobs[chain.submitted[(1, CLIENTS[i])][0]])
        assert update.metadata.client == CLIENTS[i]
        solo, solo_chain, solo_storage, _ = make_client(tmp_path / f"solo{i}")
        solo_chain.address = CLIENTS[i]  # the seed is derived from the client's address
        solo.data = dataset(seed=i)
        await solo.on_round_opened(await open_round(solo_chain, solo_storage, deadline=2000))
        alone = decode_blob(solo_storage.blobs[solo_chain.submitted[(1, CLIENTS[i])][0]])
        for name in ("params", "fisher"):
            pairs = zip(
                jax.tree.leaves(update.sections[name]),
                jax.tree.leaves(alone.sections[name]),
                strict=True,
            )
            assert max(float(np.abs(a - b).max()) for a, b in pairs) <= tolerance, name
