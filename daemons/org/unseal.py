"""The org opens an encrypted update before validating it (docs/security.md).

Which rounds are encrypted is read from the round's own published config, not the org's
current file: that is what the clients were told, so a restart with an edited config cannot
turn a round's valid updates into rejections (or accept plaintext in an encrypted round).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from contracts.state import RoundInfo
from daemons.errors import RejectedUpdate
from daemons.org.ledger import Submission
from daemons.ports import fetch, raw_cid_digest
from daemons.privacy.envelope import Binding, open_update
from daemons.privacy.policy import UpdateEncryption
from daemons.round_config import decode_round_config

if TYPE_CHECKING:
    from daemons.org.rounds import OrgRounds


# what a sealed update's training facts may show in the public manifest: timings only
PUBLIC_TRAIN_KEYS = frozenset({"train_s", "fisher_s"})


def public_train(train: Mapping[str, float], sealed: bool) -> dict[str, float]:
    """The training facts the manifest may publish; a sealed update's loss and accuracy stay
    with the org (they describe the client's data as much as the update does)."""
    return {k: v for k, v in train.items() if not sealed or k in PUBLIC_TRAIN_KEYS}


async def round_encryption(org: OrgRounds, info: RoundInfo) -> UpdateEncryption | None:
    """The round config's encryption entry (None: plaintext updates), from cache or IPFS."""
    digest = raw_cid_digest(info.config_cid)
    if digest is None:  # the org writes one raw block; anything else predates configs
        return None
    ipfs = org.cfg.ipfs
    data = await fetch(org.storage, org.cache, info.config_cid, digest, 1 << 20, ipfs.timeout_s)
    return decode_round_config(data).encryption


async def update_plaintext(org: OrgRounds, info: RoundInfo, sub: Submission, data: bytes) -> bytes:
    """The update blob to validate: `data` as is in a public round, else the opened envelope.

    Raises `RejectedUpdate` (an `EnvelopeRejected`) with a reason code for an envelope the
    org cannot open: wrong key, copied from another client, tampered, or not encrypted.
    """
    policy = await round_encryption(org, info)
    if policy is None:
        return data
    key = org.update_key
    if key is None:
        raise RejectedUpdate(
            "not_recipient", "the round is encrypted but this org has no [encryption] key loaded"
        )
    binding = Binding(info.round_id, sub.client, info.base_cid)
    max_bytes = org.cfg.ipfs.max_blob_bytes
    return open_update(data, key, binding, max_bytes, required=policy.recipients())
