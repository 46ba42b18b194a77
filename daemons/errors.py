"""The error tree of the daemons package: one root, split by what the caller should do."""

from models.errors import Rejected


class FedchainError(Exception):
    """Root of every error the daemons raise on purpose."""


class TransientError(FedchainError):
    """A temporary failure (node unreachable, timeout): retry with jittered backoff."""


class ConfigError(FedchainError):
    """A configuration file or value is wrong: stop and tell the user which file and key."""


class RejectedUpdate(FedchainError, Rejected):
    """The daemons' `Rejected` (an update, envelope, round config or task pin was refused):
    one root with the models' `BlobRejected`, so `except Rejected` catches both."""

    def __init__(self, reason: str, detail: str = "") -> None:
        Rejected.__init__(self, detail, reason)


class ChainResetError(FedchainError):
    """The chain's id or genesis hash differs from what the state directory recorded."""
