"""Contract reverts as Python exceptions: one class per Solidity custom error, named alike."""

from __future__ import annotations

from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from contracts.artifact import load_artifact


class ContractError(Exception):
    """Root of every error the contracts package raises on purpose."""


class ContractGone(ContractError):
    """The contract's address has no code (any more): the chain was reset under a daemon."""


class ContractRevert(ContractError):
    """The contract reverted; `error_name` is the Solidity error, `error_args` its arguments."""

    def __init__(self, error_name: str, args: dict[str, Any] | None = None) -> None:
        self.error_name = error_name
        self.error_args: dict[str, Any] = dict(args or {})
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.error_args.items())
        super().__init__(f"FederatedRounds reverted with {error_name}({shown})")


def _show(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


class NotOrg(ContractRevert):
    """Only the org may call this function."""


class NotPendingOrg(ContractRevert):
    """Only the address named by transferOrg may accept the org role."""


class ZeroAddress(ContractRevert):
    """The zero address is not a valid client or org."""


class ContractPaused(ContractRevert):
    """The contract is paused (or already paused, for pause())."""


class NotPaused(ContractRevert):
    """unpause() was called while the contract was not paused."""


class AlreadyClient(ContractRevert):
    """The address is already on the client allowlist."""


class NotClient(ContractRevert):
    """The address is not on the client allowlist."""


class RoundNotSettled(ContractRevert):
    """A new round needs the previous one closed or failed first."""


class BadDeadline(ContractRevert):
    """The deadline must lie in (now, now + MAX_DURATION]."""


class BadUpdateBounds(ContractRevert):
    """Need 1 <= minUpdates <= maxUpdates."""


class EmptyCid(ContractRevert):
    """A CID argument was the empty string."""


class CidTooLong(ContractRevert):
    """A CID argument was longer than MAX_CID_LENGTH bytes."""


class EmptyDigest(ContractRevert):
    """A digest argument was all zero bytes."""


class ZeroSamples(ContractRevert):
    """An update must be trained on at least one sample."""


class UnknownRound(ContractRevert):
    """No round with this id was ever opened."""


class RoundNotOpen(ContractRevert):
    """The round is not the open one (never opened, closed or failed)."""


class DeadlinePassed(ContractRevert):
    """The round's deadline (block timestamp) has passed."""


class AlreadySubmitted(ContractRevert):
    """This client already submitted an update for this round."""


class RoundFull(ContractRevert):
    """The round already holds maxUpdates updates."""


class TooEarly(ContractRevert):
    """The deadline has not passed (and, for closeRound, maxUpdates not reached)."""


class NotEnoughUpdates(ContractRevert):
    """closeRound needs at least minUpdates updates."""


class EnoughUpdates(ContractRevert):
    """failRound is only for rounds with fewer than minUpdates updates."""


class SolidityError(ContractRevert):
    """A plain `revert("reason")` / `require(..., "reason")`: Error(string)."""


class Panic(ContractRevert):
    """A Solidity panic (assert, overflow, ...): Panic(uint256)."""


class UnknownRevert(ContractRevert):
    """A revert whose data matches no known error (or no data at all)."""


ERROR_CLASSES: dict[str, type[ContractRevert]] = {
    cls.__name__: cls for cls in ContractRevert.__subclasses__() if cls is not UnknownRevert
}


_ErrorSpec = tuple[str, tuple[str, ...], tuple[str, ...]]


@cache
def _selectors() -> dict[bytes, _ErrorSpec]:
    """4-byte selector -> (error name, argument names, argument types), from the ABI."""
    table: dict[bytes, _ErrorSpec] = {
        _selector("Error", ("string",)): ("SolidityError", ("reason",), ("string",)),
        _selector("Panic", ("uint256",)): ("Panic", ("code",), ("uint256",)),
    }
    for entry in load_artifact().entries("error"):
        types = tuple(i["type"] for i in entry["inputs"])
        names = tuple(i["name"] for i in entry["inputs"])
        table[_selector(entry["name"], types)] = (entry["name"], names, types)
    return table


def _selector(name: str, types: tuple[str, ...]) -> bytes:
    return keccak(text=f"{name}({','.join(types)})")[:4]


# where nodes put the revert data inside a JSON-RPC error's `data`: anvil sends the hex
# string itself; ganache nests it ({"result": "0x..."} for estimation, the string for calls);
# Hardhat's node ({"data": "0x...", "message": ...}); some wrap once more ("originalError")
_NESTED_KEYS = ("data", "result", "originalError", "error")


def revert_data(value: Any, depth: int = 0) -> str | None:
    """The 0x-hex revert data in a node's error `data`, however nested; None if there is none."""
    if depth > 4:
        return None
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, str):
        text = value.strip()
        return text if _is_hex(text) else None
    if isinstance(value, dict):
        for key in _NESTED_KEYS:
            found = revert_data(value.get(key), depth + 1)
            if found is not None:
                return found
    if isinstance(value, list | tuple):
        for item in value:
            found = revert_data(item, depth + 1)
            if found is not None:
                return found
    return None


def _is_hex(text: str) -> bool:
    digits = text[2:]
    return (
        text[:2] in ("0x", "0X")
        and len(digits) % 2 == 0
        and all(c in "0123456789abcdefABCDEF" for c in digits)
    )


def revert_from_data(data: bytes | str | None) -> ContractRevert:
    """Map revert data (selector + ABI-encoded args, bytes or 0x-hex) to its named exception."""
    raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else (data or b"")
    known = _selectors().get(raw[:4]) if len(raw) >= 4 else None
    if known is None:
        return UnknownRevert("unknown", {"data": raw})
    name, arg_names, types = known
    try:
        values = abi_decode(list(types), raw[4:])
    except Exception:
        return UnknownRevert("unknown", {"data": raw})
    args = {n: _normalize(t, v) for n, t, v in zip(arg_names, types, values, strict=True)}
    return ERROR_CLASSES.get(name, UnknownRevert)(name, args)


def _normalize(abi_type: str, value: Any) -> Any:
    return to_checksum_address(value) if abi_type == "address" else value
