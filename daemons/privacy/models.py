"""Models sealed to the federation's members (`[encryption] models = "members"`).

The org seals every model it publishes (the initial one included) in an FCENV-1 envelope
(`daemons.privacy.envelope`, the update format with wider bounds: up to 1024 recipients) to
every member's card key, every auditor and itself, so it can re-read its own models after a
restart. The chain's digest covers the envelope; the binding inside the authenticated header
is round_id = the model's round, client = "model:<contract>" (never an address, so a model
envelope can never pass as an update or the reverse, nor as another federation's model),
base_cid = the model's own base ("" for the initial model). The round config's `models`
entry lists the recipients (keys and the members' signed cards), so anyone can see who can
read the models. docs/security.md, "Encrypted models".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nacl.public import PrivateKey, PublicKey

from daemons.errors import RejectedUpdate
from daemons.privacy.cards import BadCard, KeyCard, card_from_json
from daemons.privacy.envelope import (
    MAX_MODEL_RECIPIENTS,
    MODEL_BOUNDS,
    Binding,
    EnvelopeRejected,
    decrypt_envelope,
    header_binding,
    is_envelope,
    parse_envelope,
    recipient_keys,
    seal_update,
)
from daemons.privacy.keys import public_hex, public_key_from_hex
from daemons.privacy.policy import SCHEME

MODE = "members"
NO_KEY = "model_encrypted"  # the reason code of an encrypted model read without a key


def model_label(contract: str) -> str:
    """The binding's `client` field of a model envelope of the federation `contract`."""
    return f"model:{contract.lower()}"


@dataclass(frozen=True)
class ModelEncryption:
    """Models are sealed to `org_key`, every member card's key and `auditor_keys` (hex)."""

    org_key: str
    members: tuple[KeyCard, ...] = ()
    auditor_keys: tuple[str, ...] = ()

    def recipient_hex(self) -> list[str]:
        """Every recipient's public key, without repeats, in a stable order."""
        keys = [self.org_key, *(c.encryption_key for c in self.members), *self.auditor_keys]
        return list(dict.fromkeys(k.lower() for k in keys))

    def recipients(self) -> list[PublicKey]:
        return [public_key_from_hex(k, "model recipient") for k in self.recipient_hex()]

    def to_json(self) -> dict[str, Any]:
        return {
            "scheme": SCHEME,
            "mode": MODE,
            "org_key": self.org_key,
            "auditor_keys": list(self.auditor_keys),
            "members": [c.to_json() for c in self.members],
        }

    @classmethod
    def from_json(cls, doc: Any) -> ModelEncryption:
        """Parse a round config's `models` entry; ValueError naming the bad field."""
        keys = {"scheme", "mode", "org_key", "auditor_keys", "members"}
        if not isinstance(doc, dict) or set(doc) != keys:
            raise ValueError(f"models must have exactly {sorted(keys)}; got {doc!r}")
        if doc["scheme"] != SCHEME or doc["mode"] != MODE:
            raise ValueError(f"models: scheme/mode {doc['scheme']!r}/{doc['mode']!r} unknown")
        if not isinstance(doc["auditor_keys"], list) or not isinstance(doc["members"], list):
            raise ValueError("models.auditor_keys and models.members must be lists")
        try:
            members = tuple(card_from_json(c) for c in doc["members"])
        except BadCard as exc:
            raise ValueError(f"models.members: {exc}") from None
        policy = cls(str(doc["org_key"]), members, tuple(str(k) for k in doc["auditor_keys"]))
        if len(policy.recipient_hex()) > MAX_MODEL_RECIPIENTS:
            raise ValueError(f"models: more than {MAX_MODEL_RECIPIENTS} recipients")
        policy.recipients()  # each parses as a 32-byte key
        return policy


@dataclass(frozen=True)
class OpenedModel:
    """A model blob as read: the plaintext, and (sealed) its binding and who could read it."""

    plaintext: bytes
    binding: Binding | None = None
    recipients: tuple[str, ...] = field(default_factory=tuple)

    @property
    def sealed(self) -> bool:
        return self.binding is not None


def seal_model(
    blob: bytes, round_id: int, base_cid: str, contract: str, recipients: Iterable[PublicKey]
) -> bytes:
    """The envelope of a model blob for the federation `contract` (org, members, auditors)."""
    binding = Binding(round_id, model_label(contract), base_cid)
    return seal_update(blob, binding, recipients, MODEL_BOUNDS)


def open_model(
    data: bytes,
    private_key: PrivateKey | None,
    contract: str,
    max_bytes: int,
    round_id: int | None = None,
) -> OpenedModel:
    """The model blob in `data`: as is when public, else opened with `private_key`.

    Raises `EnvelopeRejected`: `model_encrypted` (sealed, and no key to open it),
    `not_recipient` (the key has no slot: not a member), `binding` (another federation's
    envelope, an update's, or another round's when `round_id` is given), `envelope`,
    `decrypt` (tampered), `plaintext_digest`, `too_large`.
    """
    if not is_envelope(data):
        return OpenedModel(data)
    header, prefix, body = parse_envelope(data, max_bytes, MODEL_BOUNDS)
    found = header_binding(header)
    if found.client.lower() != model_label(contract):
        raise EnvelopeRejected(
            "binding", f"the envelope is for {found.client!r}, not a model of {contract}"
        )
    if round_id is not None and found.round_id != round_id:
        raise EnvelopeRejected(
            "binding", f"the envelope is round {found.round_id}'s model, expected {round_id}'s"
        )
    if private_key is None:
        raise EnvelopeRejected(
            NO_KEY,
            f"the model is encrypted to the federation's members ({len(header['recipients'])} "
            "keys); give a member's or an auditor's X25519 key to read it",
        )
    plaintext = decrypt_envelope(header, prefix, body, private_key)
    return OpenedModel(plaintext, found, tuple(recipient_keys(header)))


def check_model_metadata(opened: OpenedModel, metadata: Any) -> None:
    """The decrypted blob's own round and base must be the envelope's (no re-labelling)."""
    if opened.binding is None:
        return
    b = opened.binding
    if (metadata.round_id, metadata.base_cid) != (b.round_id, b.base_cid):
        raise RejectedUpdate(
            "binding",
            f"the sealed model says round {metadata.round_id} base {metadata.base_cid!r}, "
            f"its envelope round {b.round_id} base {b.base_cid!r}",
        )


def member_policy(
    org_key: PrivateKey, cards: Iterable[KeyCard], auditors: Iterable[str]
) -> ModelEncryption:
    """What the org publishes for `models = "members"`: itself, the members, the auditors."""
    return ModelEncryption(public_hex(org_key), tuple(cards), tuple(k.lower() for k in auditors))
