"""Decode FederatedRounds logs into frozen dataclasses: the events ARE the protocol."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from contracts.artifact import load_artifact
from contracts.errors import ContractError


class UnknownEvent(ContractError):
    """A log whose topic0 is no FederatedRounds event, or whose data does not decode."""


@dataclass(frozen=True)
class LogMeta:
    """Where a log sits on the chain; hashes are 0x-prefixed lowercase hex."""

    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class ClientAdded:
    client: str
    meta: LogMeta


@dataclass(frozen=True)
class ClientRemoved:
    client: str
    meta: LogMeta


@dataclass(frozen=True)
class RoundOpened:
    round_id: int
    base_cid: str
    base_digest: bytes
    deadline: int
    min_updates: int
    max_updates: int
    config_cid: str
    meta: LogMeta


@dataclass(frozen=True)
class UpdateSubmitted:
    round_id: int
    client: str
    update_cid: str
    digest: bytes
    num_samples: int
    meta: LogMeta


@dataclass(frozen=True)
class RoundClosed:
    round_id: int
    model_cid: str
    model_digest: bytes
    manifest_cid: str
    num_updates: int
    meta: LogMeta


@dataclass(frozen=True)
class RoundFailed:
    round_id: int
    num_updates: int
    meta: LogMeta


@dataclass(frozen=True)
class Paused:
    account: str
    meta: LogMeta


@dataclass(frozen=True)
class Unpaused:
    account: str
    meta: LogMeta


@dataclass(frozen=True)
class OrgTransferStarted:
    previous_org: str
    new_org: str
    meta: LogMeta


@dataclass(frozen=True)
class OrgTransferred:
    previous_org: str
    new_org: str
    meta: LogMeta


ContractEvent = (
    ClientAdded
    | ClientRemoved
    | RoundOpened
    | UpdateSubmitted
    | RoundClosed
    | RoundFailed
    | Paused
    | Unpaused
    | OrgTransferStarted
    | OrgTransferred
)

EVENT_CLASSES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        ClientAdded,
        ClientRemoved,
        RoundOpened,
        UpdateSubmitted,
        RoundClosed,
        RoundFailed,
        Paused,
        Unpaused,
        OrgTransferStarted,
        OrgTransferred,
    )
}


def snake_case(name: str) -> str:
    """Solidity camelCase argument name -> Python field name (roundId -> round_id)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class _EventSpec:
    cls: type[Any]
    indexed: tuple[tuple[str, str], ...]  # (field, abi type) in topic order
    data: tuple[tuple[str, str], ...]  # (field, abi type) in data order


def _event_specs() -> dict[str, _EventSpec]:
    specs: dict[str, _EventSpec] = {}
    for entry in load_artifact().entries("event"):
        types = ",".join(i["type"] for i in entry["inputs"])
        topic0 = "0x" + keccak(text=f"{entry['name']}({types})").hex()
        pairs = [(snake_case(i["name"]), i["type"], i["indexed"]) for i in entry["inputs"]]
        specs[topic0] = _EventSpec(
            cls=EVENT_CLASSES[entry["name"]],
            indexed=tuple((n, t) for n, t, ix in pairs if ix),
            data=tuple((n, t) for n, t, ix in pairs if not ix),
        )
    return specs


_SPECS = _event_specs()
EVENT_TOPICS: dict[str, type[Any]] = {topic: spec.cls for topic, spec in _SPECS.items()}
TOPIC_OF: dict[type[Any], str] = {cls: topic for topic, cls in EVENT_TOPICS.items()}


def _hex(value: Any) -> str:
    """HexBytes / bytes / 0x-str -> 0x-prefixed lowercase hex."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return "0x" + str(value).lower().removeprefix("0x")


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def _bytes(value: Any) -> bytes:
    return bytes.fromhex(_hex(value)[2:])


def log_meta(raw_log: Mapping[str, Any]) -> LogMeta:
    """The position of a raw log (web3 AttributeDict or a plain JSON-RPC dict)."""
    return LogMeta(
        block_number=_int(raw_log["blockNumber"]),
        block_hash=_hex(raw_log["blockHash"]),
        tx_hash=_hex(raw_log["transactionHash"]),
        log_index=_int(raw_log["logIndex"]),
    )


def decode_log(raw_log: Mapping[str, Any]) -> ContractEvent:
    """Decode one raw log from eth_getLogs or a receipt; raises UnknownEvent if it is not ours."""
    topics = [_hex(t) for t in raw_log.get("topics", [])]
    spec = _SPECS.get(topics[0]) if topics else None
    if spec is None:
        raise UnknownEvent(f"log topic0 {topics[:1]} is no FederatedRounds event")
    if len(topics) != 1 + len(spec.indexed):
        raise UnknownEvent(f"{spec.cls.__name__} log has {len(topics) - 1} indexed topics")
    try:
        values = dict(_decode_topics(spec, topics[1:]))
        decoded = abi_decode([t for _, t in spec.data], _bytes(raw_log.get("data", b"")))
    except Exception as exc:
        raise UnknownEvent(f"{spec.cls.__name__} log does not decode: {exc}") from exc
    for (name, abi_type), value in zip(spec.data, decoded, strict=True):
        values[name] = _normalize(abi_type, value)
    event: ContractEvent = spec.cls(**values, meta=log_meta(raw_log))
    return event


def _decode_topics(spec: _EventSpec, topics: list[str]) -> list[tuple[str, Any]]:
    out = []
    for (name, abi_type), topic in zip(spec.indexed, topics, strict=True):
        (value,) = abi_decode([abi_type], _bytes(topic))
        out.append((name, _normalize(abi_type, value)))
    return out


def _normalize(abi_type: str, value: Any) -> Any:
    return to_checksum_address(value) if abi_type == "address" else value


def decode_logs(raw_logs: Iterable[Mapping[str, Any]]) -> list[ContractEvent]:
    """Decode the logs that are ours (e.g. a receipt's), skipping other contracts' events."""
    return [decode_log(log) for log in raw_logs if _is_ours(log)]


def _is_ours(raw_log: Mapping[str, Any]) -> bool:
    topics = raw_log.get("topics", [])
    return bool(topics) and _hex(topics[0]) in _SPECS


def event_key(event: ContractEvent) -> str:
    """A key stable across re-reads of the same log: "<tx_hash>:<log_index>"."""
    return f"{event.meta.tx_hash}:{event.meta.log_index}"


def event_fields(cls: type[Any]) -> list[str]:
    """The payload field names of an event class (without meta)."""
    return [f.name for f in fields(cls) if f.name != "meta"]
