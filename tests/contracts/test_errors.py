"""Revert data however a node nests it: anvil's string, ganache's and Hardhat's objects."""

from __future__ import annotations

import pytest

from contracts import errors

UNKNOWN_ROUND_7 = "0x4af50638" + "0" * 63 + "7"


@pytest.mark.parametrize(
    "data",
    [
        UNKNOWN_ROUND_7,  # anvil, and ganache for eth_call
        {
            "hash": None,
            "programCounter": 1014,
            "result": UNKNOWN_ROUND_7,
            "reason": None,
        },  # ganache estimateGas
        {"message": "reverted with custom error", "data": UNKNOWN_ROUND_7},  # Hardhat
        {"originalError": {"code": 3, "data": UNKNOWN_ROUND_7}},
        [{"data": UNKNOWN_ROUND_7}],
    ],
    ids=["string", "ganache", "hardhat", "wrapped", "list"],
)
def test_nested_revert_data_decodes_to_the_named_error(data: object) -> None:
    found = errors.revert_data(data)
    assert found == UNKNOWN_ROUND_7
    exc = errors.revert_from_data(found)
    assert isinstance(exc, errors.UnknownRound) and exc.error_args == {"roundId": 7}


@pytest.mark.parametrize("data", [None, "revert", {"message": "revert"}, "0x123", 42])
def test_no_revert_data_is_none(data: object) -> None:
    assert errors.revert_data(data) is None
