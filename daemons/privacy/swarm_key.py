"""libp2p private-network keys in Kubo's `swarm.key` format (PSK v1, base16).

A node with the key only talks to nodes with the same key: every connection is wrapped in
XSalsa20 keyed by it before libp2p's own handshake (the pnet protector of go-libp2p and of
js-libp2p's `@libp2p/pnet`), so the file works unchanged for Kubo members
(`$IPFS_PATH/swarm.key`). The key is a secret: mode 0600, never in a config or a log.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from daemons.errors import ConfigError

HEADER = "/key/swarm/psk/1.0.0/\n/base16/\n"
KEY_BYTES = 32
_FORMAT = re.compile(r"/key/swarm/psk/1\.0\.0/\r?\n/base16/\r?\n([0-9a-fA-F]{64})\s*")


def new_swarm_key() -> str:
    """A fresh key file's text: the PSK header and 32 random bytes as hex."""
    return HEADER + secrets.token_hex(KEY_BYTES) + "\n"


def write_swarm_key(path: Path, text: str | None = None) -> Path:
    """Write a (new) swarm key to `path` with mode 0600; refuses to overwrite a file."""
    text = new_swarm_key() if text is None else text
    check_swarm_key(text, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def read_swarm_key(path: Path) -> str:
    """The text of a swarm key file, checked; ConfigError naming the file if it is bad."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"swarm key file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"swarm key file {path} is unreadable: {exc}") from None
    check_swarm_key(text, str(path))
    return text


def check_swarm_key(text: str, where: str) -> None:
    """ConfigError unless `text` is a PSK v1 base16 key file as Kubo writes it."""
    if _FORMAT.fullmatch(text) is None:
        raise ConfigError(
            f"{where} is not a swarm key: expected the three lines '/key/swarm/psk/1.0.0/', "
            "'/base16/' and 64 hex digits (make one with `fedchain keys swarm --out FILE`)"
        )
