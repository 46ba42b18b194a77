"""The round config's `encryption` entry: to whom a client seals its update this round.

The org writes its X25519 public key (and the auditors') into every round config; the config's
CID is in the org-signed `openRound`, so the key is bound to the org's chain identity without
a separate registry. An absent entry means plaintext updates (older orgs, public federations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nacl.public import PrivateKey, PublicKey

from daemons.errors import RejectedUpdate
from daemons.privacy.envelope import Binding, seal_update
from daemons.privacy.keys import public_hex, public_key_from_hex
from daemons.runtime.config import MAX_AUDITORS, EncryptionConfig

SCHEME = "fcenv-1"  # docs/security.md, "Envelope format"


@dataclass(frozen=True)
class UpdateEncryption:
    """Updates of this round are sealed to `org_key` and every one of `auditor_keys` (hex)."""

    org_key: str
    auditor_keys: tuple[str, ...] = ()

    def recipients(self) -> list[PublicKey]:
        """The org's key first, then the auditors'."""
        keys = (self.org_key, *self.auditor_keys)
        return [public_key_from_hex(k, "encryption key") for k in keys]

    def to_json(self) -> dict[str, Any]:
        return {"scheme": SCHEME, "org_key": self.org_key, "auditor_keys": list(self.auditor_keys)}

    @classmethod
    def from_json(cls, doc: Any) -> UpdateEncryption:
        """Parse a round config's entry; ValueError naming the bad field."""
        if not isinstance(doc, dict) or set(doc) != {"scheme", "org_key", "auditor_keys"}:
            raise ValueError(f"encryption must have scheme, org_key, auditor_keys; got {doc!r}")
        if doc["scheme"] != SCHEME:
            raise ValueError(f"encryption.scheme {doc['scheme']!r}; this daemon knows {SCHEME}")
        auditors = doc["auditor_keys"]
        if not isinstance(auditors, list) or len(auditors) > MAX_AUDITORS:
            raise ValueError(f"encryption.auditor_keys must be a list of <= {MAX_AUDITORS} keys")
        keys = [doc["org_key"], *auditors]
        if not all(isinstance(k, str) for k in keys) or len(set(keys)) != len(keys):
            raise ValueError("encryption keys must be distinct hex strings")
        policy = cls(org_key=doc["org_key"], auditor_keys=tuple(auditors))
        policy.recipients()  # each parses as a 32-byte key
        return policy


def org_policy(enc: EncryptionConfig, key: PrivateKey | None) -> UpdateEncryption | None:
    """What the org publishes: None for public updates, else its public key + auditors."""
    if enc.updates != "encrypted":
        return None
    assert key is not None, "load_update_key refuses an encrypted federation without a key"
    return UpdateEncryption(public_hex(key), tuple(k.lower() for k in enc.auditors))


def seal_for_round(
    blob: bytes,
    policy: UpdateEncryption | None,
    binding: Binding,
    require: bool,
    pinned_org_key: str = "",
) -> bytes:
    """What a client publishes: `blob` sealed to the round's recipients, or `blob` itself.

    `require` (the client's own `[encryption] updates = "encrypted"`): refuse to publish a
    plaintext update when the round config asks for none, so a misconfigured or downgraded
    org cannot make this client leak its update. `pinned_org_key` (`[encryption] org_key`):
    refuse a round config that names another org key (e.g. one written with a stolen
    signing key to harvest updates).
    """
    if policy is None:
        if require:
            raise RejectedUpdate(
                "round_config",
                "the round config asks for plaintext updates but this client's "
                '[encryption] updates = "encrypted": not sending this round',
            )
        return blob
    if pinned_org_key and policy.org_key != pinned_org_key.lower():
        raise RejectedUpdate(
            "round_config",
            f"the round config's org key {policy.org_key[:16]}… is not the pinned "
            f"[encryption] org_key {pinned_org_key[:16]}…: not sending this round",
        )
    return seal_update(blob, binding, policy.recipients())
