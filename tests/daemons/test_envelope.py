"""Encrypted update envelopes: round trip, every rejection reason, tampering, hostile bytes."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey

from daemons.privacy.envelope import (
    MAGIC,
    PREFIX_BYTES,
    Binding,
    EnvelopeRejected,
    open_update,
    parse_envelope,
    seal_update,
)
from models.codec import BlobMetadata, decode_blob, encode_blob
from models.errors import BlobRejected

pytestmark = pytest.mark.timeout(120)

ORG, AUDITOR, OUTSIDER = (PrivateKey(bytes([i]) * 32) for i in (1, 2, 3))
BINDING = Binding(4, "0x00000000000000000000000000000000000000A1", "bafybase")
PARAMS = {"w": np.arange(64, dtype=np.float32).reshape(8, 8) / 7.0 + 0.123}
PLAIN = encode_blob(
    {"params": PARAMS}, BlobMetadata("update", 4, BINDING.client, "bafybase", 9, "x")
)
CAP = 1 << 20
REASONS = {"too_large", "not_encrypted", "envelope", "binding", "recipients", "not_recipient"}
REASONS |= {"decrypt", "plaintext_digest"}


def _sealed(plain: bytes = PLAIN, binding: Binding = BINDING) -> bytes:
    return seal_update(plain, binding, [ORG.public_key, AUDITOR.public_key])


def _reason(
    envelope: bytes, key: PrivateKey = ORG, binding: Binding = BINDING, **kw: object
) -> str:
    with pytest.raises(EnvelopeRejected) as info:
        open_update(envelope, key, binding, CAP, **kw)  # type: ignore[arg-type]
    return info.value.reason


def _rebuild(envelope: bytes, edit: object) -> bytes:
    """The envelope with its header edited by `edit(doc)` and re-encoded canonically."""
    header, _, body = parse_envelope(envelope, CAP)
    edit(header)  # type: ignore[operator]
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + b"\x01" + len(raw).to_bytes(4, "little") + raw + body


def test_org_and_auditor_open_to_the_same_plaintext() -> None:
    envelope = _sealed()
    assert open_update(envelope, ORG, BINDING, CAP) == PLAIN
    assert open_update(envelope, AUDITOR, BINDING, CAP) == PLAIN
    header, _, _ = parse_envelope(envelope, CAP)
    assert header["plaintext_sha256"] == hashlib.sha256(PLAIN).hexdigest()


def test_outsider_learns_nothing_readable() -> None:
    envelope = _sealed()
    with pytest.raises(BlobRejected):
        decode_blob(envelope)
    leaf = PARAMS["w"].tobytes()
    assert all(leaf[i : i + 16] not in envelope for i in range(0, len(leaf) - 16, 4))
    assert b"train_metrics" not in envelope and b"params/" not in envelope
    assert _reason(envelope, key=OUTSIDER) == "not_recipient"


def test_two_seals_differ_but_open_alike() -> None:
    """A fresh content key and nonce each time: equal updates are not linkable by bytes."""
    a, b = _sealed(), _sealed()
    assert a != b
    assert open_update(a, ORG, BINDING, CAP) == open_update(b, ORG, BINDING, CAP)


def test_copied_update_is_rejected_by_the_binding() -> None:
    copier = Binding(BINDING.round_id, "0x00000000000000000000000000000000000000B2", "bafybase")
    assert _reason(_sealed(), binding=copier) == "binding"
    assert _reason(_sealed(), binding=Binding(5, BINDING.client, "bafybase")) == "binding"
    assert _reason(_sealed(), binding=Binding(4, BINDING.client, "bafyother")) == "binding"
    lower = Binding(4, BINDING.client.lower(), "bafybase")
    assert open_update(_sealed(), ORG, lower, CAP) == PLAIN


def test_rewriting_the_binding_breaks_authentication() -> None:
    """A copier who edits the header to name itself cannot re-seal: AEAD fails."""
    copier = "0x00000000000000000000000000000000000000B2"
    forged = _rebuild(_sealed(), lambda h: h.update(client=copier))
    assert _reason(forged, binding=Binding(4, copier, "bafybase")) == "decrypt"


def test_required_recipients() -> None:
    only_org = seal_update(PLAIN, BINDING, [ORG.public_key])
    assert open_update(only_org, ORG, BINDING, CAP, required=[ORG.public_key]) == PLAIN
    assert _reason(only_org, required=[ORG.public_key, AUDITOR.public_key]) == "recipients"


def test_tampering_anywhere_is_rejected() -> None:
    envelope = _sealed()
    for pos in range(0, len(envelope), max(1, len(envelope) // 400)):
        flipped = bytearray(envelope)
        flipped[pos] ^= 0x01
        assert _reason(bytes(flipped)) in REASONS - {"plaintext_digest"}


def test_wrong_plaintext_digest_is_caught_even_if_authentic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sealer that writes a false plaintext digest (authentic otherwise): `plaintext_digest`."""
    import types

    import daemons.privacy.envelope as env

    lying_hashlib = types.SimpleNamespace(sha256=lambda data: hashlib.sha256(b"other " + data))
    with monkeypatch.context() as m:
        m.setattr(env, "hashlib", lying_hashlib)
        lying = _sealed()
    assert _reason(lying) == "plaintext_digest"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (PLAIN, "not_encrypted"),
        (b"", "not_encrypted"),
        (MAGIC, "envelope"),
        (MAGIC + b"\x02" + b"\x00" * 4, "envelope"),
        (MAGIC + b"\x01" + (10**6).to_bytes(4, "little"), "envelope"),
        (MAGIC + b"\x01" + (2).to_bytes(4, "little") + b"{}", "envelope"),
        (MAGIC + b"\x01" + (1).to_bytes(4, "little") + b"\xff", "envelope"),
    ],
)
def test_malformed(data: bytes, reason: str) -> None:
    assert _reason(data) == reason


def test_size_cap_before_parsing() -> None:
    envelope = _sealed()
    with pytest.raises(EnvelopeRejected) as info:
        open_update(envelope, ORG, BINDING, len(envelope) - 1)
    assert info.value.reason == "too_large"


@pytest.mark.parametrize(
    "edit",
    [
        lambda h: h.update(extra=1),
        lambda h: h.pop("nonce"),
        lambda h: h.update(round_id=True),
        lambda h: h.update(round_id=-1),
        lambda h: h.update(nonce="00"),
        lambda h: h.update(aead="aes-256-gcm"),
        lambda h: h.update(recipients=[]),
        lambda h: h.update(recipients=h["recipients"][::-1]),
        lambda h: h.update(recipients=[h["recipients"][0]] * 2),
        lambda h: h.update(plaintext_bytes=h["plaintext_bytes"] + 1),
        lambda h: h["recipients"][0].update(sealed_key="ab"),
    ],
)
def test_header_fields_are_checked(edit: object) -> None:
    assert _reason(_rebuild(_sealed(), edit)) == "envelope"


def test_non_canonical_header_is_rejected() -> None:
    envelope = _sealed()
    header, _, body = parse_envelope(envelope, CAP)
    raw = json.dumps(header, sort_keys=True, indent=1).encode()
    loose = MAGIC + b"\x01" + len(raw).to_bytes(4, "little") + raw + body
    assert _reason(loose) == "envelope"


def test_duplicate_keys_are_rejected() -> None:
    envelope = _sealed()
    header_len = int.from_bytes(envelope[6:10], "little")
    raw = envelope[PREFIX_BYTES : PREFIX_BYTES + header_len]
    doubled = raw[:-1] + b',"aead":"xchacha20poly1305-ietf"}'
    data = MAGIC + b"\x01" + len(doubled).to_bytes(4, "little") + doubled
    assert _reason(data + envelope[PREFIX_BYTES + header_len :]) == "envelope"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048), st.integers(0, 2047))
def test_fuzz_only_typed_rejections(noise: bytes, cut: int) -> None:
    """Random bytes, and random truncations/splices of a real envelope: a typed reason only."""
    envelope = _sealed()
    for data in (MAGIC + b"\x01" + noise, envelope[:cut] + noise, noise):
        if data == envelope:
            continue
        try:
            open_update(data, ORG, BINDING, CAP)
        except EnvelopeRejected as exc:
            assert exc.reason in REASONS
        else:
            raise AssertionError("a mutated envelope opened")


def test_seal_checks_its_recipients() -> None:
    with pytest.raises(ValueError, match="recipients"):
        seal_update(PLAIN, BINDING, [])
    with pytest.raises(ValueError, match="recipients"):
        seal_update(PLAIN, BINDING, [PrivateKey.generate().public_key for _ in range(17)])
    same = seal_update(PLAIN, BINDING, [ORG.public_key, ORG.public_key])
    assert len(parse_envelope(same, CAP)[0]["recipients"]) == 1
