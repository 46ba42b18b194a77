"""The org opens an encrypted update before validating it (docs/security.md).

Which rounds are encrypted is read from the round's own published config, not the org's
current file: that is what the clients were told, so a restart with an edited config cannot
turn a round's valid updates into rejections (or accept plaintext in an encrypted round).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nacl.public import PrivateKey

from contracts.state import RoundInfo
from daemons.errors import RejectedUpdate
from daemons.ipfs.blobs import BlobFetcher, raw_cid_digest
from daemons.org.ledger import Submission
from daemons.privacy.envelope import Binding, open_update
from daemons.privacy.policy import UpdateEncryption
from daemons.wire.round_config import decode_round_config

# what a sealed update's training facts may show in the public manifest: timings only
PUBLIC_TRAIN_KEYS = frozenset({"train_s", "fisher_s"})
CONFIG_MAX_BYTES = 1 << 20  # a round config is one small JSON block


def public_train(train: Mapping[str, float], sealed: bool) -> dict[str, float]:
    """The training facts the manifest may publish; a sealed update's loss and accuracy stay
    with the org (they describe the client's data as much as the update does)."""
    return {k: v for k, v in train.items() if not sealed or k in PUBLIC_TRAIN_KEYS}


@dataclass(frozen=True)
class Unsealer:
    """Opens a round's updates with the org's key, as that round's published config says."""

    blobs: BlobFetcher
    key: PrivateKey | None
    max_bytes: int  # an update's size cap ([ipfs] max_blob_bytes)

    async def round_encryption(self, info: RoundInfo) -> UpdateEncryption | None:
        """The round config's encryption entry (None: plaintext updates), from cache or IPFS."""
        digest = raw_cid_digest(info.config_cid)
        if digest is None:  # the org writes one raw block; anything else predates configs
            return None
        data = await self.blobs.get(info.config_cid, digest, CONFIG_MAX_BYTES)
        return decode_round_config(data).encryption

    async def plaintext(self, info: RoundInfo, sub: Submission, data: bytes) -> bytes:
        """The update blob to validate: `data` as is in a public round, else the opened envelope.

        Raises `RejectedUpdate` (an `EnvelopeRejected`) with a reason code for an envelope the
        org cannot open: wrong key, copied from another client, tampered, or not encrypted.
        """
        policy = await self.round_encryption(info)
        if policy is None:
            return data
        if self.key is None:
            raise RejectedUpdate(
                "not_recipient",
                "the round is encrypted but this org has no [encryption] key loaded",
            )
        binding = Binding(info.round_id, sub.client, info.base_cid)
        return open_update(data, self.key, binding, self.max_bytes, required=policy.recipients())
