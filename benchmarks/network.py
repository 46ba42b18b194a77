"""Round time of a federation across hosts vs the link's round-trip time and bandwidth.

Chain + org in one network namespace, each client in its own (tests/netsim/netns.py); every
client reaches the chain's RPC and the org's IPFS node through a delay proxy on its own
loopback (tests/netsim/delay_proxy.py, RTT added = 2 x one-way delay) and its link is capped
with `tc tbf` both ways (this kernel has no netem). One federation runs throughout; the link
settings change as each round opens, and a round's time is from its RoundOpened to the next
RoundOpened as the chain shows them (it includes the org's aggregation and evaluation).
Settings take turns round by round (so load from elsewhere spreads over all of them); each
figure is the median over a setting's rounds, ratios are to the unshaped link in the same
run. Needs root (network namespaces); anvil automines.

    sudo .venv/bin/python benchmarks/network.py [--clients 2] [--rounds-per-setting 3]
        [--samples 500] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from web3 import AsyncHTTPProvider, AsyncWeb3

from contracts.binding import FederatedRounds
from daemons.runtime.config import load_config
from tests.netsim.netns import Lab, LabUnavailable, check_available

REPO = Path(__file__).resolve().parent.parent
FEDCHAIN = str(Path(sys.executable).parent / "fedchain")
ANVIL = str(REPO / "node_modules" / ".bin" / "anvil")
PASSWORD = "benchmark"
PROXY_SWARM_PORT = 14001
UNSHAPED_MBIT = 0.0  # no tc qdisc


@dataclass(frozen=True)
class Setting:
    """One link: added round-trip time and bandwidth cap (0 = none)."""

    rtt_ms: float
    mbit: float

    @property
    def label(self) -> str:
        bw = f"{self.mbit:g}mbit" if self.mbit else "unshaped"
        return f"rtt{self.rtt_ms:g}ms_{bw}"


SETTINGS = (
    Setting(0, UNSHAPED_MBIT),
    Setting(50, UNSHAPED_MBIT),
    Setting(200, UNSHAPED_MBIT),
    Setting(0, 20),
    Setting(0, 5),
    Setting(50, 20),
)


class Federation:
    """The lab, its processes, and a window onto the chain."""

    def __init__(self, lab: Lab, work: Path, clients: list[str]) -> None:
        self.lab, self.work, self.clients = lab, work, clients
        self.org_ip = lab.ip["org"]
        self.delay_file = work / "delay"
        self.rpc_url = ""
        self.contract = ""

    def env(self) -> dict[str, str]:
        return {**os.environ, "FEDCHAIN_KEYSTORE_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"}

    def start(self, samples: int, rounds: int) -> None:
        lab, org_ip = self.lab, self.org_ip
        self.delay_file.write_text("0")
        lab.hosts_file("org", {"chain.fed": org_ip})
        for client in self.clients:
            lab.hosts_file(client, {"chain.fed": "127.0.0.1"})
            lab.proxy(client, "rpc", "127.0.0.1:8545", f"{org_ip}:8545", delay_file=self.delay_file)
            swarm = f"127.0.0.1:{PROXY_SWARM_PORT}"
            lab.proxy(client, "swarm", swarm, f"{org_ip}:4001", delay_file=self.delay_file)
        lab.start("org", "anvil", [ANVIL, "--host", org_ip, "--port", "8545"])
        self.rpc_url = "http://" + lab.window("org", f"{org_ip}:8545")
        self._wait("anvil", lambda: self._call(lambda _, w3: w3.eth.chain_id), 60)
        self._init(samples, rounds)
        self._fund()
        self._start_daemons()

    def _init(self, samples: int, rounds: int) -> None:
        argv = [FEDCHAIN, "init", "fed", "--clients", str(len(self.clients))]
        argv += ["--rpc-url", "http://chain.fed:8545", "--rounds", str(rounds)]
        argv += ["--round-duration-s", "600", "--data", "/usr/share/datasets/fashion-mnist"]
        argv += ["--samples-per-client", str(samples), "--test-samples", "1000"]
        res = self.lab.run("org", argv, self.env(), cwd=self.work, timeout_s=600)
        if res.returncode != 0:
            raise RuntimeError(f"fedchain init failed:\n{res.stdout}\n{res.stderr}")
        cfg = load_config(self.work / "fed" / "client-0" / "client.toml", "client")
        self.contract = cfg.chain.contract

    def _fund(self) -> None:
        for line in (self.work / "fed" / "addresses.txt").read_text().splitlines():
            address = line.split()[1]
            self._call(
                lambda _, w3, a=address: w3.provider.make_request(
                    "anvil_setBalance", [a, hex(10**20)]
                )
            )

    def _start_daemons(self) -> None:
        lab, env, fed = self.lab, self.env(), self.work / "fed"
        repo = fed / "org" / "ipfs"
        ipfs = [FEDCHAIN, "ipfs", "--repo", str(repo), "--swarm-host", self.org_ip]
        lab.start("org", "ipfs", ipfs, env, cwd=self.work)
        self._wait("the org's IPFS node", lambda: (repo / "api.json").exists(), 120)
        peer_id = load_peer_id(repo)
        lab.start(
            "org", "org", [FEDCHAIN, "org", "run", "--config", str(fed / "org" / "org.toml")], env
        )
        # a client whose contract has no code yet stops (docs/deployment.md, step 6)
        has_code = lambda: self._call(lambda _, w3: w3.eth.get_code(self.contract))  # noqa: E731
        self._wait("the org to deploy", has_code, 300)
        for client in self.clients:
            peer = f"/ip4/127.0.0.1/tcp/{PROXY_SWARM_PORT}/p2p/{peer_id}"
            argv = [FEDCHAIN, "ipfs", "--repo", str(fed / client / "ipfs"), "--peer", peer]
            lab.start(client, "ipfs", argv, env)
            config = str(fed / client / "client.toml")
            lab.start(client, "client", [FEDCHAIN, "client", "run", "--config", config], env)

    def apply(self, setting: Setting) -> None:
        """Set every client's link: delay in the proxies, bandwidth with tc."""
        self.delay_file.write_text(f"{setting.rtt_ms / 2}")
        for client in self.clients:
            if setting.mbit:
                self.lab.shape(client, setting.mbit)
            else:
                self.lab.unshape(client)

    def round_id(self) -> int:
        return int(self._call(lambda c, _: c.current_round_id()))  # type: ignore[arg-type]

    def _call(self, fn):  # type: ignore[no-untyped-def]
        async def go():  # type: ignore[no-untyped-def]
            w3 = AsyncWeb3(AsyncHTTPProvider(self.rpc_url))
            try:
                binding = FederatedRounds(w3, self.contract) if self.contract else None
                return await fn(binding, w3)
            finally:
                await w3.provider.disconnect()

        return asyncio.run(go())

    @staticmethod
    def _wait(what: str, check, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if check():
                    return
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.5)


def load_peer_id(repo: Path) -> str:
    import json

    return str(json.loads((repo / "api.json").read_text())["peer_id"])


def run(args: argparse.Namespace, work: Path) -> dict[str, list[float]]:
    """Open-to-open round times per setting (warm-up rounds left out)."""
    clients = [f"client-{i}" for i in range(args.clients)]
    # interleaved (A B C … A B C …): a burst of load from elsewhere spreads over all settings
    rotations = [s for _ in range(args.rounds_per_setting) for s in SETTINGS]
    plan = [SETTINGS[0]] * args.warmup + rotations
    times: dict[str, list[float]] = {s.label: [] for s in SETTINGS}
    with Lab(["org", *clients], work / "logs") as lab:
        fed = Federation(lab, work, clients)
        fed.start(args.samples, len(plan) + 1)
        fed._wait("round 1", lambda: fed.round_id() >= 1, 600)
        opened = time.monotonic()
        for i, setting in enumerate(plan, start=1):
            fed.apply(setting)
            fed._wait(f"round {i + 1}", lambda i=i: fed.round_id() >= i + 1, 900)
            now = time.monotonic()
            if i > args.warmup:
                times[setting.label].append(now - opened)
            print(f"round {i:2d} {setting.label:22s} {now - opened:6.1f} s", flush=True)
            opened = now
        for host, role in (("org", "org run"), (clients[0], "client run")):
            print(f"RESULT peak_rss_{role.split()[0]} {peak_rss_mb(lab, host, role):.0f} MB")
    return times


def peak_rss_mb(lab: Lab, host: str, role: str) -> float:
    """Peak resident memory (VmHWM) of the `fedchain <role>` daemon in `host` (MemoryMax)."""
    pids = subprocess.run(
        ["ip", "netns", "pids", lab.ns[host]], capture_output=True, text=True, check=True
    ).stdout.split()
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if f"fedchain {role}" in cmdline and "bash" not in cmdline:
            kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))
            return int(kb) / 1024
    return float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--rounds-per-setting", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="rounds left out (JIT compilation)")
    p.add_argument("--samples", type=int, default=500, help="training samples per client")
    p.add_argument("--keep", help="keep the run folder here")
    args = p.parse_args()
    try:
        check_available()
    except LabUnavailable as exc:
        print(f"benchmarks/network.py: {exc}", file=sys.stderr)
        return 2
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="fedchain-net-"))
    work.mkdir(parents=True, exist_ok=True)
    times = run(args, work)
    base = statistics.median(times[SETTINGS[0].label])
    print(f"\n{'link':24s} {'round s':>8s} {'ratio':>6s}")
    for s in SETTINGS:
        med = statistics.median(times[s.label])
        print(f"{s.label:24s} {med:8.2f} {med / base:6.2f}")
    for s in SETTINGS:
        print(f"RESULT round_s_{s.label} {statistics.median(times[s.label]):.2f} s")
    for s in SETTINGS[1:]:
        print(f"RESULT round_ratio_{s.label} {statistics.median(times[s.label]) / base:.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
