"""Encryption keys, swarm keys, the `[encryption]` config and the round config's entry."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from nacl.public import PrivateKey

from daemons.cli.main import main
from daemons.errors import ConfigError, RejectedUpdate
from daemons.privacy.envelope import Binding, open_update
from daemons.privacy.keys import (
    load_member_key,
    load_private_key,
    load_update_key,
    public_hex,
    read_key_file,
    write_key_file,
)
from daemons.privacy.policy import UpdateEncryption, org_policy, seal_for_round
from daemons.privacy.swarm_key import check_swarm_key, new_swarm_key, read_swarm_key
from daemons.runtime.config import EncryptionConfig, TrainingConfig, parse_config
from daemons.wire.round_config import RoundConfig, decode_round_config, encode_round_config

pytestmark = pytest.mark.timeout(60)
KEY = PrivateKey(bytes(range(32)))
AUDITOR = PrivateKey(bytes(range(1, 33)))


def test_key_file_round_trip_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "org.key"
    doc = write_key_file(path, KEY, "s3cret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "address" not in doc and doc["fedchain"]["public_key"] == public_hex(KEY)
    assert bytes(KEY).hex() not in path.read_text()
    loaded = read_key_file(path, "PW", {"PW": "s3cret"})
    assert bytes(loaded) == bytes(KEY)
    with pytest.raises(FileExistsError):
        write_key_file(path, KEY, "s3cret")


@pytest.mark.parametrize(
    ("env", "match"),
    [({"PW": "wrong"}, "wrong password in PW"), ({}, "needs its password in .* PW")],
)
def test_key_file_errors_name_the_fix(tmp_path: Path, env: dict[str, str], match: str) -> None:
    path = tmp_path / "org.key"
    write_key_file(path, KEY, "s3cret")
    with pytest.raises(ConfigError, match=match):
        read_key_file(path, "PW", env)


def test_a_signing_keystore_is_not_an_encryption_key(tmp_path: Path) -> None:
    from eth_account import Account

    path = tmp_path / "signing.json"
    path.write_text(__import__("json").dumps(Account.encrypt("0x" + "11" * 32, "pw")))
    with pytest.raises(ConfigError, match="not a fedchain encryption key file"):
        read_key_file(path, "PW", {"PW": "pw"})


def test_env_key_and_errors() -> None:
    key = load_private_key("", "K", "P", {"K": bytes(KEY).hex()})
    assert key is not None and bytes(key) == bytes(KEY)
    assert load_private_key("", "K", "P", {}) is None
    with pytest.raises(ConfigError, match="K is not hex"):
        load_private_key("", "K", "P", {"K": "zz"})
    with pytest.raises(ConfigError, match="32-byte"):
        load_private_key("", "K", "P", {"K": "ab"})


def test_encrypted_org_needs_a_key() -> None:
    enc = EncryptionConfig(updates="encrypted", key_env="K")
    with pytest.raises(ConfigError, match='updates = "encrypted" needs'):
        load_update_key(enc, {})
    assert load_update_key(EncryptionConfig(), {"FEDCHAIN_ENCRYPTION_KEY": "ab"}) is None
    key = load_update_key(enc, {"K": bytes(KEY).hex()})
    policy = org_policy(enc, key)
    assert policy == UpdateEncryption(public_hex(KEY))


def test_keys_cli_writes_key_and_swarm_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FEDCHAIN_ENCRYPTION_PASSWORD", raising=False)
    assert main(["keys", "encryption", "--out", str(tmp_path / "a.key")]) == 2
    monkeypatch.setenv("FEDCHAIN_ENCRYPTION_PASSWORD", "pw")
    assert main(["keys", "encryption", "--out", str(tmp_path / "a.key")]) == 0
    public = capsys.readouterr().out.split("public key: ")[1].strip()
    key = read_key_file(tmp_path / "a.key", "FEDCHAIN_ENCRYPTION_PASSWORD", dict(os.environ))
    assert public == public_hex(key)
    assert main(["keys", "public", str(tmp_path / "a.key")]) == 0
    assert capsys.readouterr().out.strip() == public
    assert main(["keys", "encryption", "--out", str(tmp_path / "a.key")]) == 2  # no overwrite
    assert main(["keys", "swarm", "--out", str(tmp_path / "swarm.key")]) == 0
    text = read_swarm_key(tmp_path / "swarm.key")
    assert stat.S_IMODE((tmp_path / "swarm.key").stat().st_mode) == 0o600
    assert text.startswith("/key/swarm/psk/1.0.0/\n/base16/\n") and len(text.split("\n")[2]) == 64


def test_swarm_key_format() -> None:
    check_swarm_key(new_swarm_key(), "x")
    check_swarm_key("/key/swarm/psk/1.0.0/\r\n/base16/\r\n" + "aB" * 32, "x")  # as Kubo tools write
    assert new_swarm_key() != new_swarm_key()
    for bad in ("", "/key/swarm/psk/1.0.0/\n/base16/\n" + "a" * 63, "/base16/\n" + "a" * 64):
        with pytest.raises(ConfigError, match="not a swarm key"):
            check_swarm_key(bad, "x")


def _config(encryption: dict[str, object], role: str = "org") -> object:
    raw: dict[str, object] = {"encryption": encryption}
    if role == "org":
        raw["federation"] = {"eval_data": "e.npz"}
    else:
        raw |= {"data": {"path": "d.npz"}, "chain": {"contract": "0x" + "11" * 20}}
    return parse_config(raw, Path("/etc/fed.toml"), role)


def test_encryption_config() -> None:
    cfg = _config({"updates": "encrypted", "auditors": [public_hex(AUDITOR)]})
    assert cfg.encryption.auditors == (public_hex(AUDITOR),)  # type: ignore[attr-defined]
    default = parse_config({"federation": {"eval_data": "e"}}, Path("/f.toml"), "org")
    assert default.encryption == EncryptionConfig()
    cases = [
        ({"updates": "secret"}, "org", "allowed values: public, encrypted"),
        ({"auditors": ["abc"]}, "org", "64 hex digits"),
        ({"auditors": [public_hex(AUDITOR)] * 2}, "org", "twice"),
        ({"auditors": [public_hex(AUDITOR)]}, "client", "org settings"),
        ({"org_key": public_hex(AUDITOR)}, "org", "client setting"),
        ({"org_key": "xyz"}, "client", "64 hex digits"),
        ({"key": "x"}, "org", "unknown key encryption.key"),
        ({"models": "secret"}, "org", "allowed values: public, members"),
        ({"models": "members"}, "org", "needs encryption.member_cards"),
        ({"member_cards": "cards"}, "client", "org settings"),
    ]
    for table, role, match in cases:
        with pytest.raises(ConfigError, match=match):
            _config(table, role)
    assert _config({"key_file": "k.json"}).encryption.key_file == "/etc/k.json"  # type: ignore[attr-defined]
    members = _config({"models": "members", "member_cards": "cards"}).encryption
    assert members.member_cards == "/etc/cards"  # type: ignore[attr-defined]
    client = _config({"models": "members", "key_file": "me.json"}, "client").encryption
    assert client.key_file == "/etc/me.json"  # type: ignore[attr-defined]


def test_member_key_is_loaded_like_the_org_key() -> None:
    enc = EncryptionConfig(models="members", key_env="K")
    with pytest.raises(ConfigError, match='models = "members" needs this client'):
        load_member_key(enc, {})
    assert load_member_key(EncryptionConfig(key_env="K"), {}) is None
    key = load_member_key(EncryptionConfig(key_env="K"), {"K": bytes(KEY).hex()})
    assert key is not None and bytes(key) == bytes(KEY)
    with pytest.raises(ConfigError, match='models = "members" needs the org'):
        load_update_key(enc, {})


def test_round_config_entry() -> None:
    plain = RoundConfig(3, "logreg", 0, TrainingConfig())
    assert b"encryption" not in encode_round_config(plain)  # public federations' CIDs unchanged
    assert decode_round_config(encode_round_config(plain)).encryption is None
    policy = UpdateEncryption(public_hex(KEY), (public_hex(AUDITOR),))
    sealed = RoundConfig(3, "logreg", 0, TrainingConfig(), encryption=policy)
    assert decode_round_config(encode_round_config(sealed)).encryption == policy
    for bad in (
        {"scheme": "fcenv-9", "org_key": public_hex(KEY), "auditor_keys": []},
        {"scheme": "fcenv-1", "org_key": "ab", "auditor_keys": []},
        {"scheme": "fcenv-1", "org_key": public_hex(KEY), "auditor_keys": [public_hex(KEY)]},
        {"org_key": public_hex(KEY)},
    ):
        with pytest.raises(ValueError):
            UpdateEncryption.from_json(bad)


def test_client_seals_as_the_round_asks_and_refuses_a_downgrade() -> None:
    binding = Binding(1, "0x" + "22" * 20, "bafybase")
    policy = UpdateEncryption(public_hex(KEY), (public_hex(AUDITOR),))
    sealed = seal_for_round(b"update", policy, binding, require=False)
    assert open_update(sealed, AUDITOR, binding, 1 << 20, policy.recipients()) == b"update"
    assert seal_for_round(b"update", None, binding, require=False) == b"update"
    with pytest.raises(RejectedUpdate, match="asks for plaintext"):
        seal_for_round(b"update", None, binding, require=True)
    pinned = seal_for_round(b"u", policy, binding, require=True, pinned_org_key=public_hex(KEY))
    assert open_update(pinned, KEY, binding, 1 << 20) == b"u"
    with pytest.raises(RejectedUpdate, match="not the pinned"):
        seal_for_round(b"u", policy, binding, require=True, pinned_org_key=public_hex(AUDITOR))
