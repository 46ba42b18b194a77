"""Every custom error of FederatedRounds, reached through the Python binding on real anvil."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from contracts import errors
from contracts.artifact import load_artifact
from tests.contracts.helpers import (
    BASE_CID,
    CID59,
    CONFIG_CID,
    MANIFEST_CID,
    MODEL_CID,
    ZERO,
    advance,
    chain_now,
    open_round,
    sha,
    submit,
)
from tests.fixtures.anvil import ALL_NODES, Deployed

pytestmark = [pytest.mark.timeout(60), pytest.mark.evm_nodes(*ALL_NODES)]
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
Case = Callable[[Deployed], Awaitable[tuple[Awaitable[Any], dict[str, Any]]]]
CASES: dict[str, tuple[type[errors.ContractRevert], Case]] = {}


def case(name: str, error: type[errors.ContractRevert]) -> Callable[[Case], Case]:
    """Register a scenario: it sets the chain up, returns (failing call, expected args)."""

    def register(fn: Case) -> Case:
        CASES[name] = (error, fn)
        return fn

    return register


def _org_only(fn_name: str, *args: Any) -> Case:
    async def scenario(d: Deployed) -> tuple[Awaitable[Any], dict[str, Any]]:
        call = d.contract.transact(d.outsider, fn_name, *args)
        return call, {"caller": d.outsider.address}

    return scenario


for _fn, _args in {
    "addClient": (ZERO_ADDRESS.replace("0x0", "0x1"),),
    "addClients": ([],),
    "removeClient": (ZERO_ADDRESS,),
    "openRound": (BASE_CID, sha("b"), 2**40, 1, 1, CONFIG_CID),
    "closeRound": (1, MODEL_CID, sha("m"), MANIFEST_CID),
    "pause": (),
    "unpause": (),
    "transferOrg": (ZERO_ADDRESS,),
}.items():
    case(f"wrong caller: {_fn}", errors.NotOrg)(_org_only(_fn, *_args))


@case("accept org by a stranger", errors.NotPendingOrg)
async def _not_pending(d: Deployed):
    await d.contract.transfer_org(d.org, d.clients[0].address)
    return d.contract.accept_org(d.outsider), {"caller": d.outsider.address}


@case("zero client", errors.ZeroAddress)
async def _zero_client(d: Deployed):
    return d.contract.add_client(d.org, ZERO_ADDRESS), {}


@case("zero new org", errors.ZeroAddress)
async def _zero_org(d: Deployed):
    return d.contract.transfer_org(d.org, ZERO_ADDRESS), {}


def _paused(make: Callable[[Deployed], Awaitable[Any]], prepare: bool = False) -> Case:
    async def scenario(d: Deployed) -> tuple[Awaitable[Any], dict[str, Any]]:
        if prepare:
            await open_round(d, min_updates=1, max_updates=1)
            await submit(d, 0)
        await d.contract.pause(d.org)
        return make(d), {}

    return scenario


case("paused: addClient", errors.ContractPaused)(
    _paused(lambda d: d.contract.add_client(d.org, d.outsider.address))
)
case("paused: removeClient", errors.ContractPaused)(
    _paused(lambda d: d.contract.remove_client(d.org, d.clients[0].address))
)
case("paused: openRound", errors.ContractPaused)(_paused(lambda d: open_round(d)))
case("paused: pause again", errors.ContractPaused)(_paused(lambda d: d.contract.pause(d.org)))
case("paused: submitUpdate", errors.ContractPaused)(_paused(lambda d: submit(d, 1), prepare=True))
case("paused: closeRound", errors.ContractPaused)(
    _paused(lambda d: d.contract.close_round(d.org, 1, MODEL_CID, sha("m"), MANIFEST_CID), True)
)


@case("paused: failRound", errors.ContractPaused)
async def _paused_fail(d: Deployed):
    await open_round(d, min_updates=2)
    await d.contract.pause(d.org)
    await advance(d.w3, 10_000)
    return d.contract.fail_round(d.outsider, 1), {}


@case("unpause while running", errors.NotPaused)
async def _not_paused(d: Deployed):
    return d.contract.unpause(d.org), {}


@case("add a client twice", errors.AlreadyClient)
async def _already_client(d: Deployed):
    client = d.clients[1].address
    return d.contract.add_clients(d.org, [d.outsider.address, client]), {"client": client}


@case("not registered: submit", errors.NotClient)
async def _not_client(d: Deployed):
    await open_round(d)
    call = d.contract.submit_update(d.outsider, 1, CID59, sha("x"), 1)
    return call, {"account": d.outsider.address}


@case("removed client: submit", errors.NotClient)
async def _removed_client(d: Deployed):
    await open_round(d)
    await d.contract.remove_client(d.org, d.clients[2].address)
    return submit(d, 2), {"account": d.clients[2].address}


@case("remove a stranger", errors.NotClient)
async def _remove_stranger(d: Deployed):
    call = d.contract.remove_client(d.org, d.outsider.address)
    return call, {"account": d.outsider.address}


@case("open while a round is open", errors.RoundNotSettled)
async def _not_settled(d: Deployed):
    await open_round(d)
    return open_round(d), {"roundId": 1}


def _bad_deadline(offset_s: int) -> Case:
    async def scenario(d: Deployed) -> tuple[Awaitable[Any], dict[str, Any]]:
        now = await chain_now(d.w3)  # the next block's timestamp is at least this
        call = d.contract.open_round(d.org, BASE_CID, sha("b"), now + offset_s, 1, 1, CONFIG_CID)
        return call, {"deadline": now + offset_s}

    return scenario


case("bad deadline: now", errors.BadDeadline)(_bad_deadline(0))
case("bad deadline: past", errors.BadDeadline)(_bad_deadline(-100))
case("bad deadline: beyond MAX_DURATION", errors.BadDeadline)(_bad_deadline(31 * 86400))


def _bounds(min_updates: int, max_updates: int) -> Case:
    async def scenario(d: Deployed) -> tuple[Awaitable[Any], dict[str, Any]]:
        deadline = await chain_now(d.w3) + 100
        call = d.contract.open_round(
            d.org, BASE_CID, sha("b"), deadline, min_updates, max_updates, CONFIG_CID
        )
        return call, {"minUpdates": min_updates, "maxUpdates": max_updates}

    return scenario


case("min updates zero", errors.BadUpdateBounds)(_bounds(0, 3))
case("max below min", errors.BadUpdateBounds)(_bounds(3, 2))


def _open_with(base_cid: str, config_cid: str, digest: bytes = b"") -> Case:
    async def scenario(d: Deployed) -> tuple[Awaitable[Any], dict[str, Any]]:
        deadline = await chain_now(d.w3) + 100
        args = (base_cid, digest or sha("b"), deadline, 1, 1, config_cid)
        return d.contract.transact(d.org, "openRound", *args), {}

    return scenario


case("empty base CID", errors.EmptyCid)(_open_with("", CONFIG_CID))
case("empty config CID", errors.EmptyCid)(_open_with(BASE_CID, ""))
case("zero base digest", errors.EmptyDigest)(_open_with(BASE_CID, CONFIG_CID, ZERO))


@case("CID too long: base", errors.CidTooLong)
async def _long_base(d: Deployed):
    scenario = _open_with("b" * 129, CONFIG_CID)
    call, _ = await scenario(d)
    return call, {"length": 129, "maxLength": 128}


def _submit_with(cid: str, digest: bytes, num_samples: int) -> Case:
    async def scenario(d: Deployed) -> tuple[Awaitable[Any], dict[str, Any]]:
        await open_round(d)
        args = (1, cid, digest, num_samples)
        return d.contract.transact(d.clients[0], "submitUpdate", *args), {}

    return scenario


case("empty update CID", errors.EmptyCid)(_submit_with("", sha("u"), 1))
case("zero update digest", errors.EmptyDigest)(_submit_with(CID59, ZERO, 1))
case("zero samples", errors.ZeroSamples)(_submit_with(CID59, sha("u"), 0))


@case("CID too long: update", errors.CidTooLong)
async def _long_update(d: Deployed):
    call, _ = await _submit_with("u" * 200, sha("u"), 1)(d)
    return call, {"length": 200, "maxLength": 128}


def _close_with(model_cid: str, digest: bytes, manifest_cid: str) -> Case:
    async def scenario(d: Deployed) -> tuple[Awaitable[Any], dict[str, Any]]:
        await open_round(d, max_updates=1)
        await submit(d, 0)
        args = (1, model_cid, digest, manifest_cid)
        return d.contract.transact(d.org, "closeRound", *args), {}

    return scenario


case("empty model CID", errors.EmptyCid)(_close_with("", sha("m"), MANIFEST_CID))
case("empty manifest CID", errors.EmptyCid)(_close_with(MODEL_CID, sha("m"), ""))
case("CID too long: manifest", errors.CidTooLong)(_close_with(MODEL_CID, sha("m"), "m" * 129))
case("zero model digest", errors.EmptyDigest)(_close_with(MODEL_CID, ZERO, MANIFEST_CID))


@case("round 0 does not exist", errors.UnknownRound)
async def _unknown_zero(d: Deployed):
    return d.contract.get_round(0), {"roundId": 0}


@case("round after the current does not exist", errors.UnknownRound)
async def _unknown_next(d: Deployed):
    await open_round(d)
    return d.contract.get_round(2), {"roundId": 2}


@case("submit to a round never opened", errors.RoundNotOpen)
async def _submit_future(d: Deployed):
    await open_round(d)
    return submit(d, 0, round_id=2), {"roundId": 2}


@case("submit to a settled round", errors.RoundNotOpen)
async def _submit_settled(d: Deployed):
    await open_round(d, max_updates=1)
    await submit(d, 0)
    await d.contract.close_round(d.org, 1, MODEL_CID, sha("m"), MANIFEST_CID)
    return submit(d, 1), {"roundId": 1}


@case("close a settled round", errors.RoundNotOpen)
async def _close_settled(d: Deployed):
    await open_round(d, max_updates=1)
    await submit(d, 0)
    await d.contract.close_round(d.org, 1, MODEL_CID, sha("m"), MANIFEST_CID)
    return d.contract.close_round(d.org, 1, MODEL_CID, sha("m"), MANIFEST_CID), {"roundId": 1}


@case("fail a failed round", errors.RoundNotOpen)
async def _fail_settled(d: Deployed):
    await open_round(d)
    await advance(d.w3, 1000)
    await d.contract.fail_round(d.outsider, 1)
    return d.contract.fail_round(d.outsider, 1), {"roundId": 1}


@case("late submit", errors.DeadlinePassed)
async def _late(d: Deployed):
    deadline = await open_round(d)
    await advance(d.w3, 601)
    return submit(d, 0), {"roundId": 1, "deadline": deadline}


@case("double submit", errors.AlreadySubmitted)
async def _double(d: Deployed):
    await open_round(d)
    await submit(d, 1)
    return submit(d, 1), {"roundId": 1, "client": d.clients[1].address}


@case("over max updates", errors.RoundFull)
async def _full(d: Deployed):
    await open_round(d, min_updates=1, max_updates=2)
    await submit(d, 0)
    await submit(d, 1)
    return submit(d, 2), {"roundId": 1, "maxUpdates": 2}


@case("close too early", errors.TooEarly)
async def _close_early(d: Deployed):
    deadline = await open_round(d, min_updates=1, max_updates=3)
    await submit(d, 0)
    call = d.contract.close_round(d.org, 1, MODEL_CID, sha("m"), MANIFEST_CID)
    return call, {"roundId": 1, "deadline": deadline}


@case("fail too early", errors.TooEarly)
async def _fail_early(d: Deployed):
    deadline = await open_round(d, min_updates=2)
    return d.contract.fail_round(d.outsider, 1), {"roundId": 1, "deadline": deadline}


@case("close with too few updates", errors.NotEnoughUpdates)
async def _too_few(d: Deployed):
    await open_round(d, min_updates=2, max_updates=3)
    await submit(d, 0)
    await advance(d.w3, 601)
    call = d.contract.close_round(d.org, 1, MODEL_CID, sha("m"), MANIFEST_CID)
    return call, {"roundId": 1, "numUpdates": 1, "minUpdates": 2}


@case("fail a round that reached min", errors.EnoughUpdates)
async def _enough(d: Deployed):
    await open_round(d, min_updates=1)
    await submit(d, 2)
    await advance(d.w3, 601)
    return d.contract.fail_round(d.org, 1), {"roundId": 1, "numUpdates": 1, "minUpdates": 1}


def test_every_custom_error_has_a_case() -> None:
    """The table below covers each error the ABI declares, so a new error needs a test."""
    declared = {e["name"] for e in load_artifact().entries("error")}
    covered = {error.__name__ for error, _ in CASES.values()}
    assert declared == covered
    assert declared <= set(errors.ERROR_CLASSES)


@pytest.mark.parametrize("name", sorted(CASES))
async def test_revert_is_named(deployed: Deployed, name: str) -> None:
    error, scenario = CASES[name]
    call, expected_args = await scenario(deployed)
    with pytest.raises(error) as info:
        await call
    assert info.value.error_name == error.__name__
    assert expected_args.items() <= info.value.error_args.items()
    assert error.__name__ in str(info.value)
