"""Encrypted update envelopes: an update blob readable only by the org and the auditors.

A standard hybrid construction from libsodium (via PyNaCl), nothing home-made: a fresh random
content key encrypts the blob with XChaCha20-Poly1305 (IETF AEAD); the content key is sealed
to each recipient's X25519 public key with a sealed box (ephemeral X25519 + XSalsa20-Poly1305).
The binding (round, client, base model CID) and the plaintext's sha256 sit in the header, and
the whole header is the AEAD's associated data, so neither can be changed without the content
key. The chain's digest covers the envelope bytes. Layout and reason codes: docs/security.md.

Like `models.codec`, the reader is built for hostile bytes: size cap before anything else,
every span accounted for, one canonical header encoding, a typed reason for every rejection.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.utils
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.secret import Aead

from daemons.errors import RejectedUpdate

MAGIC = b"FCENV"
VERSION = 1
PREFIX_BYTES = len(MAGIC) + 1 + 4  # magic, version byte, header length (u32 little-endian)
MAX_HEADER_BYTES = 16 * 1024
MAX_RECIPIENTS = 16
# model envelopes (daemons/privacy/models.py) go to every member: same format, wider bounds
MAX_MODEL_RECIPIENTS = 1024
MAX_MODEL_HEADER_BYTES = 320 * 1024  # 1024 slots of 258 bytes and the other fields
AEAD = "xchacha20poly1305-ietf"
SEAL = "x25519-sealedbox"
SEALED_KEY_BYTES = Aead.KEY_SIZE + nacl.bindings.crypto_box_SEALBYTES
HEADER_KEYS = frozenset(
    {"aead", "seal", "nonce", "round_id", "client", "base_cid"}
    | {"plaintext_bytes", "plaintext_sha256", "recipients"}
)
_HEX = re.compile(r"[0-9a-f]*")
_MAX_INT = 2**63 - 1


class EnvelopeRejected(RejectedUpdate):
    """An envelope that cannot be opened; `reason` is one of the codes in docs/security.md."""


@dataclass(frozen=True)
class EnvelopeBounds:
    """What a reader accepts: updates go to <= 16 recipients, models to every member."""

    max_recipients: int = MAX_RECIPIENTS
    max_header_bytes: int = MAX_HEADER_BYTES


UPDATE_BOUNDS = EnvelopeBounds()
MODEL_BOUNDS = EnvelopeBounds(MAX_MODEL_RECIPIENTS, MAX_MODEL_HEADER_BYTES)


@dataclass(frozen=True)
class Binding:
    """What an update is for: the round, the submitting client and the round's base model."""

    round_id: int
    client: str
    base_cid: str

    def matches(self, other: Binding) -> bool:
        """Same round, client (addresses compared case-insensitively) and base CID."""
        return (self.round_id, self.client.lower(), self.base_cid) == (
            other.round_id,
            other.client.lower(),
            other.base_cid,
        )


def is_envelope(data: bytes) -> bool:
    """Whether `data` starts like an envelope (a safetensors blob never does)."""
    return data[: len(MAGIC)] == MAGIC


def seal_update(
    plaintext: bytes,
    binding: Binding,
    recipients: Iterable[PublicKey],
    bounds: EnvelopeBounds = UPDATE_BOUNDS,
) -> bytes:
    """Encrypt an update blob to every recipient (org first, auditors), bound to `binding`.

    `bounds`: MODEL_BOUNDS for a model sealed to the members (`daemons.privacy.models`).
    """
    unique = {bytes(pk): pk for pk in recipients}
    most = bounds.max_recipients
    if not 1 <= len(unique) <= most:
        raise ValueError(f"an envelope needs 1 to {most} recipients, got {len(unique)}")
    content_key = nacl.utils.random(Aead.KEY_SIZE)
    nonce = nacl.utils.random(Aead.NONCE_SIZE)
    slots = [
        {"public_key": raw.hex(), "sealed_key": SealedBox(pk).encrypt(content_key).hex()}
        for raw, pk in sorted(unique.items())
    ]
    header = {
        "aead": AEAD,
        "seal": SEAL,
        "nonce": nonce.hex(),
        "round_id": binding.round_id,
        "client": binding.client,
        "base_cid": binding.base_cid,
        "plaintext_bytes": len(plaintext),
        "plaintext_sha256": hashlib.sha256(plaintext).hexdigest(),
        "recipients": slots,
    }
    prefix = _prefix(_canonical(header), bounds.max_header_bytes)
    body = Aead(content_key).encrypt(plaintext, prefix, nonce).ciphertext
    return prefix + body


def open_update(
    envelope: bytes,
    private_key: PrivateKey,
    binding: Binding,
    max_bytes: int,
    required: Iterable[PublicKey] = (),
) -> bytes:
    """The plaintext update blob inside `envelope`, for the holder of `private_key`.

    The one entry point for the org and for auditors (`fedchain verify --auditor-key`).
    Checks, in order: size cap, layout, binding == `binding` (a copied update names another
    client), a slot for this key, every `required` recipient present; then decrypts and
    authenticates the content and checks the plaintext's sha256. Raises `EnvelopeRejected`
    with a reason code.
    """
    header, prefix, body = parse_envelope(envelope, max_bytes)
    found = header_binding(header)
    if not found.matches(binding):
        raise EnvelopeRejected(
            "binding", f"envelope is for {_describe(found)}, expected {_describe(binding)}"
        )
    return decrypt_envelope(header, prefix, body, private_key, required)


def header_binding(header: dict[str, Any]) -> Binding:
    """The binding a parsed header names (authenticated only once `decrypt_envelope` passes)."""
    return Binding(header["round_id"], header["client"], header["base_cid"])


def recipient_keys(header: dict[str, Any]) -> list[str]:
    """The public keys (hex) a parsed header has a slot for: who can read the envelope."""
    return [slot["public_key"] for slot in header["recipients"]]


def decrypt_envelope(
    header: dict[str, Any],
    prefix: bytes,
    body: bytes,
    private_key: PrivateKey,
    required: Iterable[PublicKey] = (),
) -> bytes:
    """The plaintext of a parsed envelope (`parse_envelope`) for the holder of `private_key`.

    Reasons: `not_recipient`, `recipients` (a `required` key has no slot), `decrypt`,
    `plaintext_digest`. The caller checks the binding first.
    """
    slots = {s["public_key"]: s["sealed_key"] for s in header["recipients"]}
    mine = bytes(private_key.public_key).hex()
    if mine not in slots:
        raise EnvelopeRejected("not_recipient", f"not sealed to this key ({mine[:16]}…)")
    missing = [bytes(pk).hex() for pk in required if bytes(pk).hex() not in slots]
    if missing:
        raise EnvelopeRejected("recipients", f"not sealed to required key(s) {', '.join(missing)}")
    try:
        content_key = SealedBox(private_key).decrypt(bytes.fromhex(slots[mine]))
        aead = Aead(content_key)
        plaintext = aead.decrypt(body, prefix, bytes.fromhex(header["nonce"]))
    except nacl.exceptions.CryptoError as exc:
        raise EnvelopeRejected("decrypt", f"authentication failed ({exc})") from None
    if hashlib.sha256(plaintext).hexdigest() != header["plaintext_sha256"]:
        raise EnvelopeRejected("plaintext_digest", "plaintext sha256 differs from the header's")
    return plaintext


def parse_envelope(
    envelope: bytes, max_bytes: int, bounds: EnvelopeBounds = UPDATE_BOUNDS
) -> tuple[dict[str, Any], bytes, bytes]:
    """(header, prefix = associated data, body); checks layout only, nothing secret."""
    if len(envelope) > max_bytes:
        raise EnvelopeRejected("too_large", f"{len(envelope)} bytes > cap {max_bytes}")
    if not is_envelope(envelope):
        raise EnvelopeRejected("not_encrypted", "not an encrypted envelope (no FCENV magic)")
    if len(envelope) < PREFIX_BYTES:
        raise EnvelopeRejected("envelope", f"{len(envelope)} bytes: shorter than the prefix")
    if envelope[len(MAGIC)] != VERSION:
        raise EnvelopeRejected(
            "envelope", f"format version {envelope[len(MAGIC)]}; this daemon reads {VERSION}"
        )
    header_len = int.from_bytes(envelope[len(MAGIC) + 1 : PREFIX_BYTES], "little")
    if header_len > bounds.max_header_bytes or PREFIX_BYTES + header_len > len(envelope):
        raise EnvelopeRejected("envelope", f"header length {header_len} out of bounds")
    raw = envelope[PREFIX_BYTES : PREFIX_BYTES + header_len]
    header = _check_header(_load_json(raw), bounds.max_recipients)
    if _canonical(header) != raw:
        raise EnvelopeRejected("envelope", "header is not in canonical form")
    body = envelope[PREFIX_BYTES + header_len :]
    if len(body) != header["plaintext_bytes"] + Aead.MACBYTES:
        raise EnvelopeRejected(
            "envelope", f"body is {len(body)} bytes, header says {header['plaintext_bytes']} + tag"
        )
    return header, envelope[: PREFIX_BYTES + header_len], body


def _load_json(raw: bytes) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate key")
        return dict(pairs)

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(
            raw.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise EnvelopeRejected("envelope", f"header is not JSON: {exc}") from None


def _check_header(doc: Any, max_recipients: int) -> dict[str, Any]:
    """Exact key set, types and lengths of every header field."""
    if not isinstance(doc, dict) or set(doc) != HEADER_KEYS:
        got = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise EnvelopeRejected("envelope", f"header keys {got}, expected {sorted(HEADER_KEYS)}")
    if doc["aead"] != AEAD or doc["seal"] != SEAL:
        raise EnvelopeRejected("envelope", f"unknown algorithms {doc['aead']!r}/{doc['seal']!r}")
    _want_int(doc, "round_id")
    _want_int(doc, "plaintext_bytes")
    for key in ("client", "base_cid"):
        if not isinstance(doc[key], str) or len(doc[key]) > 200:
            raise EnvelopeRejected("envelope", f"{key} must be a string of at most 200 chars")
    _want_hex(doc["nonce"], Aead.NONCE_SIZE, "nonce")
    _want_hex(doc["plaintext_sha256"], 32, "plaintext_sha256")
    slots = doc["recipients"]
    if not isinstance(slots, list) or not 1 <= len(slots) <= max_recipients:
        raise EnvelopeRejected("envelope", f"recipients must be a list of 1..{max_recipients}")
    for slot in slots:
        if not isinstance(slot, dict) or set(slot) != {"public_key", "sealed_key"}:
            raise EnvelopeRejected("envelope", "a recipient needs exactly public_key, sealed_key")
        _want_hex(slot["public_key"], PublicKey.SIZE, "recipients.public_key")
        _want_hex(slot["sealed_key"], SEALED_KEY_BYTES, "recipients.sealed_key")
    keys = [s["public_key"] for s in slots]
    if keys != sorted(set(keys)):
        raise EnvelopeRejected("envelope", "recipients must be sorted by public key, no repeats")
    return doc


def _want_int(doc: dict[str, Any], key: str) -> None:
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT:
        raise EnvelopeRejected("envelope", f"{key} must be an integer >= 0, got {value!r}")


def _want_hex(value: Any, size: int, what: str) -> None:
    if not isinstance(value, str) or len(value) != 2 * size or not _HEX.fullmatch(value):
        raise EnvelopeRejected("envelope", f"{what} must be {size} bytes of lowercase hex")


def _canonical(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _prefix(header: bytes, max_header_bytes: int = MAX_HEADER_BYTES) -> bytes:
    if len(header) > max_header_bytes:
        raise ValueError(f"envelope header of {len(header)} bytes > {max_header_bytes}")
    return MAGIC + bytes([VERSION]) + len(header).to_bytes(4, "little") + header


def _describe(b: Binding) -> str:
    return f"round {b.round_id}, client {b.client}, base {b.base_cid}"
