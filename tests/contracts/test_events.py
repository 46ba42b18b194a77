"""Every FederatedRounds event, emitted on real anvil, decoded field by field."""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils.abi import event_abi_to_log_topic

from contracts import events as ev
from contracts.artifact import load_artifact
from contracts.events import UnknownEvent, decode_log, decode_logs, event_fields, event_key
from tests.contracts.helpers import (
    BASE_CID,
    CID59,
    CONFIG_CID,
    MANIFEST_CID,
    MODEL_CID,
    advance,
    open_round,
    sha,
    submit,
)
from tests.fixtures.anvil import ALL_NODES, Deployed

pytestmark = [pytest.mark.timeout(60), pytest.mark.evm_nodes(*ALL_NODES)]


async def _all_logs(d: Deployed) -> list[dict[str, Any]]:
    """The contract's logs as plain JSON-RPC dicts (hex strings), as eth_getLogs returns them."""
    flt = {"fromBlock": "0x0", "toBlock": "latest", "address": d.contract.address}
    reply = await d.w3.provider.make_request("eth_getLogs", [flt])
    return list(reply["result"])


async def _every_event(d: Deployed) -> None:
    """Drive the contract through every event it can emit."""
    c, org = d.contract, d.org
    deadline1 = await open_round(d, min_updates=1, max_updates=2)
    await submit(d, 0)
    await submit(d, 1)
    await c.close_round(org, 1, MODEL_CID, sha("model1"), MANIFEST_CID)
    await open_round(d, min_updates=3, max_updates=3)
    await submit(d, 2, round_id=2)
    await advance(d.w3, 601)
    await c.fail_round(d.outsider, 2)
    await c.remove_client(org, d.clients[2].address)
    await c.pause(org)
    await c.unpause(org)
    await c.transfer_org(org, d.outsider.address)
    await c.accept_org(d.outsider)
    assert deadline1 > 0


async def test_every_event_decodes_with_its_fields(deployed: Deployed) -> None:
    d = deployed
    await _every_event(d)
    decoded = [decode_log(log) for log in await _all_logs(d)]
    by_type: dict[type, list[Any]] = {}
    for event in decoded:
        by_type.setdefault(type(event), []).append(event)
    assert set(by_type) == set(ev.EVENT_CLASSES.values())
    org, clients, outsider = d.org.address, [c.address for c in d.clients], d.outsider.address

    assert [(e.previous_org, e.new_org) for e in by_type[ev.OrgTransferred]] == [
        ("0x0000000000000000000000000000000000000000", org),
        (org, outsider),
    ]
    assert [e.client for e in by_type[ev.ClientAdded]] == clients
    assert [e.client for e in by_type[ev.ClientRemoved]] == [clients[2]]
    (started,) = by_type[ev.OrgTransferStarted]
    assert (started.previous_org, started.new_org) == (org, outsider)
    assert [e.account for e in by_type[ev.Paused]] == [org]
    assert [e.account for e in by_type[ev.Unpaused]] == [org]

    opened = by_type[ev.RoundOpened]
    assert [(e.round_id, e.min_updates, e.max_updates) for e in opened] == [(1, 1, 2), (2, 3, 3)]
    for e in opened:
        assert (e.base_cid, e.base_digest, e.config_cid) == (BASE_CID, sha("base"), CONFIG_CID)
        assert e.deadline == (await d.contract.get_round(e.round_id)).deadline

    subs = by_type[ev.UpdateSubmitted]
    assert [(e.round_id, e.client, e.num_samples) for e in subs] == [
        (1, clients[0], 100),
        (1, clients[1], 101),
        (2, clients[2], 102),
    ]
    assert all(e.update_cid == CID59 for e in subs)
    assert [e.digest for e in subs] == [sha("u1-0"), sha("u1-1"), sha("u2-2")]

    (closed,) = by_type[ev.RoundClosed]
    assert (closed.round_id, closed.model_cid, closed.model_digest) == (1, MODEL_CID, sha("model1"))
    assert (closed.manifest_cid, closed.num_updates) == (MANIFEST_CID, 2)
    (failed,) = by_type[ev.RoundFailed]
    assert (failed.round_id, failed.num_updates) == (2, 1)


async def test_raw_and_web3_logs_decode_alike_with_stable_keys(deployed: Deployed) -> None:
    d = deployed
    await open_round(d)
    await submit(d, 0)
    raw = await _all_logs(d)
    via_web3 = await d.w3.eth.get_logs({"fromBlock": 0, "address": d.contract.address})
    assert [decode_log(x) for x in raw] == [decode_log(x) for x in via_web3]
    keys = [event_key(decode_log(x)) for x in raw]
    assert keys == [event_key(decode_log(x)) for x in await _all_logs(d)]
    assert len(set(keys)) == len(keys)
    last = decode_log(raw[-1])
    assert isinstance(last, ev.UpdateSubmitted)
    receipt = await d.w3.eth.get_transaction_receipt(last.meta.tx_hash)  # type: ignore[arg-type]
    assert receipt["blockNumber"] == last.meta.block_number
    assert receipt["blockHash"].to_0x_hex() == last.meta.block_hash
    assert keys[-1] == f"{last.meta.tx_hash}:{last.meta.log_index}"


def test_topics_and_fields_match_the_abi() -> None:
    for entry in load_artifact().entries("event"):
        topic = "0x" + event_abi_to_log_topic(entry).hex()  # type: ignore[arg-type]
        cls = ev.EVENT_TOPICS[topic]
        assert cls.__name__ == entry["name"]
        assert event_fields(cls) == [ev.snake_case(i["name"]) for i in entry["inputs"]]
    assert len(ev.EVENT_TOPICS) == len(ev.EVENT_CLASSES)


def test_foreign_or_broken_logs_are_refused() -> None:
    meta = {"blockNumber": "0x1", "blockHash": "0x" + "11" * 32, "logIndex": "0x0"}
    meta["transactionHash"] = "0x" + "22" * 32
    foreign = {**meta, "topics": ["0x" + "ab" * 32], "data": "0x"}
    with pytest.raises(UnknownEvent, match="no FederatedRounds event"):
        decode_log(foreign)
    assert decode_logs([foreign]) == []
    topic = ev.TOPIC_OF[ev.RoundFailed]
    with pytest.raises(UnknownEvent, match="indexed topics"):
        decode_log({**meta, "topics": [topic], "data": "0x"})
    with pytest.raises(UnknownEvent, match="does not decode"):
        decode_log({**meta, "topics": [topic, "0x" + "00" * 32], "data": "0x01"})
