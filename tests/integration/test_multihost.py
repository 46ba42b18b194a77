"""docs/deployment.md's walkthrough, run as written, with every participant on its own "host".

Hosts are network namespaces on one bridge (tests/netsim/netns.py): chain + org in one, each
client in its own, a partner in a fourth; each has its own loopback, so the walkthrough's
fixed ports (8545, 5001, 4001) are the ones a real host would use and collide with nothing.
Names resolve per host (/etc/netns/NS/hosts): `chain.fed` is the org host's IP everywhere
except on client-1, whose link is shaped to 20 Mbit/s (tc tbf both ways) and whose traffic
to the org goes through a delay proxy (+50 ms RTT): there `chain.fed` is the proxy on its
loopback, and its ORG_PEER names the proxy's port. Mid-round 1, once client-1 is training,
its link is cut (its bridge port detached: packets vanish, TCP notices only by its timers)
for CUT_S seconds, longer than its training, so its submission meets a dead link; then it is
restored: the client must catch up (its tx sent, its update fetched from its node) and round
1 must close with both updates (the deadline is far: the contract lets it close early at
max_updates), as must round 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from web3 import AsyncHTTPProvider, AsyncWeb3

from contracts.binding import FederatedRounds
from contracts.state import RoundStatus
from daemons.runtime.config import load_config
from tests.netsim.netns import Lab, LabUnavailable, check_available
from tests.netsim.walkthrough import Step, by_name, read_steps

pytestmark = [pytest.mark.timeout(1200), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CLIENTS = ("client-0", "client-1")
HOSTS = ("org", *CLIENTS, "partner")
SHAPED = "client-1"
RTT_MS, RATE_MBIT, CUT_S = 50, 20, 40
PASSWORD = "walkthrough-password"
PROXY_SWARM_PORT = 14001


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    try:
        check_available()
    except LabUnavailable as exc:
        pytest.skip(f"multi-host test needs network namespaces: {exc}")
    with Lab(HOSTS, tmp_path / "logs") as lab:
        yield lab


@contextlib.contextmanager
def logs_on_failure(log_dir: Path) -> Iterator[None]:
    """On failure, print the end of every process's log (pytest shows it with the error)."""
    try:
        yield
    except BaseException:
        for log in sorted(log_dir.glob("*.log")):
            print(f"----- {log.name}")
            print("\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        raise


class Chain:
    """The test's view of the chain, through a window into the org host."""

    def __init__(self, rpc_url: str) -> None:
        self.rpc_url = rpc_url
        self.contract = ""

    def call(self, fn: Callable[[FederatedRounds, AsyncWeb3], object]) -> object:
        async def go() -> object:
            w3 = AsyncWeb3(AsyncHTTPProvider(self.rpc_url))
            try:
                binding = FederatedRounds(w3, self.contract) if self.contract else None
                return await fn(binding, w3)  # type: ignore[arg-type,misc]
            finally:
                await w3.provider.disconnect()

        return asyncio.run(go())

    def answers(self) -> bool:
        try:
            return bool(self.call(lambda _, w3: w3.eth.chain_id))
        except Exception:
            return False

    def has_code(self) -> bool:
        return bool(self.call(lambda _, w3: w3.eth.get_code(self.contract)))  # type: ignore[arg-type]


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, poll_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(poll_s)


class Walkthrough:
    """Runs the doc's steps on the lab's hosts with each host's variables."""

    def __init__(self, lab: Lab, work: Path) -> None:
        self.lab, self.work = lab, work
        self.steps = by_name(read_steps())
        self.prelude = "\n".join(s.script for s in self.steps.values() if s.host == "all")
        self.ran = {s.name for s in self.steps.values() if s.host == "all"}
        org_ip = lab.ip["org"]
        self.env = {
            h: {
                **os.environ,
                "FEDCHAIN_HOME": str(REPO),
                "FEDCHAIN_KEYSTORE_PASSWORD": PASSWORD,
                "RPC_URL": "http://chain.fed:8545",
                "CHAIN_IP": org_ip,
                "ORG_IP": org_ip,
                "PYTHONUNBUFFERED": "1",
            }
            for h in HOSTS
        }

    def argv(self, step: Step) -> list[str]:
        return ["bash", "-euo", "pipefail", "-c", f"{self.prelude}\n{step.script}"]

    def run(self, name: str, host: str, **env: str) -> str:
        step = self.steps[name]
        assert step.host in (
            host,
            "chain" if host == "org" else "",
            "client" if host in CLIENTS else "",
        )
        self.ran.add(name)
        full_env = {**self.env[host], **env}
        if step.background:
            self.lab.start(host, name, self.argv(step), full_env, cwd=self.work)
            return ""
        res = self.lab.run(host, self.argv(step), full_env, cwd=self.work, timeout_s=600)
        assert res.returncode == 0, f"step {name} on {host} failed:\n{res.stdout}\n{res.stderr}"
        return res.stdout


def node_info(repo: Path) -> dict[str, object]:
    """What a bundled node wrote to REPO/api.json when it became ready."""
    info: dict[str, object] = json.loads((repo / "api.json").read_text())
    return info


def org_peer(work: Path, ip: str) -> str:
    """The org node's `swarm:` address on the org's IP (what step 5 prints)."""
    swarm = node_info(work / "fed" / "org" / "ipfs")["swarm"]
    return next(a for a in swarm if a.startswith(f"/ip4/{ip}/"))  # type: ignore[attr-defined]


def test_walkthrough_on_separate_hosts_with_a_shaped_and_cut_client(lab: Lab, tmp_path) -> None:
    with logs_on_failure(lab.log_dir):
        run_walkthrough(lab, tmp_path)


def run_walkthrough(lab: Lab, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    org_ip = lab.ip["org"]
    for host in HOSTS:
        names = {"chain.fed": "127.0.0.1" if host == SHAPED else org_ip}
        lab.hosts_file(host, names)
    lab.shape(SHAPED, RATE_MBIT)
    half = str(RTT_MS / 2)
    lab.proxy(SHAPED, "proxy-rpc", "127.0.0.1:8545", f"{org_ip}:8545", float(half))
    lab.proxy(SHAPED, "proxy-swarm", f"127.0.0.1:{PROXY_SWARM_PORT}", f"{org_ip}:4001", float(half))
    walk = Walkthrough(lab, work)

    walk.run("chain", "org")
    chain = Chain("http://" + lab.window("org", f"{org_ip}:8545"))
    wait_for("anvil", chain.answers, 60)
    walk.run("init", "org")
    assert "funded client-1" in walk.run("fund", "org")
    walk.run("org-ipfs", "org")
    wait_for("the org's IPFS node", lambda: (work / "fed/org/ipfs/api.json").exists(), 60)
    peer = org_peer(work, org_ip)
    assert node_info(work / "fed/org/ipfs")["private_network"]  # --private: the swarm key
    walk.run("org", "org")
    assert "contract" in walk.run("deployed", "org")
    for client in CLIENTS:
        seen = peer
        if client == SHAPED:
            seen = f"/ip4/127.0.0.1/tcp/{PROXY_SWARM_PORT}/p2p/{peer.rsplit('/', 1)[1]}"
        walk.run("client-ipfs", client, CLIENT=client, ORG_PEER=seen)
        walk.run("client", client, CLIENT=client)

    for client in CLIENTS:
        repo = work / "fed" / client / "ipfs"
        wait_for(f"{client}'s IPFS node", lambda r=repo: (r / "api.json").exists(), 120)
        assert node_info(repo)["private_network"]
    config = load_config(work / "fed" / "client-0" / "client.toml", "client")
    chain.contract = config.chain.contract
    addresses = dict(line.split() for line in (work / "fed/addresses.txt").read_text().splitlines())
    shaped = addresses[SHAPED]
    wait_for("the org to deploy", chain.has_code, 300, poll_s=1)
    wait_for("round 1 to open", lambda: chain.call(lambda c, _: c.current_round_id()) == 1, 300)
    training = "training round_id=1"
    wait_for("client-1 to train", lambda: training in lab.log_tail(SHAPED, "client", 100), 300)
    assert not chain.call(lambda c, _: c.has_submitted(1, shaped)), "no time left to cut it"
    lab.cut(SHAPED)  # it trains on, then must submit and serve its update through a dead link
    cut_at = time.monotonic()
    time.sleep(CUT_S)
    assert not chain.call(lambda c, _: c.has_submitted(1, shaped)), "the cut let a tx through"
    lab.restore(SHAPED)
    restored_at = time.monotonic()

    def settled(round_id: int) -> bool:
        if chain.call(lambda c, _: c.current_round_id()) < round_id:  # type: ignore[operator]
            return False
        info = chain.call(lambda c, _: c.get_round(round_id))
        return info.status != RoundStatus.OPEN  # type: ignore[attr-defined]

    wait_for("round 1 to settle", lambda: settled(1), 600, poll_s=1)
    caught_up_s = time.monotonic() - restored_at
    wait_for("round 2 to settle", lambda: settled(2), 600, poll_s=2)
    (lab.log_dir / "timeline.txt").write_text(
        f"cut for {restored_at - cut_at:.1f} s; round 1 closed {caught_up_s:.1f} s after restore\n"
    )
    for round_id in (1, 2):
        info = chain.call(lambda c, _, r=round_id: c.get_round(r))
        assert info.status == RoundStatus.CLOSED, (round_id, info)  # type: ignore[attr-defined]
        for client in CLIENTS:
            who = addresses[client]
            assert chain.call(lambda c, _, r=round_id, a=who: c.has_submitted(r, a)), (
                round_id,
                client,
            )
    for client in CLIENTS:
        assert lab.procs and _running(lab, client, "client"), f"{client} daemon exited"

    check = walk.run("check", "org")
    assert check.count("closed") >= 2, check

    swarm_key = str(work / "fed" / "org" / "ipfs" / "swarm.key")
    out = walk.run("partner-init", "partner", CONTRACT=chain.contract, SWARM_KEY=swarm_key)
    assert (work / "partner/carol/ipfs/swarm.key").read_text() == Path(swarm_key).read_text()
    carol = dict(line.split() for line in (work / "partner/addresses.txt").read_text().splitlines())
    assert f"send {carol['carol']} to the org" in out
    listing = walk.run("partner-add", "org", CAROL=carol["carol"])
    assert f"{carol['carol']}  allowed" in listing
    assert chain.call(lambda c, _: c.is_client(carol["carol"]))
    assert walk.ran == set(walk.steps), (
        f"steps in the doc the test did not run: {set(walk.steps) - walk.ran}"
    )


def _running(lab: Lab, host: str, name: str) -> bool:
    suffix = f"{host}-{name}.log"
    return any(proc.poll() is None for proc, log in lab.procs if log.name.endswith(suffix))
