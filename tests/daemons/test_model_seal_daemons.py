"""Models sealed to the members, in the daemons: the org over fakes, `fedchain keys card`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daemons.privacy.cards import make_card, read_cards, verified_cards
from daemons.privacy.envelope import EnvelopeRejected
from daemons.privacy.keys import public_hex
from daemons.privacy.models import check_model_metadata, member_policy, open_model
from daemons.wire.round_config import decode_round_config
from models.codec import BlobMetadata, decode_blob, encode_blob
from tests.daemons.test_model_seal import (
    ACCOUNTS,
    AUDITOR,
    CAP,
    CHAIN_ID,
    CONTRACT,
    MEMBERS,
    ORG,
)

pytestmark = pytest.mark.timeout(300)


async def test_org_seals_every_model_and_rereads_them_after_a_restart(tmp_path: Path) -> None:
    """Over fakes: the initial model and round 1's model are envelopes the members open; a
    restarted org (same ledger and IPFS, an empty blob cache) re-reads its own sealed base
    with its key to judge and aggregate; the initial model's CID survives a re-publish."""
    import jax

    from contracts.state import RoundStatus
    from daemons.ipfs.blobs import BlobCache, raw_cid_digest
    from daemons.org.ledger import Submission
    from daemons.org.models_seal import OrgModels
    from daemons.org.parts import OrgParts
    from daemons.org.rounds import OrgRounds
    from daemons.privacy.envelope import is_envelope
    from tests.daemons.test_org_rounds import CLIENTS, make_org

    org, chain, storage = make_org(tmp_path / "a")
    cards = [
        make_card(ACCOUNTS[0], public_hex(MEMBERS[0]), CHAIN_ID, CONTRACT),
        make_card(ACCOUNTS[1], public_hex(MEMBERS[1]), CHAIN_ID, CONTRACT),
    ]
    policy = member_policy(ORG, cards, [public_hex(AUDITOR)])
    org.parts.models = OrgModels(CONTRACT, ORG, policy)
    first = await org.publish_initial()
    assert await org.publish_initial() == first  # kept in the ledger: no second envelope
    await org.run_until_idle()
    info = chain.rounds[1]
    assert info.base_cid == first[0] and is_envelope(storage.blobs[info.base_cid])
    config = decode_round_config(storage.blobs[info.config_cid])
    assert config.models == policy and raw_cid_digest(info.config_cid) is not None
    base = decode_blob(
        open_model(storage.blobs[info.base_cid], MEMBERS[0], CONTRACT, CAP).plaintext
    )
    for i, client in enumerate(CLIENTS):  # the clients train on the opened base
        shifted = jax.tree_util.tree_map(lambda a, s=0.01 * (i + 1): a + s, base.sections["params"])
        fisher = jax.tree_util.tree_map(np.ones_like, base.sections["params"])
        meta = BlobMetadata("update", 1, client, info.base_cid, 100, "logreg")
        stored = await storage.put(encode_blob({"params": shifted, "fisher": fisher}, meta))
        chain.submit_as(client, 1, stored.cid, stored.digest, 100)
        org.record(1, Submission(client, stored.cid, "0x" + stored.digest.hex(), 100))
    restarted = OrgRounds(
        OrgParts(
            org.parts.cfg,
            chain,
            storage,
            org.ledger,
            BlobCache(tmp_path / "b"),
            org.parts.eval_data,
            org.metrics,
        )
    )
    restarted.parts.models = OrgModels(CONTRACT, ORG, policy)
    await restarted.run_until_idle()
    closed = chain.rounds[1]
    assert closed.status is RoundStatus.CLOSED and chain.rounds[2].base_cid == closed.model_cid
    sealed = storage.blobs[closed.model_cid]
    assert is_envelope(sealed)
    opened = open_model(sealed, MEMBERS[1], CONTRACT, CAP, round_id=1)
    model = decode_blob(opened.plaintext)
    assert model.metadata.round_id == 1 and model.metadata.base_cid == info.base_cid
    check_model_metadata(opened, model.metadata)
    assert set(opened.recipients) == set(policy.recipient_hex())
    with pytest.raises(EnvelopeRejected):
        open_model(sealed, MEMBERS[2], CONTRACT, CAP)  # no card: not a recipient


def test_keys_card_cli_signs_with_the_clients_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from daemons.cli.main import main

    toml = tmp_path / "client.toml"
    toml.write_text(
        f'[chain]\ncontract = "{CONTRACT}"\n[data]\npath = "d.npz"\n'
        '[encryption]\nmodels = "members"\nkey_env = "MY_KEY"\n'
    )
    monkeypatch.setenv("FEDCHAIN_PRIVATE_KEY", ACCOUNTS[0].key.hex())
    out = tmp_path / "card.json"
    argv = ["keys", "card", "--config", str(toml), "--out", str(out), "--chain-id", "31337"]
    monkeypatch.delenv("MY_KEY", raising=False)
    assert main(argv) == 2  # no X25519 key: says which settings give one
    assert "no X25519 key" in capsys.readouterr().err and not out.exists()
    monkeypatch.setenv("MY_KEY", bytes(MEMBERS[0]).hex())
    assert main(argv) == 0
    assert public_hex(MEMBERS[0]) in capsys.readouterr().out
    [(where, card)] = read_cards(out)
    [checked] = verified_cards([(where, card)], CHAIN_ID, CONTRACT, {ACCOUNTS[0].address})
    assert checked.address == ACCOUNTS[0].address
    assert checked.encryption_key == public_hex(MEMBERS[0])
    assert main(argv) == 2  # never overwrites


def test_an_org_that_lost_its_key_stops_with_a_config_error(tmp_path: Path) -> None:
    from daemons.errors import ConfigError
    from daemons.org.models_seal import OrgModels
    from daemons.privacy.keys import load_update_key, write_key_file
    from daemons.privacy.models import seal_model
    from daemons.runtime.config import EncryptionConfig

    cards = [make_card(ACCOUNTS[0], public_hex(MEMBERS[0]), CHAIN_ID, CONTRACT)]
    policy = member_policy(ORG, cards, [])
    blob = encode_blob(
        {"params": {"w": np.ones(3, np.float32)}}, BlobMetadata("model", 1, "o", "", 0, "x")
    )
    sealed = seal_model(blob, 1, "", CONTRACT, policy.recipients())
    assert OrgModels(CONTRACT, ORG, policy).open(sealed, CAP) == blob
    for key in (None, MEMBERS[1]):  # back to public models without the key, or another key
        with pytest.raises(ConfigError, match="cannot open its own sealed model"):
            OrgModels(CONTRACT, key).open(sealed, CAP)
    # public updates and models, yet a configured key file still loads (to re-read the above)
    write_key_file(tmp_path / "org.json", ORG, "pw")
    enc = EncryptionConfig(key_file=str(tmp_path / "org.json"), password_env="PW")
    key = load_update_key(enc, {"PW": "pw"})
    assert key is not None and bytes(key) == bytes(ORG)
    assert load_update_key(EncryptionConfig(), {}) is None
