"""A hosted client's round handling: the single client's, with the base model validated once
per host (every client of a host gets the same bytes in a round; decoding and checking an
800 kB 2nn blob costs ~35 ms, 50 clients ~2 s of the event loop)."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

from daemons.client.rounds import ClientRounds
from daemons.wire.round_config import RoundConfig
from models.codec import DecodedBlob
from models.task import Task

KEEP_BASES = 2


class SharedBases:
    """Validated base models by (bytes' sha256, task, model, penalty, size cap); a few kept."""

    def __init__(self, keep: int = KEEP_BASES) -> None:
        self.keep = keep
        self.validations = 0  # tests
        self._known: OrderedDict[tuple[Any, ...], DecodedBlob] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> DecodedBlob | None:
        return self._known.get(key)

    def put(self, key: tuple[Any, ...], blob: DecodedBlob) -> None:
        self.validations += 1
        self._known[key] = blob
        while len(self._known) > self.keep:
            self._known.popitem(last=False)


class HostedRounds(ClientRounds):
    """`ClientRounds` whose base-model validation is shared with the other clients of a host."""

    bases: SharedBases

    def _base(self, data: bytes, config: RoundConfig, task: Task) -> DecodedBlob:
        limit = self.cfg.ipfs.max_blob_bytes
        reader = None if self.member_key is None else bytes(self.member_key.public_key)
        key = (  # a sealed model is opened by each member with its own key: never shared
            reader,
            hashlib.sha256(data).digest(),
            id(task),
            config.model,
            config.training.penalty,
            limit,
        )
        known = self.bases.get(key)
        if known is None:
            known = super()._base(data, config, task)  # a rejection raises here, per client
            self.bases.put(key, known)
        return known
