"""Models sealed to the members in a real federation: anvil, a bundled IPFS node, daemons.

The org runs `[encryption] models = "members"` with the signed key cards of client-0 and
client-1 and one auditor key. client-2 is a registered client with a key of its own but no
card: it cannot open the models, logs why and keeps running without submitting. A fresh IPFS
node that takes the model CIDs from the chain events fetches the bytes and can read nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from nacl.public import PrivateKey

from daemons.ipfs.blobs import raw_cid_digest
from daemons.ipfs.bundled import BundledIpfsNode
from daemons.ipfs.client import IpfsStorage
from daemons.privacy.cards import _statement, make_card
from daemons.privacy.envelope import EnvelopeRejected
from daemons.privacy.keys import public_hex, write_key_file
from daemons.privacy.models import open_model
from daemons.wire.round_config import decode_round_config
from models.codec import decode_blob
from models.errors import BlobRejected
from tests.fixtures.ipfs import rpc
from tests.integration.harness import REPO, Federation, messages
from tests.integration.test_verify import checks, verify_json

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
CAP = 1 << 20
KEY_ENV = "FEDCHAIN_ENCRYPTION_KEY"


def _flat(params: dict[str, Any]) -> np.ndarray:
    leaves = []
    for value in params.values():
        leaves.append(_flat(value) if isinstance(value, dict) else np.ravel(value))
    return np.concatenate(leaves)


def _write_cards(fed: Federation, folder: Path, keys: dict[int, PrivateKey]) -> None:
    """Each listed client's card, signed by its own dev account (as `fedchain keys card`)."""
    assert fed.contract is not None
    folder.mkdir()
    for i, key in keys.items():
        card = make_card(fed.accounts[1 + i], public_hex(key), 31337, fed.contract.address)
        (folder / f"client-{i}.json").write_text(json.dumps(card.to_json()))


def _members_federation(
    tmp_path: Path, fed_data: dict[str, Path], auditors: tuple[str, ...] = (), **kw: Any
) -> Federation:
    cards = str(tmp_path / "cards")
    encryption = {
        "org": {"models": "members", "member_cards": cards, "key_env": KEY_ENV},
        "client": {"models": "members"},
    }
    if auditors:
        encryption["org"]["auditors"] = list(auditors)
    return Federation(tmp_path, fed_data, encryption=encryption, **kw)


def _model_get(fed: Federation, round_id: int, out: Path, key: PrivateKey | None) -> Any:
    assert fed.anvil is not None and fed.contract is not None and fed.ipfs is not None
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    if key is not None:
        env[KEY_ENV] = bytes(key).hex()
    argv = [sys.executable, "-m", "daemons.cli", "model", "get", str(round_id), "-o", str(out)]
    argv += ["--rpc-url", fed.anvil.rpc_url, "--contract", fed.contract.address]
    argv += ["--ipfs-api", fed.ipfs.api_url]
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


async def test_models_sealed_to_members(tmp_path: Path, fed_data: dict[str, Path]) -> None:
    org_key, auditor = PrivateKey.generate(), PrivateKey.generate()
    member_keys = {i: PrivateKey.generate() for i in range(3)}  # client-2's has no card
    fed = _members_federation(
        tmp_path,
        fed_data,
        num_clients=3,
        rounds=2,
        min_updates=2,
        max_updates=2,
        org_options={"exit_when_done": True},
        auditors=(public_hex(auditor),),
    )
    async with fed:
        assert fed.org is not None and fed.ipfs is not None and fed.contract is not None
        _write_cards(fed, tmp_path / "cards", {0: member_keys[0], 1: member_keys[1]})
        fed.org.env[KEY_ENV] = bytes(org_key).hex()
        for i, client in enumerate(fed.clients):
            client.env[KEY_ENV] = bytes(member_keys[i]).hex()
        # the non-member first, so it is tailing before round 1 opens: it must see a base
        fed.clients[2].start()

        async def tailing() -> bool:
            return "client ready" in messages(fed.clients[2])

        await fed.wait_for("client-2 ready", tailing, 180)
        fed.org.start()
        for client in fed.clients[:2]:
            client.start()
        round1 = await fed.wait_settled(1, timeout_s=300)
        round2 = await fed.wait_settled(2, timeout_s=300)
        assert fed.org.wait(60) == 0
        # an outsider with the CIDs from the chain and a node of its own
        with BundledIpfsNode(tmp_path / "outsider-ipfs") as outsider:
            rpc(outsider, "swarm/connect", arg=fed.ipfs.swarm_multiaddr)
            async with IpfsStorage(outsider.api_url) as theirs:
                initial = await theirs.get(round1.base_cid, round1.base_digest, CAP, 30)
                model1 = await theirs.get(round1.model_cid, round1.model_digest, CAP, 30)
                model2 = await theirs.get(round2.model_cid, round2.model_digest, CAP, 30)
                config_cid = round2.config_cid
                config = decode_round_config(
                    await theirs.get(config_cid, raw_cid_digest(config_cid), CAP, 30)
                )
                update_cids = await _update_cids(fed, 2)
                update = await theirs.cat(update_cids[fed.accounts[1].address], CAP, 30)
        client2_alive = fed.clients[2].running()
        client2_log = fed.clients[2].records()
        # `fedchain model get`: without a key it says so; with a member key it writes plaintext
        no_key = _model_get(fed, 1, tmp_path / "m1.bin", None)
        assert no_key.returncode == 1 and "model_encrypted" in no_key.stderr
        assert "--key-file" in no_key.stderr and not (tmp_path / "m1.bin").exists()
        with_key = _model_get(fed, 1, tmp_path / "m1.bin", member_keys[1])
        assert with_key.returncode == 0, with_key.stderr
        assert "decrypted" in with_key.stdout
        plain1 = open_model(model1, auditor, fed.contract.address, CAP).plaintext
        assert (tmp_path / "m1.bin").read_bytes() == plain1
        # `fedchain verify`: the auditor replays the rounds bit for bit on the opened models;
        # without a key, the digests are still checked and the contents reported unchecked
        write_key_file(tmp_path / "auditor.json", auditor, "audit pw")
        os.environ["FEDCHAIN_AUDITOR_PASSWORD"] = "audit pw"
        try:
            code, audited = await verify_json(fed, "--auditor-key", str(tmp_path / "auditor.json"))
        finally:
            del os.environ["FEDCHAIN_AUDITOR_PASSWORD"]
        assert code == 0 and audited["ok"], json.dumps(audited, indent=1)
        code, blind = await verify_json(fed)
        assert code == 0, json.dumps(blind, indent=1)
    contract = fed.contract.address
    for blob in (initial, model1, model2):
        assert b"__metadata__" not in blob and b'"params/' not in blob  # no safetensors header
        with pytest.raises(BlobRejected):
            decode_blob(blob)
        for key, reason in ((PrivateKey.generate(), "not_recipient"), (None, "model_encrypted")):
            with pytest.raises(EnvelopeRejected) as info:
                open_model(blob, key, contract, CAP)
            assert info.value.reason == reason
    # members, the auditor and the org read every model; the round config says who can
    for key in (member_keys[0], member_keys[1], auditor, org_key):
        assert decode_blob(open_model(model1, key, contract, CAP).plaintext).metadata.round_id == 1
    assert config.models is not None
    readers = set(config.models.recipient_hex())
    assert readers == {public_hex(k) for k in (org_key, auditor, member_keys[0], member_keys[1])}
    assert public_hex(member_keys[2]) not in readers
    assert {c.address for c in config.models.members} == {a.address for a in fed.accounts[1:3]}
    # clients trained on the decrypted base: round 2's update starts from round 1's model
    opened = decode_blob(open_model(model1, member_keys[0], contract, CAP).plaintext)
    start = decode_blob(open_model(initial, member_keys[0], contract, CAP).plaintext)
    trained = decode_blob(update)
    assert trained.metadata.base_cid == round2.base_cid == round1.model_cid
    base, init = _flat(opened.sections["params"]), _flat(start.sections["params"])
    mine = _flat(trained.sections["params"])
    assert np.linalg.norm(mine - base) < np.linalg.norm(mine - init)
    for r in (1, 2):
        got = checks(audited, r)
        assert got["sealed"]["status"] == "ok" and got["model"]["status"] == "ok", got
        assert "bit-identical" in got["model"]["detail"]
        unread = checks(blind, r)
        assert (
            unread["sealed"]["status"] == "unchecked"
            and "--auditor-key" in unread["sealed"]["detail"]
        )
        assert unread["model"]["status"] == "unchecked" and unread["base"]["status"] != "mismatch"
    assert checks(audited, 1)["base"]["status"] == "ok"  # the seeded initial model, re-derived
    assert checks(blind, 2)["base"]["status"] == "ok"  # round 2's base = round 1's model (chain)
    # the non-member rejected each base cleanly, stayed up and sent nothing
    assert client2_alive
    skipped = [r for r in client2_log if r.get("msg", "").startswith("round skipped")]
    # round 1 for sure (it was tailing before it opened); round 2 too unless it closed first
    assert {r.get("reason") for r in skipped} == {"not_recipient"} and 1 <= len(skipped) <= 2
    assert skipped[0]["round_id"] == 1
    assert fed.accounts[3].address not in update_cids


async def _update_cids(fed: Federation, round_id: int) -> dict[str, str]:
    from contracts.events import UpdateSubmitted, decode_log

    assert fed.w3 is not None and fed.contract is not None
    logs = await fed.w3.eth.get_logs({"address": fed.contract.address, "fromBlock": 0})
    events = [decode_log(raw) for raw in logs]
    return {
        e.client: e.update_cid
        for e in events
        if isinstance(e, UpdateSubmitted) and e.round_id == round_id
    }


async def test_org_refuses_a_card_signed_by_another_address(
    tmp_path: Path, fed_data: dict[str, Path]
) -> None:
    fed = _members_federation(tmp_path, fed_data, num_clients=2, rounds=1)
    async with fed:
        assert fed.org is not None and fed.contract is not None
        key = PrivateKey.generate()
        _write_cards(fed, tmp_path / "cards", {0: PrivateKey.generate()})
        # client-1's account signs the statement "client-0 reads with this key" (its own key)
        victim, signer = fed.accounts[1], fed.accounts[2]
        statement = _statement(victim.address, public_hex(key), 31337, fed.contract.address)
        signature = "0x" + bytes(signer.sign_message(statement).signature).hex()
        card = make_card(victim, public_hex(key), 31337, fed.contract.address)
        doc = {**card.to_json(), "signature": signature}
        (tmp_path / "cards" / "forged.json").write_text(json.dumps(doc))
        fed.org.env[KEY_ENV] = bytes(PrivateKey.generate()).hex()
        fed.org.start()
        assert fed.org.wait(120) == 2
        text = fed.org.text()
        assert "forged.json" in text and f"signed by {fed.accounts[2].address}" in text
        assert "round opened" not in messages(fed.org)
        assert await fed.contract.current_round_id() == 0
