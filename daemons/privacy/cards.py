"""Member key cards: a client's X25519 public key bound to its chain account by a signature.

A card says "the account ADDRESS of the federation CONTRACT on chain CHAIN_ID reads models
sealed to the X25519 key K". The account signs that statement as EIP-712 typed data (domain
`fedchain` v1 with `chainId` and `verifyingContract`, so a card is worthless for any other
federation or chain, and can never be mistaken for a transaction), with eth-account; the org
recovers the signer and refuses a card whose signer is not the card's address. Pasting a
public key is not enough: only the holder of a member's signing key can add a key for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import is_hex_address, to_checksum_address

from daemons.errors import ConfigError

KIND = "fedchain-member-key-card"
VERSION = 1
PURPOSE = "fedchain member key: models of this federation may be sealed to this X25519 key"
CARD_KEYS = frozenset(
    {"kind", "version", "address", "encryption_key", "chain_id", "contract", "signature"}
)
_TYPES = {
    "MemberEncryptionKey": [
        {"name": "member", "type": "address"},
        {"name": "encryptionKey", "type": "bytes32"},
        {"name": "purpose", "type": "string"},
    ]
}


class BadCard(ValueError):
    """A card that does not parse or whose signature does not bind its key to its address."""


@dataclass(frozen=True)
class KeyCard:
    """One member's card; `encryption_key` is 64 lowercase hex digits, addresses checksummed."""

    address: str
    encryption_key: str
    chain_id: int
    contract: str
    signature: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "version": VERSION,
            "address": self.address,
            "encryption_key": self.encryption_key,
            "chain_id": self.chain_id,
            "contract": self.contract,
            "signature": self.signature,
        }

    def signer(self) -> str:
        """The address that signed this card's statement (checksummed)."""
        message = _statement(self.address, self.encryption_key, self.chain_id, self.contract)
        try:
            return str(Account.recover_message(message, signature=self.signature))
        except Exception as exc:  # eth-account raises several types for a malformed signature
            raise BadCard(f"signature does not recover ({type(exc).__name__}: {exc})") from None

    def check(self, chain_id: int, contract: str) -> None:
        """BadCard unless this card is for `contract` on `chain_id` and signed by its address."""
        if self.chain_id != chain_id:
            raise BadCard(f"made for chain id {self.chain_id}, this federation is on {chain_id}")
        if self.contract.lower() != contract.lower():
            raise BadCard(f"made for contract {self.contract}, this federation is {contract}")
        signer = self.signer()
        if signer.lower() != self.address.lower():
            raise BadCard(f"signed by {signer}, not by the card's address {self.address}")


def make_card(account: Any, encryption_key: str, chain_id: int, contract: str) -> KeyCard:
    """Sign a card for `account` (an eth-account LocalAccount) and the X25519 public key."""
    key = _key_hex(encryption_key)
    address, contract = to_checksum_address(account.address), to_checksum_address(contract)
    signed = account.sign_message(_statement(address, key, chain_id, contract))
    return KeyCard(address, key, chain_id, contract, "0x" + bytes(signed.signature).hex())


def card_from_json(doc: Any) -> KeyCard:
    """Parse a card object (exact keys, types and lengths); BadCard naming the field."""
    if not isinstance(doc, dict) or set(doc) != CARD_KEYS:
        got = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise BadCard(f"a key card has exactly the keys {sorted(CARD_KEYS)}, got {got}")
    if doc["kind"] != KIND or doc["version"] != VERSION:
        raise BadCard(f"kind/version {doc['kind']!r}/{doc['version']!r}, expected {KIND!r}/1")
    for key in ("address", "contract"):
        if not isinstance(doc[key], str) or not is_hex_address(doc[key]):
            raise BadCard(f"{key} {doc[key]!r} is not a 0x-prefixed 20-byte address")
    chain_id = doc["chain_id"]
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id < 1:
        raise BadCard(f"chain_id {chain_id!r} is not a positive integer")
    sig = doc["signature"]
    if not isinstance(sig, str) or len(sig) != 132 or not sig.startswith("0x"):
        raise BadCard("signature must be 65 bytes as 0x-prefixed hex")
    address, contract = to_checksum_address(doc["address"]), to_checksum_address(doc["contract"])
    return KeyCard(address, _key_hex(doc["encryption_key"]), chain_id, contract, sig.lower())


def read_cards(path: Path) -> list[tuple[str, KeyCard]]:
    """(where, card) for a card file, a JSON list of cards, or a directory of `*.json` cards.

    ConfigError naming the file (and list index) of the first card that does not parse.
    """
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        return [item for f in files for item in read_cards(f)]
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"member key cards: {path} not found") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"member key cards: {path} is not readable JSON: {exc}") from None
    items = list(enumerate(doc)) if isinstance(doc, list) else [(None, doc)]
    out = []
    for index, item in items:
        where = str(path) if index is None else f"{path}[{index}]"
        try:
            out.append((where, card_from_json(item)))
        except BadCard as exc:
            raise ConfigError(f"member key card {where}: {exc}") from None
    return out


def verified_cards(
    cards: Iterable[tuple[str, KeyCard]], chain_id: int, contract: str, members: Iterable[str]
) -> list[KeyCard]:
    """The cards, each checked; ConfigError naming the first bad one and why.

    Refused: a card for another chain or contract, one not signed by its own address, one
    for an account that is not in `members`, two cards for one account or one key.
    """
    allowed = {m.lower() for m in members}
    seen_address: dict[str, str] = {}
    seen_key: dict[str, str] = {}
    out = []
    for where, card in cards:
        try:
            card.check(chain_id, contract)
        except BadCard as exc:
            raise ConfigError(f"member key card {where} ({card.address}): {exc}") from None
        if card.address.lower() not in allowed:
            raise ConfigError(
                f"member key card {where}: {card.address} is not a client of this federation "
                "(federation.clients); remove the card, or add the client first"
            )
        for seen, value in ((seen_address, card.address.lower()), (seen_key, card.encryption_key)):
            if value in seen:
                raise ConfigError(f"member key card {where}: same {value} as {seen[value]}")
            seen[value] = where
        out.append(card)
    return sorted(out, key=lambda c: c.address.lower())


def _statement(address: str, key_hex: str, chain_id: int, contract: str) -> Any:
    """The EIP-712 message a card's signature covers (domain-separated per federation)."""
    return encode_typed_data(
        domain_data={
            "name": "fedchain",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(contract),
        },
        message_types=_TYPES,
        message_data={
            "member": to_checksum_address(address),
            "encryptionKey": bytes.fromhex(key_hex),
            "purpose": PURPOSE,
        },
    )


def _key_hex(text: Any) -> str:
    if not isinstance(text, str):
        raise BadCard(f"encryption_key must be 64 hex digits, got {text!r}")
    digits = text.removeprefix("0x").lower()
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        raise BadCard(f"encryption_key must be 64 hex digits (an X25519 public key), got {text!r}")
    return digits
