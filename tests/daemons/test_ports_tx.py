"""The typed transactions derive the same idempotency keys the outbox has always stored.

A daemon upgraded mid-round must find its stored intent under the old key, so these strings
are a contract: `open:<r>`, `open:<r>:<deadline>`, `submit:<r>`, `close:<r>`, `fail:<r>`,
`add_clients:<first 12 hex of sha256 of the comma-joined set>`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from contracts.state import RoundInfo
from daemons.chain.port import (
    Chain,
    Tx,
    add_clients_tx,
    close_round_tx,
    fail_round_tx,
    open_round_tx,
    submit_update_tx,
)

DIGEST = bytes(range(32))


def test_each_transaction_has_its_key_its_function_and_its_arguments_in_order() -> None:
    assert open_round_tx(3, "bafybase", DIGEST, 1700, 2, 4, "bafycfg") == Tx(
        "open:3", "openRound", ("bafybase", DIGEST, 1700, 2, 4, "bafycfg")
    )
    assert open_round_tx(3, "bafybase", DIGEST, 1700, 2, 4, "bafycfg", afresh=True).key == (
        "open:3:1700"
    )
    assert submit_update_tx(3, "bafyupd", DIGEST, 120) == Tx(
        "submit:3", "submitUpdate", (3, "bafyupd", DIGEST, 120)
    )
    assert close_round_tx(3, "bafymodel", DIGEST, "bafyman") == Tx(
        "close:3", "closeRound", (3, "bafymodel", DIGEST, "bafyman")
    )
    assert fail_round_tx(3) == Tx("fail:3", "failRound", (3,))
    clients = ["0x" + "a" * 40, "0x" + "b" * 40]
    tag = hashlib.sha256(",".join(clients).encode()).hexdigest()[:12]
    assert add_clients_tx(clients) == Tx(f"add_clients:{tag}", "addClients", (clients,))


class Recorder(Chain):
    """Only `send` matters here: the reads are never called."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, tuple[Any, ...]]] = []

    async def current_round_id(self) -> int:
        raise AssertionError("not read")

    async def get_round(self, round_id: int) -> RoundInfo:
        raise AssertionError("not read")

    async def is_client(self, client: str) -> bool:
        raise AssertionError("not read")

    async def has_submitted(self, round_id: int, client: str) -> bool:
        raise AssertionError("not read")

    async def now_s(self) -> int:
        raise AssertionError("not read")

    async def send(self, key: str, fn_name: str, *args: Any) -> Any:
        self.sent.append((key, fn_name, args))
        return {"status": 1}


async def test_the_typed_methods_send_their_transaction_under_its_key() -> None:
    chain = Recorder()
    await chain.submit_update(2, "bafyupd", DIGEST, 7)
    await chain.close_round(2, "bafymodel", DIGEST, "bafyman")
    await chain.fail_round(5)
    assert chain.sent == [
        ("submit:2", "submitUpdate", (2, "bafyupd", DIGEST, 7)),
        ("close:2", "closeRound", (2, "bafymodel", DIGEST, "bafyman")),
        ("fail:5", "failRound", (5,)),
    ]
