"""The daemon's signing account: an encrypted eth-account keystore, or a hex key from env.

Secrets never live in the TOML file: the file names the environment variables that hold
the private key (testnet dev keys) or the keystore password.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from daemons.errors import ConfigError
from daemons.runtime.config import IdentityConfig


def load_account(
    identity: IdentityConfig, env: Mapping[str, str] | None = None, source: str = "config"
) -> LocalAccount:
    """Return the account named by `identity` (keystore first, else the env hex key)."""
    env = os.environ if env is None else env
    if identity.keystore:
        return _from_keystore(Path(identity.keystore), identity.password_env, env, source)
    key = env.get(identity.private_key_env, "").strip()
    if not key:
        raise ConfigError(
            f"{source}: no signing key: set identity.keystore to an eth-account keystore file, "
            f"or put a hex private key in the environment variable {identity.private_key_env}"
        )
    try:
        return Account.from_key(key)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{source}: environment variable {identity.private_key_env} is not a valid hex "
            f"private key ({type(exc).__name__})"
        ) from None


def _from_keystore(
    path: Path, password_env: str, env: Mapping[str, str], source: str
) -> LocalAccount:
    """Decrypt an eth-account keystore JSON with the password from `password_env`."""
    try:
        keyfile = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{source}: identity.keystore file {path} not found") from None
    except json.JSONDecodeError:
        raise ConfigError(f"{source}: identity.keystore file {path} is not JSON") from None
    if password_env not in env:
        raise ConfigError(
            f"{source}: keystore {path} needs its password in the environment variable "
            f"{password_env} (identity.password_env)"
        )
    try:
        key = Account.decrypt(keyfile, env[password_env])
    except (ValueError, KeyError) as exc:
        raise ConfigError(
            f"{source}: cannot decrypt keystore {path}: {exc} (wrong password in {password_env}?)"
        ) from None
    return Account.from_key(key)
