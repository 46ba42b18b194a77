"""`fedchain events / rounds / status / model get` against real anvil and IPFS."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.events import (
    ContractEvent,
    LogMeta,
    RoundClosed,
    RoundFailed,
    RoundOpened,
    UpdateSubmitted,
)
from daemons.chain import history
from daemons.cli.main import main
from daemons.ipfs.bundled import BundledIpfsNode
from daemons.ipfs.client import IpfsStorage
from tests.daemons.chain_helpers import digest, open_round, submit
from tests.fixtures.anvil import ALL_NODES, Deployed

pytestmark = pytest.mark.timeout(120)


async def fedchain(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in a worker thread (it owns its event loop); return code, stdout, stderr."""
    code = await asyncio.wait_for(asyncio.to_thread(main, list(argv)), 60)
    out, err = capsys.readouterr()
    return code, out, err


def target(d: Deployed) -> list[str]:
    return ["--rpc-url", d.anvil.rpc_url, "--contract", d.contract.address]


async def one_closed_round(d: Deployed, model_cid: str = "bafymodel1") -> None:
    """Round 1 with three updates, closed with `model_cid`; round 2 opened on it."""
    round_id = await open_round(d)
    for i in range(3):
        await submit(d, i, round_id)
    await d.contract.close_round(d.org, round_id, model_cid, digest(model_cid), "bafymanifest1")
    await open_round(d, base_cid=model_cid)


async def test_events_json_lines_carry_every_field(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    await one_closed_round(deployed)
    code, out, _ = await fedchain(capsys, "events", "--json", *target(deployed))
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    names = [r["event"] for r in records]
    assert names.count("ClientAdded") == 3 and names.count("UpdateSubmitted") == 3
    assert names[-2:] == ["RoundClosed", "RoundOpened"]
    closed = records[-2]
    assert closed["model_cid"] == "bafymodel1" and closed["num_updates"] == 3
    assert closed["model_digest"] == "0x" + digest("bafymodel1").hex()
    assert all(r["tx_hash"].startswith("0x") and r["block_number"] > 0 for r in records)
    blocks = [r["block_number"] for r in records]
    assert blocks == sorted(blocks)
    first_open = names.index("RoundOpened")
    from_block = records[first_open]["block_number"]
    code, out, _ = await fedchain(
        capsys, "events", "--from-block", str(from_block), *target(deployed)
    )
    lines = out.splitlines()
    assert len(lines) == len(records) - first_open
    assert "RoundOpened" in lines[0] and f"block {from_block:>8}" in lines[0]
    assert "base_cid=bafybase" in lines[0]


async def test_rounds_table_and_status(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await fedchain(capsys, "rounds", *target(deployed))
    assert code == 0 and out.strip() == "no rounds opened yet"
    await one_closed_round(deployed)
    code, out, _ = await fedchain(capsys, "rounds", *target(deployed))
    header, first, second = out.strip().splitlines()
    assert header.split()[:3] == ["round", "state", "base"]
    assert first.split()[:6] == ["1", "closed", "bafybase", "3", "bafymodel1", "bafymanifest1"]
    assert second.split()[:6] == ["2", "open", "bafymodel1", "0", "-", "-"]
    code, out, _ = await fedchain(capsys, "status", *target(deployed))
    assert code == 0
    assert "chain id:      31337" in out and deployed.contract.address in out
    assert f"org:           {deployed.org.address}" in out and "paused:        no" in out
    assert "current round: 2 (open, 0/3 updates, min 1" in out


async def test_config_file_supplies_the_chain(
    deployed: Deployed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "client.toml"
    config.write_text(
        f'[chain]\nrpc_url = "{deployed.anvil.rpc_url}"\n'
        f'contract = "{deployed.contract.address}"\n'
        f'[service]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[data]\npath = "{tmp_path}"\n'
    )
    code, out, err = await fedchain(capsys, "status", "--config", str(config))
    assert code == 0, err
    assert deployed.contract.address in out


@pytest.mark.evm_nodes(*ALL_NODES)  # ganache nests revert data: "never opened" all the same
async def test_bad_input_gets_a_clear_error(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await fedchain(capsys, "status", "--rpc-url", deployed.anvil.rpc_url)
    assert code == 2 and "no contract address" in err and "--contract" in err
    code, _, err = await fedchain(capsys, "status", "--contract", "0x1234")
    assert code == 2 and "not an Ethereum address" in err
    dead = ["--rpc-url", "http://127.0.0.1:9", "--contract", deployed.contract.address]
    code, _, err = await fedchain(capsys, "status", *dead)
    assert code == 1 and "cannot reach the Ethereum node at http://127.0.0.1:9" in err
    out_file = "/nonexistent-dir/x.safetensors"
    code, _, err = await fedchain(capsys, "model", "get", "7", "-o", out_file, *target(deployed))
    assert code == 1 and "round 7 was never opened" in err


async def test_model_get_fetches_with_digest_check(
    deployed: Deployed,
    ipfs_node: BundledIpfsNode,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with IpfsStorage(ipfs_node.api_url) as storage:
        base = await storage.put(b"base model bytes")
        model = await storage.put(b"round one model bytes")
        liar = await storage.put(b"other bytes")
    block = await deployed.w3.eth.get_block("latest")
    deadline = int(block["timestamp"]) + 600
    await deployed.contract.open_round(
        deployed.org, base.cid, base.digest, deadline, 1, 1, "bafyconfig"
    )
    await submit(deployed, 0, 1)
    ipfs = ["--ipfs-api", ipfs_node.api_url, *target(deployed)]
    out_file = tmp_path / "round1.bin"
    code, out, err = await fedchain(capsys, "model", "get", "1", "-o", str(out_file), *ipfs)
    assert code == 0, err
    assert out_file.read_bytes() == b"base model bytes" and "base model" in out
    await deployed.contract.close_round(deployed.org, 1, model.cid, model.digest, "bafymanifest")
    code, out, err = await fedchain(capsys, "model", "get", "1", "-o", str(out_file), *ipfs)
    assert code == 0, err
    assert out_file.read_bytes() == b"round one model bytes"
    # a round whose recorded digest does not match the content is refused, nothing written
    await deployed.contract.open_round(
        deployed.org, liar.cid, model.digest, deadline + 60, 1, 3, "bafyconfig"
    )
    bad = tmp_path / "round2.bin"
    code, _, err = await fedchain(capsys, "model", "get", "2", "-o", str(bad), *ipfs)
    assert code == 1 and "digest" in err and not bad.exists()


async def test_events_follow_prints_new_events_until_interrupted(deployed: Deployed) -> None:
    cmd = [sys.executable, "-m", "daemons.cli", "events", "--follow", "--json"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        *target(deployed),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        # as in a terminal: a shell's background job (`make test &`) ignores SIGINT, and an
        # ignored SIGINT is inherited, so the Ctrl-C under test would never arrive
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        backfilled = []
        for _ in range(4):  # the deploy's OrgTransferred and three ClientAdded
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            backfilled.append(json.loads(line)["event"])
        assert backfilled == ["OrgTransferred"] + ["ClientAdded"] * 3
        await open_round(deployed)
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert json.loads(line)["event"] == "RoundOpened"
        status = Path(f"/proc/{proc.pid}/status").read_text()  # its signal masks, if it hangs
        masks = [ln for ln in status.splitlines() if ln.startswith(("SigBlk", "SigIgn", "SigCgt"))]
        proc.send_signal(signal.SIGINT)
        try:
            code = await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            code = None
        if code != 0:  # say what the command was doing
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            assert proc.stderr is not None
            err = (await proc.stderr.read()).decode(errors="replace")[-4000:]
            raise AssertionError(
                f"events --follow exited {code} after SIGINT; masks {masks}; stderr:\n{err}"
            )
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _meta(block: int, index: int = 0) -> LogMeta:
    return LogMeta(block, "0x" + "bb" * 32, "0x" + f"{block:064x}", index)


def test_round_rows_fold_open_updates_close_and_fail() -> None:
    events: list[ContractEvent] = [
        RoundOpened(1, "bafyb1", b"\x01" * 32, 1000, 1, 3, "bafyc", _meta(1)),
        UpdateSubmitted(1, "0x" + "11" * 20, "bafyu1", b"\x02" * 32, 5, _meta(2)),
        UpdateSubmitted(1, "0x" + "22" * 20, "bafyu2", b"\x03" * 32, 5, _meta(2, 1)),
        RoundClosed(1, "bafym1", b"\x04" * 32, "bafyman1", 2, _meta(3)),
        RoundOpened(2, "bafym1", b"\x04" * 32, 2000, 2, 3, "bafyc", _meta(4)),
        RoundFailed(2, 0, _meta(5)),
        RoundOpened(3, "bafym1", b"\x04" * 32, 3000, 1, 3, "bafyc", _meta(6)),
        UpdateSubmitted(9, "0x" + "11" * 20, "bafyx", b"\x05" * 32, 5, _meta(7)),  # no such round
    ]
    rows = history.round_rows(events)
    assert [(r.round_id, r.state, r.num_updates, r.model_cid) for r in rows] == [
        (1, "closed", 2, "bafym1"),
        (2, "failed", 0, ""),
        (3, "open", 0, ""),
    ]
    table = history.rounds_table(rows, now=2500).splitlines()
    assert "failed" in table[2] and "open (deadline passed)" not in table[2]
    assert "open " in table[3] and "deadline passed" not in table[3]
    assert "open (deadline passed)" in history.rounds_table(rows, now=3001).splitlines()[3]
    assert "1970-01-01T00:16:40Z" in table[1]  # deadline 1000 s, block time in UTC


def test_event_json_shows_digests_as_hex() -> None:
    ev = RoundClosed(4, "bafym", b"\xab" * 32, "bafyman", 3, _meta(12, 2))
    record = json.loads(history.event_json(ev))
    assert record == {
        "event": "RoundClosed",
        "block_number": 12,
        "block_hash": "0x" + "bb" * 32,
        "tx_hash": "0x" + f"{12:064x}",
        "log_index": 2,
        "round_id": 4,
        "model_cid": "bafym",
        "model_digest": "0x" + "ab" * 32,
        "manifest_cid": "bafyman",
        "num_updates": 3,
    }
    assert history.event_line(ev).split()[:3] == ["block", "12", "RoundClosed"]
