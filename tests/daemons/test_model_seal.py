"""Models sealed to the members: key cards (EIP-712 signatures) and model envelopes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from eth_account import Account
from nacl.public import PrivateKey

from daemons.errors import ConfigError, RejectedUpdate
from daemons.privacy.cards import (
    BadCard,
    _statement,
    card_from_json,
    make_card,
    read_cards,
    verified_cards,
)
from daemons.privacy.envelope import (
    MAX_RECIPIENTS,
    MODEL_BOUNDS,
    Binding,
    EnvelopeRejected,
    open_update,
    parse_envelope,
)
from daemons.privacy.keys import public_hex
from daemons.privacy.models import (
    ModelEncryption,
    check_model_metadata,
    member_policy,
    model_label,
    open_model,
    seal_model,
)
from daemons.runtime.config import TrainingConfig
from daemons.wire.round_config import RoundConfig, decode_round_config, encode_round_config
from models.codec import BlobMetadata, decode_blob, encode_blob

pytestmark = pytest.mark.timeout(120)

CHAIN_ID = 31337
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OTHER_CONTRACT = "0x" + "12" * 20
ORG = PrivateKey(bytes([1]) * 32)
AUDITOR = PrivateKey(bytes([2]) * 32)
MEMBERS = [PrivateKey(bytes([10 + i]) * 32) for i in range(3)]
OUTSIDER = PrivateKey(bytes([9]) * 32)
ACCOUNTS = [Account.from_key(bytes([40 + i]) * 32) for i in range(4)]
CAP = 1 << 22
PARAMS = {"w": np.arange(256, dtype=np.float32).reshape(16, 16) / 7.0 + 0.123}


def _model(round_id: int = 3, base: str = "bafybase") -> bytes:
    meta = BlobMetadata("model", round_id, ACCOUNTS[3].address, base, 30, "logreg")
    return encode_blob({"params": PARAMS}, meta)


def _cards() -> list[tuple[str, object]]:
    return [
        (f"card-{i}", make_card(ACCOUNTS[i], public_hex(MEMBERS[i]), CHAIN_ID, CONTRACT))
        for i in range(3)
    ]


def _members() -> set[str]:
    return {a.address for a in ACCOUNTS[:3]}


def test_card_round_trip_and_verification() -> None:
    cards = verified_cards(_cards(), CHAIN_ID, CONTRACT, _members())  # type: ignore[arg-type]
    assert {c.encryption_key for c in cards} == {public_hex(m) for m in MEMBERS}
    assert [c.address.lower() for c in cards] == sorted(a.address.lower() for a in ACCOUNTS[:3])
    doc = json.loads(json.dumps(cards[0].to_json()))
    assert card_from_json(doc) == cards[0]
    assert cards[0].signer() == cards[0].address


def test_bad_cards_are_refused_naming_the_card() -> None:
    good = make_card(ACCOUNTS[0], public_hex(MEMBERS[0]), CHAIN_ID, CONTRACT)
    # account 1 signs "account 0 reads with this key": someone adding a key for another
    statement = _statement(ACCOUNTS[0].address, public_hex(OUTSIDER), CHAIN_ID, CONTRACT)
    forged_sig = "0x" + bytes(ACCOUNTS[1].sign_message(statement).signature).hex()
    forged = card_from_json(
        {**good.to_json(), "encryption_key": public_hex(OUTSIDER), "signature": forged_sig}
    )
    swapped_key = card_from_json({**good.to_json(), "encryption_key": public_hex(OUTSIDER)})
    other_chain = make_card(ACCOUNTS[0], public_hex(MEMBERS[0]), 1, CONTRACT)
    other_contract = make_card(ACCOUNTS[0], public_hex(MEMBERS[0]), CHAIN_ID, OTHER_CONTRACT)
    stranger = make_card(ACCOUNTS[3], public_hex(OUTSIDER), CHAIN_ID, CONTRACT)
    cases = [
        (forged, f"signed by {ACCOUNTS[1].address}"),
        (swapped_key, "not by the card's address"),
        (other_chain, "chain id 1"),
        (other_contract, "made for contract"),
        (stranger, "not a client of this federation"),
    ]
    for card, match in cases:
        with pytest.raises(ConfigError, match=f"member key card bad.json.*{match}"):
            verified_cards([("bad.json", card)], CHAIN_ID, CONTRACT, _members())
    with pytest.raises(ConfigError, match="same"):
        verified_cards([("a", good), ("b", good)], CHAIN_ID, CONTRACT, _members())


@pytest.mark.parametrize(
    "edit",
    [
        {"kind": "x"},
        {"address": "0x12"},
        {"chain_id": True},
        {"encryption_key": "ab"},
        {"signature": "0x00"},
        {"extra": 1},
    ],
)
def test_malformed_cards(edit: dict[str, object]) -> None:
    doc = {**make_card(ACCOUNTS[0], public_hex(MEMBERS[0]), CHAIN_ID, CONTRACT).to_json(), **edit}
    with pytest.raises(BadCard):
        card_from_json(doc)


def test_read_cards_from_a_file_a_list_and_a_directory(tmp_path: Path) -> None:
    cards = [c for _, c in _cards()]
    folder = tmp_path / "cards"
    folder.mkdir()
    for i, card in enumerate(cards):
        (folder / f"{i}.json").write_text(json.dumps(card.to_json()))  # type: ignore[attr-defined]
    listing = tmp_path / "all.json"
    listing.write_text(json.dumps([c.to_json() for c in cards]))  # type: ignore[attr-defined]
    assert [c for _, c in read_cards(folder)] == cards
    assert [w for w, _ in read_cards(listing)][1] == f"{listing}[1]"
    assert [c for _, c in read_cards(folder / "0.json")] == cards[:1]
    (folder / "3.json").write_text('{"kind": "fedchain-member-key-card"}')
    with pytest.raises(ConfigError, match=r"3\.json"):
        read_cards(folder)
    with pytest.raises(ConfigError, match="not found"):
        read_cards(tmp_path / "missing.json")


def _policy() -> ModelEncryption:
    cards = verified_cards(_cards(), CHAIN_ID, CONTRACT, _members())  # type: ignore[arg-type]
    return member_policy(ORG, cards, [public_hex(AUDITOR)])


def test_members_auditor_and_org_open_the_model_outsiders_do_not() -> None:
    plain = _model()
    sealed = seal_model(plain, 3, "bafybase", CONTRACT, _policy().recipients())
    for key in (*MEMBERS, AUDITOR, ORG):
        opened = open_model(sealed, key, CONTRACT, CAP, round_id=3)
        assert opened.plaintext == plain and opened.sealed
        assert set(opened.recipients) == set(_policy().recipient_hex())
        check_model_metadata(opened, decode_blob(opened.plaintext).metadata)
    # an outsider with the bytes: no safetensors header, no tensor bytes, no key to open it
    assert b"__metadata__" not in sealed and PARAMS["w"].tobytes()[:64] not in sealed
    for key, reason in ((OUTSIDER, "not_recipient"), (None, "model_encrypted")):
        with pytest.raises(EnvelopeRejected) as info:
            open_model(sealed, key, CONTRACT, CAP)
        assert info.value.reason == reason
    assert open_model(plain, None, CONTRACT, CAP).plaintext == plain  # public models as is


def test_model_binding_refuses_other_federations_rounds_and_updates() -> None:
    sealed = seal_model(_model(), 3, "bafybase", CONTRACT, _policy().recipients())
    cases = [
        (lambda: open_model(sealed, MEMBERS[0], OTHER_CONTRACT, CAP), "binding"),
        (lambda: open_model(sealed, MEMBERS[0], CONTRACT, CAP, round_id=4), "binding"),
    ]
    for call, reason in cases:
        with pytest.raises(EnvelopeRejected) as info:
            call()
        assert info.value.reason == reason
    header, _, _ = parse_envelope(sealed, CAP, MODEL_BOUNDS)
    assert header["client"] == model_label(CONTRACT)
    # a model envelope can never pass as an update (and an update never as a model)
    with pytest.raises(EnvelopeRejected) as info:
        open_update(sealed, ORG, Binding(3, ACCOUNTS[0].address, "bafybase"), CAP)
    assert info.value.reason == "binding"
    # the inner metadata must match the envelope: no re-labelling of an older model
    opened = open_model(sealed, MEMBERS[0], CONTRACT, CAP)
    with pytest.raises(RejectedUpdate, match="binding"):
        check_model_metadata(opened, decode_blob(_model(round_id=2)).metadata)


def test_tampered_model_fails_authentication() -> None:
    sealed = bytearray(seal_model(_model(), 3, "b", CONTRACT, _policy().recipients()))
    sealed[-40] ^= 1
    with pytest.raises(EnvelopeRejected) as info:
        open_model(bytes(sealed), MEMBERS[1], CONTRACT, CAP)
    assert info.value.reason == "decrypt"


def test_many_members_fit_a_model_envelope_but_not_an_update() -> None:
    keys = [PrivateKey.generate().public_key for _ in range(200)]
    sealed = seal_model(_model(), 1, "", CONTRACT, keys)
    assert len(parse_envelope(sealed, CAP, MODEL_BOUNDS)[0]["recipients"]) == 200
    with pytest.raises(EnvelopeRejected, match=r"header length .* out of bounds"):
        parse_envelope(sealed, CAP)  # the update reader keeps its 16 KiB, 16-slot bounds
    few = seal_model(_model(), 1, "", CONTRACT, keys[: MAX_RECIPIENTS + 1])
    with pytest.raises(EnvelopeRejected, match=f"1..{MAX_RECIPIENTS}"):
        parse_envelope(few, CAP)


def test_round_config_publishes_the_recipients() -> None:
    policy = _policy()
    config = RoundConfig(2, "logreg", 0, TrainingConfig(), models=policy)
    decoded = decode_round_config(encode_round_config(config))
    assert decoded.models == policy
    assert b'"models"' not in encode_round_config(RoundConfig(2, "logreg", 0, TrainingConfig()))
    doc = json.loads(encode_round_config(config))
    doc["models"]["members"][0]["signature"] = "0x00"
    with pytest.raises(RejectedUpdate, match="round_config"):
        decode_round_config(json.dumps(doc).encode())


def test_verify_opens_sealed_models_with_an_auditor_key_or_says_unchecked() -> None:
    import hashlib

    from contracts.events import LogMeta, RoundOpened
    from daemons.verify.checks import MISMATCH, OK, UNCHECKED
    from daemons.verify.facts import Blob, RoundFacts
    from daemons.verify.sealed import is_sealed, unseal_models

    plain_base, plain_model = _model(1, ""), _model(2, "bafybase")
    recipients = _policy().recipients()
    base = seal_model(plain_base, 1, "", CONTRACT, recipients)
    model = seal_model(plain_model, 2, "bafybase", CONTRACT, recipients)
    meta = LogMeta(1, "0x00", "0x00", 0)
    opened = RoundOpened(2, "bafybase", hashlib.sha256(base).digest(), 0, 1, 1, "cfg", meta)
    facts = RoundFacts(2, opened, "0xorg", (), base=Blob(base), model=Blob(model))
    same, [check] = unseal_models(facts, None, CONTRACT, CAP)
    assert same is facts and check.status == UNCHECKED and "--auditor-key" in check.detail
    same, [check] = unseal_models(facts, OUTSIDER, CONTRACT, CAP)
    assert is_sealed(same.base) and check.status == UNCHECKED and "not sealed" in check.detail
    read, [check] = unseal_models(facts, AUDITOR, CONTRACT, CAP)
    assert check.status == OK and read.base.data == plain_base and read.model.data == plain_model
    assert read.model_sha256 == hashlib.sha256(plain_model).digest()
    tampered = bytearray(model)
    tampered[-3] ^= 1
    bad = RoundFacts(2, opened, "0xorg", (), base=Blob(base), model=Blob(bytes(tampered)))
    _, [check] = unseal_models(bad, AUDITOR, CONTRACT, CAP)
    assert check.status == MISMATCH and "decrypt" in check.detail
    public = RoundFacts(2, opened, "0xorg", (), base=Blob(plain_base), model=Blob(plain_model))
    assert unseal_models(public, None, CONTRACT, CAP) == (public, [])
