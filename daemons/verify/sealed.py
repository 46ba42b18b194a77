"""Models sealed to the members (docs/security.md): open them with an auditor key, or say why not.

The chain's digests cover the envelopes, and the fetch already checked those. With a key the
verifier opens the base and the model (the plaintext's sha256 is authenticated inside the
envelope) and the replay compares against those plaintext digests; without one, or when the
envelope has no slot for the key, the model-content checks are reported as unchecked.
"""

from __future__ import annotations

from dataclasses import replace

from nacl.public import PrivateKey

from daemons.privacy.envelope import EnvelopeRejected, is_envelope
from daemons.privacy.models import open_model
from daemons.verify.checks import Check, mismatch, ok, unchecked
from daemons.verify.facts import Blob, RoundFacts

NO_KEY = (
    "the models are sealed to the members: pass --auditor-key FILE (an auditor the org "
    "lists) to check their contents"
)


def is_sealed(blob: Blob) -> bool:
    """A fetched blob that is still an envelope (not opened: no key, or not a recipient)."""
    return blob.data is not None and is_envelope(blob.data)


def unseal_models(
    facts: RoundFacts, key: PrivateKey | None, contract: str, max_bytes: int
) -> tuple[RoundFacts, list[Check]]:
    """The round's facts with its sealed base and model opened where `key` can, and a check."""
    sealed = [
        (name, b) for name, b in (("base", facts.base), ("model", facts.model)) if is_sealed(b)
    ]
    if not sealed:
        return facts, []
    if key is None:
        return facts, [unchecked("sealed", NO_KEY)]
    opened: dict[str, Blob] = {}
    digests: dict[str, bytes] = {}
    for name, blob in sealed:
        assert blob.data is not None
        try:
            plain = open_model(blob.data, key, contract, max_bytes)
        except EnvelopeRejected as exc:
            if exc.reason == "not_recipient":
                why = f"the {name} is not sealed to this auditor key ({exc.detail})"
                return facts, [unchecked("sealed", why)]
            return facts, [mismatch("sealed", f"the sealed {name}: {exc.reason}: {exc.detail}")]
        opened[name] = Blob(plain.plaintext)
        digests[f"{name}_sha256"] = _sha256(plain.plaintext)
    unsealed = replace(facts, **opened, **digests)  # type: ignore[arg-type]
    return unsealed, [ok("sealed", f"{' and '.join(opened)} opened with the auditor key")]


def _sha256(data: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(data).digest()
