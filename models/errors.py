"""Errors of the models package, under one root `ModelsError` (models.types re-exports it).

Blob rejections carry a short machine-readable `reason` (for manifests and metrics) and a human
`detail` (for the log line), so a daemon can record why an update was refused and go on.
"""

from __future__ import annotations

# No JAX here: every daemon module imports these (through daemons.errors), and the CLI,
# the testnet supervisor and `--help` must not pay JAX's ~1.3 s import for them.


class ModelsError(Exception):
    """Root of every error raised by ``models/`` (bad input, missing data, bad config)."""


class StrategyError(ModelsError, ValueError):
    """An aggregation strategy was misconfigured or given inconsistent updates."""


class Rejected(ModelsError):
    """The one root of "refused, with a reason": a blob, an update envelope, a round config.

    `reason` is a short code (a subclass's class attribute, or given), `detail` says what was
    wrong. A daemon catches `Rejected`, records `reason`, logs `detail` and goes on.
    """

    reason = "rejected"

    def __init__(self, detail: str = "", reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)
        self.detail = detail


class BlobRejected(Rejected):
    """A blob failed decoding or validation; `reason` is a short code, `detail` says what."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)


class BlobTooLarge(BlobRejected):
    """The blob exceeds the size cap (checked before anything is parsed)."""

    reason = "too_large"


class BlobParseError(BlobRejected):
    """The bytes are not a well-formed safetensors blob in fedchain's layout."""

    reason = "parse"


class MetadataMismatch(BlobRejected):
    """The `__metadata__` is missing a field, malformed, or differs from what was expected."""

    reason = "metadata"


class KeySetMismatch(BlobRejected):
    """The tensor names differ from the template's (missing or unexpected keys)."""

    reason = "keys"


class ShapeMismatch(BlobRejected):
    """A tensor's shape differs from the template's."""

    reason = "shape"


class DtypeRejected(BlobRejected):
    """A tensor's dtype is not in the allowlist."""

    reason = "dtype"


class NonFiniteValues(BlobRejected):
    """A tensor holds NaN or ±Inf."""

    reason = "non_finite"


class NegativeCurvature(BlobRejected):
    """A Fisher diagonal (`fisher/`, `u/`) has negative entries: impossible for mean squares."""

    reason = "negative_fisher"


class NormExceeded(BlobRejected):
    """The L2 norm of the parameters (or of their change from the base) exceeds the bound."""

    reason = "norm"


REJECTION_REASONS: tuple[str, ...] = tuple(
    cls.reason
    for cls in (
        BlobTooLarge,
        BlobParseError,
        MetadataMismatch,
        KeySetMismatch,
        ShapeMismatch,
        DtypeRejected,
        NonFiniteValues,
        NegativeCurvature,
        NormExceeded,
    )
)
