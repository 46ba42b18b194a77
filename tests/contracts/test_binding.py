"""The binding's views, transactions and revert mapping against a real anvil."""

from __future__ import annotations

import pytest

from contracts import errors
from contracts.binding import BadArgument, FederatedRounds
from contracts.errors import revert_from_data
from contracts.events import RoundOpened, decode_logs
from contracts.state import RoundStatus
from tests.contracts.helpers import (
    BASE_CID,
    CID59,
    CONFIG_CID,
    MANIFEST_CID,
    MODEL_CID,
    advance,
    chain_now,
    open_round,
    set_next_timestamp,
    sha,
    submit,
)
from tests.fixtures.anvil import Deployed

pytestmark = pytest.mark.timeout(60)


async def test_fresh_contract_views(deployed: Deployed) -> None:
    c = deployed.contract
    assert await c.org() == deployed.org.address
    assert await c.pending_org() == "0x0000000000000000000000000000000000000000"
    assert not await c.paused()
    assert await c.current_round_id() == 0
    assert await c.max_duration() == 30 * 86400
    assert await c.max_cid_length() == 128
    for client in deployed.clients:
        assert await c.is_client(client.address)
    assert not await c.is_client(deployed.outsider.address)


async def test_round_closes_early_once_max_updates_arrive(deployed: Deployed) -> None:
    d, c = deployed, deployed.contract
    deadline = await open_round(d, min_updates=2, max_updates=2)
    assert await c.current_round_id() == 1
    await submit(d, 0)
    assert await c.has_submitted(1, d.clients[0].address)
    assert not await c.has_submitted(1, d.clients[1].address)
    await submit(d, 1)
    update = await c.get_update(1, d.clients[1].address)
    assert (update.submitted, update.digest, update.num_samples) == (True, sha("u1-1"), 101)
    await c.close_round(d.org, 1, MODEL_CID, sha("m"), MANIFEST_CID)
    info = await c.get_round(1)
    assert info.status is RoundStatus.CLOSED and info.settled
    assert (info.deadline, info.num_updates, info.min_updates, info.max_updates) == (
        deadline,
        2,
        2,
        2,
    )
    assert (info.model_cid, info.model_digest, info.manifest_cid) == (
        MODEL_CID,
        sha("m"),
        MANIFEST_CID,
    )
    assert (info.base_cid, info.config_cid) == (BASE_CID, CONFIG_CID)


async def test_round_closes_after_deadline_with_min_updates(deployed: Deployed) -> None:
    d = deployed
    await open_round(d, min_updates=1, max_updates=3)
    await submit(d, 2)
    await advance(d.w3, 601)
    await d.contract.close_round(d.org, 1, MODEL_CID, sha("m"), MANIFEST_CID)
    assert (await d.contract.get_round(1)).status is RoundStatus.CLOSED
    await open_round(d)
    assert await d.contract.current_round_id() == 2


async def test_anyone_fails_a_starved_round_then_org_reopens(deployed: Deployed) -> None:
    d = deployed
    deadline = await open_round(d, min_updates=2)
    await set_next_timestamp(d.w3, deadline)
    await submit(d, 0)  # block time == deadline is still on time
    assert await chain_now(d.w3) == deadline
    await advance(d.w3, 1)
    await d.contract.fail_round(d.clients[1], 1)
    info = await d.contract.get_round(1)
    assert (info.status, info.num_updates) == (RoundStatus.FAILED, 1)
    receipt = await d.contract.open_round(
        d.org, BASE_CID, sha("base"), await chain_now(d.w3) + 50, 1, 1, CONFIG_CID
    )
    (opened,) = decode_logs(receipt["logs"])
    assert isinstance(opened, RoundOpened) and opened.round_id == 2


async def test_two_step_org_transfer(deployed: Deployed) -> None:
    d, c = deployed, deployed.contract
    new_org = d.outsider
    await c.transfer_org(d.org, new_org.address)
    assert await c.pending_org() == new_org.address
    assert await c.org() == d.org.address
    await c.accept_org(new_org)
    assert await c.org() == new_org.address
    with pytest.raises(errors.NotOrg):
        await c.pause(d.org)
    await c.pause(new_org)
    assert await c.paused()


async def test_pause_allows_transfer_and_unpause_resumes(deployed: Deployed) -> None:
    d, c = deployed, deployed.contract
    await open_round(d)
    await c.pause(d.org)
    with pytest.raises(errors.ContractPaused):
        await submit(d, 0)
    await c.transfer_org(d.org, d.clients[0].address)  # key rotation stays possible
    await c.unpause(d.org)
    await submit(d, 0)
    assert (await c.get_round(1)).num_updates == 1


async def test_mined_failures_are_named_by_replay(deployed: Deployed) -> None:
    """A tx sent without estimation is mined with status 0; its revert is still named."""
    d, c = deployed, deployed.contract
    deadline = await open_round(d)
    await submit(d, 0)
    with pytest.raises(errors.AlreadySubmitted):
        await c.transact(d.clients[0], "submitUpdate", 1, CID59, sha("again"), 5, gas=300_000)
    with pytest.raises(errors.NotOrg):
        await c.transact(d.outsider, "pause", gas=100_000)
    await advance(d.w3, 601)
    with pytest.raises(errors.DeadlinePassed) as info:
        await c.transact(d.clients[1], "submitUpdate", 1, CID59, sha("late"), 5, gas=300_000)
    assert info.value.error_args == {"roundId": 1, "deadline": deadline}
    assert (await c.get_round(1)).num_updates == 1


async def test_build_transaction_is_unsigned_and_signable(deployed: Deployed) -> None:
    d, c = deployed, deployed.contract
    nonce = await d.w3.eth.get_transaction_count(d.org.address)
    tx = await c.build_transaction("pause", [], d.org.address, nonce=nonce)
    assert tx["nonce"] == nonce and tx["chainId"] == 31337 and tx["to"] == c.address
    assert tx["gas"] > 21_000 and tx["maxFeePerGas"] >= tx["maxPriorityFeePerGas"]
    raw = d.org.sign_transaction(tx).raw_transaction
    tx_hash = await d.w3.eth.send_raw_transaction(raw)
    await c.wait_for_receipt(tx_hash.to_0x_hex())
    assert await c.paused()
    with pytest.raises(errors.ContractPaused):
        await c.build_transaction("pause", [], d.org.address)


async def test_bad_python_arguments_are_named(deployed: Deployed) -> None:
    d = deployed
    with pytest.raises(BadArgument, match="base_digest must be 32 raw bytes"):
        await d.contract.open_round(d.org, BASE_CID, b"short", 10**10, 1, 1, CONFIG_CID)
    with pytest.raises(BadArgument, match="digest"):
        await d.contract.submit_update(d.clients[0], 1, CID59, "ab" * 32, 1)  # type: ignore[arg-type]


async def test_binding_reattaches_by_address(deployed: Deployed) -> None:
    again = FederatedRounds(deployed.w3, deployed.contract.address.lower())
    assert again.address == deployed.contract.address
    assert await again.org() == deployed.org.address


def test_revert_data_decoding_edge_cases() -> None:
    assert isinstance(revert_from_data(None), errors.UnknownRevert)
    assert isinstance(revert_from_data("0xdeadbeef"), errors.UnknownRevert)
    reason = revert_from_data(
        "0x08c379a0" + "20".rjust(64, "0") + "2".rjust(64, "0") + "6869".ljust(64, "0")
    )
    assert isinstance(reason, errors.SolidityError) and reason.error_args == {"reason": "hi"}
    assert isinstance(
        revert_from_data(bytes.fromhex("4e487b71") + b"\0" * 31 + b"\x11"), errors.Panic
    )


async def test_submit_update_stays_under_its_gas_budget(deployed: Deployed) -> None:
    """Issue 2: submitUpdate < 120,000 gas with a 59-character CIDv1 (no loops, CID in event)."""
    d = deployed
    await open_round(d, max_updates=3)
    for i in range(3):
        receipt = await d.contract.submit_update(d.clients[i], 1, CID59, sha(f"g{i}"), 60_000)
        assert len(CID59) == 59 and receipt["gasUsed"] < 120_000
