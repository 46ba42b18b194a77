"""How the org publishes and re-reads its models: public, or sealed to the members.

`[encryption] models = "members"`: at start-up the org reads the members' key cards, checks
every one (signature by the card's own address over this chain id and contract, a client of
this federation; a bad card stops the org with exit 2 naming it), and from then on seals
every model to the card keys, the auditors and itself (docs/security.md, "Encrypted models").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from nacl.public import PrivateKey

from daemons.chain.port import Chain
from daemons.errors import ConfigError
from daemons.privacy.cards import KeyCard, read_cards, verified_cards
from daemons.privacy.envelope import EnvelopeRejected
from daemons.privacy.models import ModelEncryption, member_policy, open_model, seal_model
from daemons.runtime.config import DaemonConfig
from daemons.runtime.service import log_event

log = logging.getLogger("fedchain.org")


@dataclass(frozen=True)
class OrgModels:
    """The org's model publishing: `policy` None = public models (the default)."""

    contract: str = ""
    key: PrivateKey | None = None
    policy: ModelEncryption | None = None

    def seal(self, blob: bytes, round_id: int, base_cid: str) -> bytes:
        """What to put on IPFS for a model blob: the blob, or its envelope to the members."""
        if self.policy is None:
            return blob
        return seal_model(blob, round_id, base_cid, self.contract, self.policy.recipients())

    def open(self, data: bytes, max_bytes: int) -> bytes:
        """A model blob the org published (sealed or not: a federation may switch modes).

        ConfigError (exit 2, not a retry loop) when the org cannot open its own model: it
        was sealed to another org key, or this org runs without its key.
        """
        try:
            return open_model(data, self.key, self.contract, max_bytes).plaintext
        except EnvelopeRejected as exc:
            raise ConfigError(
                f"the org cannot open its own sealed model ({exc.reason}: {exc.detail}): keep "
                "encryption.key_file (or key_env) set to the key it was sealed with"
            ) from None


async def org_models(
    cfg: DaemonConfig, chain: Chain, chain_id: int, contract: str, key: PrivateKey | None
) -> OrgModels:
    """The start-up check of `models = "members"`: every member card verified, or exit 2."""
    enc = cfg.encryption
    if enc.models != "members":
        return OrgModels(contract, key)
    assert key is not None, "load_update_key refuses models = members without a key"
    hint = (
        f"the members make their cards for contract {contract} on chain {chain_id} "
        "(`fedchain keys card`)"
    )
    try:
        cards = read_cards(Path(enc.member_cards))
    except ConfigError as exc:  # e.g. a first start that just deployed: say what to sign
        raise ConfigError(f"{cfg.path}: {exc}; {hint}") from None
    configured = set(cfg.federation.clients if cfg.federation else ())
    members = configured | {c.address for _, c in cards if await chain.is_client(c.address)}
    checked = verified_cards(cards, chain_id, contract, members)
    if not checked:
        raise ConfigError(
            f"{cfg.path}: encryption.member_cards {enc.member_cards} holds no key card; {hint}"
        )
    _warn_missing(configured, checked)
    policy = member_policy(key, checked, enc.auditors)
    log_event(
        log,
        logging.INFO,
        "models are sealed to the members",
        members=len(checked),
        auditors=len(enc.auditors),
        recipients=len(policy.recipient_hex()),
    )
    return OrgModels(contract, key, policy)


def _warn_missing(configured: set[str], cards: list[KeyCard]) -> None:
    """A configured client without a card cannot read the models: say so, once, loudly."""
    with_card = {c.address.lower() for c in cards}
    for client in sorted(c for c in configured if c.lower() not in with_card):
        log_event(
            log,
            logging.WARNING,
            "client has no member key card: it cannot read the models and will skip rounds",
            client=client,
        )
