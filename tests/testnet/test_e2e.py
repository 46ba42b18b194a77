"""CI end to end: `fedchain testnet up` (3 clients, 3 rounds, logreg) then audit it.

The report, the contract's stored history and the pins on the org's IPFS node must agree;
`testnet down` must leave no process behind.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from web3 import AsyncHTTPProvider, AsyncWeb3

from contracts.binding import FederatedRounds
from contracts.events import decode_log
from daemons.ipfs.client import IpfsStorage
from daemons.testnet.collect import MAX_BLOB_BYTES
from daemons.testnet.procs import pid_alive

FEDCHAIN = [sys.executable, "-m", "daemons.cli"]
ROUNDS, CLIENTS = 3, 3


def fedchain(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FEDCHAIN, *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )


@pytest.fixture
def kept_net(tmp_path: Path):
    """A finished 3x3 testnet left running; always brought down afterwards."""
    run_dir = tmp_path / "run"
    args = ["--clients", str(CLIENTS), "--rounds", str(ROUNDS), "--model", "logreg"]
    args += ["--epochs", "2", "--samples-per-client", "3000", "--test-samples", "2000"]
    args += ["--pin-cpus"]
    try:
        res = fedchain(
            "testnet", "up", *args, "--run-dir", str(run_dir), "--keep-running", timeout_s=240
        )
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        yield run_dir, res.stdout
    finally:
        fedchain("testnet", "down", "--run-dir", str(run_dir), timeout_s=90)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_testnet_report_chain_and_pins_agree(kept_net) -> None:
    run_dir, stdout = kept_net
    assert f"report: {run_dir / 'report.html'}" in stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    net = json.loads((run_dir / "testnet.json").read_text())
    assert summary["finished"] and summary["problems"] == []
    rows = summary["rounds"]
    assert [r["round_id"] for r in rows] == [1, 2, 3]
    assert all(r["status"] == "closed" and r["accuracy"] > 0.6 for r in rows)
    html = (run_dir / "report.html").read_text()
    pngs = ("headline", "loss", "per_class", "participation", "train_loss", "gas")
    for png in (*pngs, "bytes_moved", "round_time"):
        assert (run_dir / "plots" / f"{png}.png").stat().st_size > 1000
        assert f"plots/{png}.png" in html
    assert all(r["gas"]["org"] > 0 and r["gas"]["clients"] > 0 for r in rows)
    assert "client-0" in html and summary["summary"]["baseline"] is not None
    cpus = sorted(os.sched_getaffinity(0))
    for i in range(CLIENTS):  # --pin-cpus --xla-threads 1: each client on one CPU, round-robin
        want = {cpus[i % len(cpus)]} if len(cpus) > 1 else set(cpus)
        assert os.sched_getaffinity(net["pids"][f"client-{i}"]) == want
    assert os.sched_getaffinity(net["pids"]["org"]) == set(cpus)
    for name, url in net["health"].items():  # the live view's source: each daemon's /healthz
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as reply:
            doc = json.loads(reply.read())
        assert doc["activity"] == ("done" if name == "org" else f"submitted round {ROUNDS}")

    w3 = AsyncWeb3(AsyncHTTPProvider(net["rpc_url"]))
    try:
        async with IpfsStorage(net["ipfs_api"]) as ipfs:
            contract = FederatedRounds(w3, net["contract"])
            assert await contract.current_round_id() >= ROUNDS
            logs = await w3.eth.get_logs({"address": contract.address, "fromBlock": 0})
            events = [decode_log(raw) for raw in logs]
            for row in rows:
                rid = row["round_id"]
                info = await contract.get_round(rid)
                assert (
                    info.model_cid == row["model_cid"] and info.manifest_cid == row["manifest_cid"]
                )
                assert row["model_cid"] in html
                model = await ipfs.cat(info.model_cid, MAX_BLOB_BYTES, 60)
                assert hashlib.sha256(model).digest() == info.model_digest
                assert await ipfs.is_pinned(info.model_cid)
                assert await ipfs.is_pinned(info.manifest_cid)
                manifest = json.loads(await ipfs.cat(info.manifest_cid, MAX_BLOB_BYTES, 60))
                submitted = {
                    (e.client, e.update_cid)
                    for e in events
                    if type(e).__name__ == "UpdateSubmitted" and e.round_id == rid
                }
                included = {(d["client"], d["cid"]) for d in manifest["included"]}
                assert included == submitted and len(submitted) == CLIENTS == info.num_updates
                for _, update_cid in included:  # the org keeps what it merged
                    assert await ipfs.is_pinned(update_cid)
                assert {(u["client"], u["cid"]) for u in row["updates"]} == submitted
                assert manifest["metrics"]["accuracy"] == pytest.approx(row["accuracy"])
                for u in row["updates"]:
                    assert u["status"] == "included" and u["train"]["train_s"] > 0
    finally:
        await w3.provider.disconnect()

    _outsider_cannot_join(run_dir, net)

    res = fedchain("testnet", "down", "--run-dir", str(run_dir), timeout_s=90)
    assert res.returncode == 0 and "stopped" in res.stdout
    net = json.loads((run_dir / "testnet.json").read_text())
    assert net["phase"] == "stopped"
    pids = [net["supervisor_pid"], *net["pids"].values(), *net["ipfs_pids"]]
    assert len(pids) == 1 + (1 + CLIENTS) * 2
    assert not [p for p in pids if pid_alive(p)], "processes left behind"
    with pytest.raises(OSError):
        urllib.request.urlopen(net["rpc_url"], data=b"{}", timeout=5)  # anvil is gone
    assert os.listdir(run_dir / "logs")


def _outsider_cannot_join(run_dir: Path, net: dict) -> None:
    """The testnet's nodes form a private network: a node without its swarm key is refused."""
    import urllib.error

    from daemons.ipfs.bundled import BundledIpfsNode

    assert (run_dir / "ipfs" / "swarm.key").stat().st_mode & 0o077 == 0
    assert "private network: swarm key" in (run_dir / "logs" / "ipfs-org.log").read_text()
    req = urllib.request.Request(f"{net['ipfs_api']}/api/v0/id", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        ident = json.loads(resp.read())
    addr = next(a for a in ident["Addresses"] if "/tcp/" in a)
    key = run_dir / "ipfs" / "swarm.key"
    with (
        BundledIpfsNode(run_dir.parent / "outsider-ipfs") as outsider,
        BundledIpfsNode(run_dir.parent / "member-ipfs", swarm_key=key) as member,
    ):

        def connect(node: BundledIpfsNode) -> None:
            url = f"{node.api_url}/api/v0/swarm/connect?arg={urllib.parse.quote(addr, safe='')}"
            request = urllib.request.Request(url, data=b"", method="POST")
            urllib.request.urlopen(request, timeout=30).close()

        connect(member)  # with the key: accepted
        with pytest.raises(urllib.error.HTTPError) as refused:
            connect(outsider)
        assert "failure" in refused.value.read().decode()


def wait_for(pred, timeout_s: float, what: str) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def net_phase(run_dir: Path) -> str:
    try:
        return json.loads((run_dir / "testnet.json").read_text()).get("phase", "")
    except (OSError, ValueError):
        return ""


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("how", ["ctrl-c", "kill-9"])
def test_interrupting_up_stops_every_process(tmp_path: Path, how: str) -> None:
    run_dir = tmp_path / "run"
    args = ["--clients", "1", "--rounds", "500", "--model", "logreg"]
    args += ["--samples-per-client", "500", "--test-samples", "500", "--run-dir", str(run_dir)]
    proc = subprocess.Popen(
        [*FEDCHAIN, "testnet", "up", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: net_phase(run_dir) == "running", 150, "the net to start")
        net = json.loads((run_dir / "testnet.json").read_text())
        if how == "ctrl-c":
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=90)
            assert proc.returncode == 130, out
            assert f"logs: {run_dir / 'logs'}" in out
        else:
            proc.kill()
            proc.wait(timeout=10)
        pids = [net["supervisor_pid"], *net["pids"].values(), *net["ipfs_pids"]]
        wait_for(lambda: not any(pid_alive(p) for p in pids), 60, "every process to exit")
        assert net_phase(run_dir) == "stopped"
        if how == "ctrl-c":  # each daemon ended by its SIGTERM (255 was a lost exit code);
            # -15: stopped while still starting, before its signal handlers were installed
            codes = json.loads((run_dir / "testnet.json").read_text())["exit_codes"]
            assert set(codes) == {"org", "client-0"}
            assert set(codes.values()) <= {0, -signal.SIGTERM}, codes
    finally:
        if proc.poll() is None:
            proc.kill()
        fedchain("testnet", "down", "--run-dir", str(run_dir), timeout_s=90)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_up_against_a_users_ipfs_node_starts_no_bundled_nodes(tmp_path: Path, ipfs_node) -> None:
    run_dir = tmp_path / "run"
    args = ["--clients", "2", "--rounds", "2", "--model", "logreg", "--epochs", "1"]
    args += ["--samples-per-client", "1000", "--test-samples", "500"]
    try:
        res = fedchain(
            "testnet",
            "up",
            *args,
            "--run-dir",
            str(run_dir),
            "--ipfs-api",
            ipfs_node.api_url,
            timeout_s=200,
        )
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    finally:
        fedchain("testnet", "down", "--run-dir", str(run_dir), timeout_s=90)
    net = json.loads((run_dir / "testnet.json").read_text())
    assert net["ipfs_apis"] == [ipfs_node.api_url] * 3 and net["ipfs_pids"] == []
    assert net["exit_codes"] == {"org": 0, "client-0": 0, "client-1": 0}  # clean stops
    assert not list((run_dir / "logs").glob("ipfs-*.log"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [r["status"] for r in summary["rounds"]] == ["closed", "closed"]
    assert summary["problems"] == []
