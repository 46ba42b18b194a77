"""Encrypted updates in a real federation: anvil, a bundled IPFS node, org + client daemons.

The org's X25519 key is a password-encrypted keystore; one auditor key is configured. Two
client daemons seal their updates; three more accounts, driven by the test, play the
outsiders of issue 13: one copies client-0's update (same CID and digest), one seals an
update to a key that is not the org's, one sends a plaintext update. A fresh IPFS node that
knows the CIDs from the chain events fetches the bytes and finds nothing readable in them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from nacl.public import PrivateKey

from contracts.events import UpdateSubmitted, decode_log
from daemons.ipfs.blobs import raw_cid_digest
from daemons.ipfs.bundled import BundledIpfsNode
from daemons.ipfs.client import IpfsStorage
from daemons.privacy.envelope import Binding, open_update, seal_update
from daemons.privacy.keys import public_hex, write_key_file
from daemons.wire.manifest import decode_manifest
from daemons.wire.round_config import decode_round_config
from models.codec import decode_blob
from models.errors import BlobRejected
from tests.fixtures.ipfs import rpc
from tests.integration.harness import Federation

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
CAP = 1 << 20


async def _submissions(fed: Federation, round_id: int) -> dict[str, UpdateSubmitted]:
    assert fed.w3 is not None and fed.contract is not None
    logs = await fed.w3.eth.get_logs({"address": fed.contract.address, "fromBlock": 0})
    events = [decode_log(raw) for raw in logs]
    return {
        e.client: e for e in events if isinstance(e, UpdateSubmitted) and e.round_id == round_id
    }


def _leaf_windows_absent(plain: bytes, envelope: bytes) -> None:
    """No 16-byte run of any plaintext tensor appears in the envelope bytes."""
    for section in decode_blob(plain).sections.values():
        for leaf in _leaves(section):
            raw = np.ascontiguousarray(leaf).tobytes()
            for i in range(0, max(1, len(raw) - 16), 64):
                assert raw[i : i + 16] not in envelope


def _leaves(tree: Any) -> list[Any]:
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in _leaves(v)]
    return [tree]


async def _adversaries(
    fed: Federation, storage: IpfsStorage, victim: UpdateSubmitted, plain: bytes, base_cid: str
) -> dict[str, str]:
    """Submit the three bad updates from the extra accounts; returns client -> expected reason."""
    assert fed.contract is not None
    copier, wrong_key, plaintext = fed.accounts[3:6]
    stranger = PrivateKey.generate().public_key
    sealed_elsewhere = seal_update(plain, Binding(1, wrong_key.address, base_cid), [stranger])
    bad = {
        copier: (victim.update_cid, victim.digest, "binding"),
        wrong_key: (*await _put(storage, sealed_elsewhere), "not_recipient"),
        plaintext: (*await _put(storage, plain), "not_encrypted"),
    }
    for account, (cid, digest, _) in bad.items():
        await fed.contract.submit_update(account, 1, cid, digest, victim.num_samples)
    return {account.address: reason for account, (_, _, reason) in bad.items()}


async def _put(storage: IpfsStorage, data: bytes) -> tuple[str, bytes]:
    stored = await storage.put(data)
    return stored.cid, stored.digest


async def test_encrypted_federation_rejects_outsiders(
    tmp_path: Path, fed_data: dict[str, Path]
) -> None:
    org_key, auditor = PrivateKey.generate(), PrivateKey.generate()
    write_key_file(tmp_path / "org-key.json", org_key, "org password")
    encryption = {
        "org": {
            "updates": "encrypted",
            "key_file": str(tmp_path / "org-key.json"),
            "auditors": [public_hex(auditor)],
        },
        "client": {"updates": "encrypted"},
    }
    fed = Federation(
        tmp_path,
        fed_data,
        num_clients=2,
        extra_clients=3,
        rounds=1,
        max_updates=5,
        org_options={"exit_when_done": True},
        encryption=encryption,
    )
    async with fed:
        assert fed.org is not None and fed.ipfs is not None
        fed.org.env["FEDCHAIN_ENCRYPTION_PASSWORD"] = "org password"
        fed.start_all()
        info = await fed.wait_open(1, timeout_s=120)
        client0 = fed.accounts[1].address  # client-0's account

        async def victim_submitted() -> UpdateSubmitted | None:
            return (await _submissions(fed, 1)).get(client0)

        victim = await fed.wait_for("client-0's update", victim_submitted, 240)
        with BundledIpfsNode(tmp_path / "outsider-ipfs") as outsider:
            rpc(outsider, "swarm/connect", arg=fed.ipfs.swarm_multiaddr)
            async with IpfsStorage(outsider.api_url) as theirs:
                envelope = await theirs.get(victim.update_cid, victim.digest, CAP, 30)
                config = decode_round_config(
                    await theirs.get(info.config_cid, raw_cid_digest(info.config_cid), CAP, 30)
                )
        assert config.encryption is not None
        assert config.encryption.org_key == public_hex(org_key)
        assert config.encryption.auditor_keys == (public_hex(auditor),)
        with pytest.raises(BlobRejected):
            decode_blob(envelope)  # the outsider's bytes do not parse as an update
        binding = Binding(1, client0, info.base_cid)
        plain = open_update(envelope, auditor, binding, CAP)  # the auditor can read it
        assert decode_blob(plain).metadata.client == client0
        _leaf_windows_absent(plain, envelope)
        async with IpfsStorage(fed.ipfs.api_url) as storage:
            expected = await _adversaries(fed, storage, victim, plain, info.base_cid)
            settled = await fed.wait_settled(1, timeout_s=240)
            digest = raw_cid_digest(settled.manifest_cid)
            manifest = decode_manifest(await storage.get(settled.manifest_cid, digest, CAP, 30))
        assert fed.org.wait(60) == 0
    included = {u.client: u for u in manifest.included}
    assert set(included) == {fed.accounts[1].address, fed.accounts[2].address}
    assert {e.client: e.reason for e in manifest.excluded} == expected
    assert included[client0].digest == "0x" + hashlib.sha256(envelope).hexdigest()  # ciphertext
    assert set(included[client0].train) == {"train_s", "fisher_s"}  # no loss/accuracy leaked
    org_log = fed.org.text()
    assert bytes(org_key).hex() not in org_log and "org password" not in org_log
