"""The error tree of the daemons package: one root, split by what the caller should do."""


class FedchainError(Exception):
    """Root of every error the daemons raise on purpose."""


class TransientError(FedchainError):
    """A temporary failure (node unreachable, timeout): retry with jittered backoff."""


class ConfigError(FedchainError):
    """A configuration file or value is wrong: stop and tell the user which file and key."""


class RejectedUpdate(FedchainError):
    """An update blob was refused; `reason` is a short code a log line and manifest can show."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ChainResetError(FedchainError):
    """The chain's id or genesis hash differs from what the state directory recorded."""
