"""X25519 update-encryption keys: loaded like the signing key, never written in a config.

The private key comes from a keystore file (the Web3 Secret Storage format of the signing
keystore, via `eth_keyfile`: scrypt + AES-128-CTR + MAC; its password in an environment
variable) or, for dev nets, as hex in an environment variable. `fedchain keys encryption`
writes a new keystore and prints the public key to publish (org) or to hand to the org
(auditor).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import eth_keyfile
from nacl.public import PrivateKey, PublicKey

from daemons.errors import ConfigError

KIND = "fedchain-x25519-update-key"


def public_key_from_hex(text: str, where: str) -> PublicKey:
    """A 32-byte X25519 public key from 64 hex digits; ValueError naming `where` if not."""
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except (ValueError, AttributeError):
        raise ValueError(f"{where} = {text!r} is not hex") from None
    if len(raw) != PublicKey.SIZE:
        raise ValueError(f"{where} must be {PublicKey.SIZE} bytes (64 hex digits), got {len(raw)}")
    return PublicKey(raw)


def public_hex(key: PrivateKey | PublicKey) -> str:
    """The public key as 64 lowercase hex digits (the form configs and round configs use)."""
    public = key.public_key if isinstance(key, PrivateKey) else key
    return bytes(public).hex()


def load_private_key(
    key_file: str,
    key_env: str,
    password_env: str,
    env: Mapping[str, str] | None = None,
    source: str = "config",
) -> PrivateKey | None:
    """The X25519 private key from `key_file` (keystore) or env `key_env` (hex); None if unset."""
    env = os.environ if env is None else env
    if key_file:
        return read_key_file(Path(key_file), password_env, env, source)
    text = env.get(key_env, "").strip()
    if not text:
        return None
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise ConfigError(f"{source}: environment variable {key_env} is not hex") from None
    if len(raw) != PrivateKey.SIZE:
        raise ConfigError(
            f"{source}: environment variable {key_env} must hold a 32-byte X25519 private key "
            f"(64 hex digits), got {len(raw)} bytes"
        )
    return PrivateKey(raw)


def read_key_file(
    path: Path, password_env: str, env: Mapping[str, str], source: str = "config"
) -> PrivateKey:
    """Decrypt a keystore written by `write_key_file` with the password from `password_env`."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{source}: encryption key file {path} not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{source}: encryption key file {path} is unreadable: {exc}") from None
    if not isinstance(doc, dict) or doc.get("fedchain", {}).get("kind") != KIND:
        raise ConfigError(
            f"{source}: {path} is not a fedchain encryption key file (make one with "
            "`fedchain keys encryption --out FILE`)"
        )
    if password_env not in env:
        raise ConfigError(
            f"{source}: encryption key file {path} needs its password in the environment "
            f"variable {password_env}"
        )
    try:
        raw = eth_keyfile.decode_keyfile_json(doc, env[password_env].encode())
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{source}: cannot decrypt {path}: {exc} (wrong password in {password_env}?)"
        ) from None
    return PrivateKey(bytes(raw))


def write_key_file(path: Path, key: PrivateKey, password: str) -> dict[str, Any]:
    """Write `key` as a password-encrypted keystore (mode 0600); refuses to overwrite."""
    if not password:
        raise ValueError("an encryption key file needs a non-empty password")
    doc = eth_keyfile.create_keyfile_json(bytes(key), password.encode(), kdf="scrypt")
    doc.pop("address", None)  # an Ethereum address of these bytes would mean nothing
    doc["fedchain"] = {"kind": KIND, "public_key": public_hex(key)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
    return doc


def generate() -> PrivateKey:
    """A new X25519 key pair from the OS's random source (libsodium)."""
    return PrivateKey.generate()


def load_update_key(
    enc: Any, env: Mapping[str, str] | None = None, source: str = "config"
) -> PrivateKey | None:
    """The org's key when updates are encrypted or models sealed to the members (else None).

    ConfigError (exit 2) when either is on and no key is configured: the org opens updates
    with it and re-reads its own sealed models with it.
    """
    if enc.updates != "encrypted" and getattr(enc, "models", "public") != "members":
        # not required, but a configured key file still loads: an org back to public models
        # re-reads its last sealed model with it
        return (
            read_key_file(
                Path(enc.key_file), enc.password_env, os.environ if env is None else env, source
            )
            if enc.key_file
            else None
        )
    key = load_private_key(enc.key_file, enc.key_env, enc.password_env, env, source)
    if key is None:
        what = 'updates = "encrypted"' if enc.updates == "encrypted" else 'models = "members"'
        raise ConfigError(
            f"{source}: encryption.{what} needs the org's X25519 key: set "
            f"encryption.key_file to a key file (`fedchain keys encryption --out FILE`) or put "
            f"the hex private key in the environment variable {enc.key_env}"
        )
    return key


def load_member_key(
    enc: Any, env: Mapping[str, str] | None = None, source: str = "config"
) -> PrivateKey | None:
    """A client's own X25519 key, which opens models sealed to the members (None if unset).

    Loaded like the org's (keystore `key_file` + password env, or hex in `key_env`); with
    `models = "members"` the client refuses to start without one.
    """
    key = load_private_key(enc.key_file, enc.key_env, enc.password_env, env, source)
    if key is None and enc.models == "members":
        raise ConfigError(
            f'{source}: encryption.models = "members" needs this client\'s X25519 key to open '
            "the models: set encryption.key_file (`fedchain keys encryption --out FILE`) or put "
            f"the hex private key in the environment variable {enc.key_env}"
        )
    return key
