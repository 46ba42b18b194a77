"""Edit the org config's client allowlist in place, keeping the operator's comments and layout.

The edited text is validated as the daemon would validate it before it replaces the file
(atomically, same mode), so a command can never leave a config the org refuses to start on.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path

import tomlkit
from eth_utils import to_checksum_address

from daemons.errors import ConfigError
from daemons.runtime.config import parse_config


def read_clients(path: Path) -> list[str]:
    """`[federation].clients` of the org config at `path`, checksummed."""
    doc = _load(path)
    return [to_checksum_address(str(c)) for c in _clients_array(path, doc)]


def set_client(path: Path, client: str, present: bool) -> bool:
    """Add (`present`) or remove `client` in `[federation].clients`; False if already so."""
    doc = _load(path)
    array = _clients_array(path, doc)
    wanted = to_checksum_address(client)
    at = [i for i, c in enumerate(array) if str(c).lower() == wanted.lower()]
    if bool(at) == present:
        return False
    if present:
        array.append(wanted)
    else:
        for i in reversed(at):
            del array[i]
        _forget_name(doc, wanted)
    if len(array) > 1:
        array.multiline(True)
    _replace(path, tomlkit.dumps(doc))
    return True


def _forget_name(doc: tomlkit.TOMLDocument, client: str) -> None:
    """Drop a removed client's `[federation].client_names` entry (names must be of clients)."""
    names = doc["federation"].get("client_names")
    if isinstance(names, dict):
        for key in [k for k in names if str(k).lower() == client.lower()]:
            del names[key]


def _load(path: Path) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _clients_array(path: Path, doc: tomlkit.TOMLDocument) -> tomlkit.items.Array:
    federation = doc.get("federation")
    if not isinstance(federation, dict):
        raise ConfigError(f"{path}: no [federation] section: pass the org's config (--config)")
    if "clients" not in federation:
        federation["clients"] = tomlkit.array()
    array = federation["clients"]
    if not isinstance(array, tomlkit.items.Array):
        raise ConfigError(f"{path}: federation.clients must be a list of addresses")
    return array


def _replace(path: Path, text: str) -> None:
    """Validate `text` as an org config, then swap it in for `path` atomically."""
    parse_config(tomllib.loads(text), path, "org")
    mode = path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
