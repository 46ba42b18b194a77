"""Own one testnet: anvil, IPFS nodes, the contract, data, configs, the org and N clients.

Run as its own process (`python -m daemons.testnet.supervisor RUN_DIR`) so that a
`--keep-running` net outlives the command that started it; `testnet down` sends it SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from daemons.testnet import datacache
from daemons.testnet.configgen import (
    DP_SECRET_ENV,
    ENCRYPTION_KEY_ENV,
    KEY_ENV,
    Endpoints,
    client_config,
    org_config,
    warmup_table,
)
from daemons.testnet.forkserver import fork_daemon, start_forkserver, stop_forkserver
from daemons.testnet.hosts import client_key_env, host_config, host_groups
from daemons.testnet.nodes.anvil import Anvil, dev_private_keys, free_port
from daemons.testnet.nodes.devchain import DevChain
from daemons.testnet.procs import Child, Proc, daemon_cpus, stop_children
from daemons.testnet.spec import (
    NetSpec,
    RunDir,
    TestnetError,
    clients_per_host,
    pins_clients,
    write_net_file,
)

if TYPE_CHECKING:
    from nacl.public import PrivateKey

# eth-account, web3, PyNaCl and the contract binding (~1 CPU-s of imports) are imported where
# they are used: `serve` starts the forkserver first, so its import of the daemons' code
# (the first RoundOpened waits for it) does not wait for these.

T = TypeVar("T")
MAX_RESTARTS = 3  # restarts of one daemon within RESTART_WINDOW_S, then the net gives up
RESTART_WINDOW_S = 300.0  # as systemd's StartLimitIntervalSec: older crashes are forgiven
NO_RESTART_CODES = (2, 3)  # config error, chain reset: as RestartPreventExitStatus in systemd
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def daemon_env(private_key: str, xla_threads: int) -> dict[str, str]:
    """The environment of one daemon: its dev key and a bounded XLA thread pool."""
    env = dict(os.environ)
    env[KEY_ENV] = private_key
    env["PYTHONUNBUFFERED"] = "1"
    if xla_threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + XLA_ONE_THREAD).strip()
    env.setdefault("OMP_NUM_THREADS", str(xla_threads))
    return env


def daemon_argv(role: str, config: Path) -> list[str]:
    """`fedchain <role> run --config FILE`, with this interpreter."""
    return [sys.executable, "-m", "daemons.cli", role, "run", "--config", str(config)]


async def deploy_and_register(rpc_url: str, org_key: str, clients: list[str]) -> str:
    """Deploy FederatedRounds as the org and allow-list the clients; returns the address."""
    from eth_account import Account
    from web3 import AsyncHTTPProvider, AsyncWeb3

    from contracts.binding import FederatedRounds

    w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
    try:
        org = Account.from_key(org_key)
        contract = await FederatedRounds.deploy(w3, org)
        await contract.add_clients(org, clients)
        return contract.address
    finally:
        await w3.provider.disconnect()


def swarm_connect(api_url: str, multiaddr: str, peer_id: str, timeout_s: float = 10.0) -> None:
    """Ask the node at `api_url` to dial a peer (Kubo RPC `swarm/connect`)."""
    addr = multiaddr if "/p2p/" in multiaddr else f"{multiaddr}/p2p/{peer_id}"
    url = f"{api_url}/api/v0/swarm/connect?arg={urllib.parse.quote(addr, safe='')}"
    req = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read()
    except OSError as e:
        raise TestnetError(f"IPFS node {api_url} could not connect to {addr}: {e}") from e


class Supervisor:
    """Starts everything in order, restarts a crashed daemon, stops all in reverse order."""

    def __init__(self, spec: NetSpec, forks: Any = None) -> None:
        from eth_account import Account

        self.spec = spec
        self.run = RunDir(spec.run_dir)
        self.stack = ExitStack()
        self.children: list[Child] = []
        self.forks = forks  # the forkserver context once started (forkserver.py)
        keys = dev_private_keys(spec.clients + 1)
        per_host = clients_per_host(spec.clients, spec.clients_per_host)
        # None: one daemon per client; else the client indices of each `fedchain client-host`
        self.groups = host_groups(spec.clients, per_host) if per_host else None
        self.org_key, self.client_keys = keys[0], keys[1:]
        self.member_keys: list[PrivateKey] = []  # with --models members, set at launch
        self.chain_id = 0  # the chain's, once it runs (the clients' key cards name it)
        self.net: dict[str, Any] = {
            "supervisor_pid": os.getpid(),
            "phase": "starting",
            "started_at": time.time(),
            "org": Account.from_key(self.org_key).address,
            "clients": [Account.from_key(k).address for k in self.client_keys],
            "spec": spec.to_json(),
        }

    def _phase(self, phase: str, **facts: Any) -> None:
        self.net.update(phase=phase, **facts)
        self.net.setdefault("phase_times", {}).setdefault(phase, time.time())
        self.net["pids"] = {c.name: c.pid for c in self.children}
        write_net_file(self.run, self.net)

    def _mark(self, step: str) -> None:
        """When a start-up step ended (`startup_times` in testnet.json; benchmarks/startup.py)."""
        self.net.setdefault("startup_times", {})[step] = time.time()

    def start(self) -> None:
        """Chain; then IPFS nodes, contract and data side by side; the org as soon as its
        node, the contract and the data are there; the clients once their nodes are up."""
        self.run.create()
        self._phase("chain")
        if self.forks is None:  # `serve` starts it before anything else
            self.forks = start_early(self.spec)
        # the IPFS nodes' Node.js compile cache (inherited env), kept across runs
        os.environ.setdefault("NODE_COMPILE_CACHE", str(self.run.cache / "node"))
        node_kind = dev_chain(self.spec.chain)
        log = self.run.logs / f"{node_kind.kind}.log"
        accounts = self.spec.clients + 1
        chain = node_kind(block_time_s=self.spec.block_time_s, log_path=log, accounts=accounts)
        self.stack.enter_context(chain)
        self.chain_id = chain.chain_id
        self._phase("ipfs, contract, data", rpc_url=chain.rpc_url, ws_url=chain.ws_url)
        nodes = self._bundled_nodes()
        ports = {name: free_port() for name in ["org", *self._daemon_names()]}
        # each daemon's /healthz says what it is doing: the live view reads it
        self.net["health"] = {name: f"http://127.0.0.1:{p}" for name, p in ports.items()}
        with ThreadPoolExecutor(max_workers=len(nodes) + 1) as pool:
            # the org's node first: on 2 cores, five Node.js start-ups at once (~2 CPU-s
            # each) would hold up the one that round 1 needs
            started = [pool.submit(self._timed, "org ipfs node", node.start) for node in nodes[:1]]
            org_test: Future[Path] = Future()  # the org's file, written before the clients'
            parted = pool.submit(self._timed, "data split", self._split, org_test)
            clients = self.net["clients"]
            address = asyncio.run(deploy_and_register(chain.rpc_url, self.org_key, clients))
            self._mark("contract deployed")
            test_path = org_test.result()
            if started:
                started[0].result()  # the org's node: the org can open round 1 now
            started += [pool.submit(node.start) for node in nodes[1:]]
            ep = Endpoints(chain.rpc_url, chain.ws_url, address)
            org_api = nodes[0].api_url if nodes else str(self.spec.ipfs_api)
            self._launch_org(ep, org_api, test_path, ports["org"])
            self._mark("org launched")
            paths, _, sizes = parted.result()
            for f in started[1:]:
                f.result()
            self._mark("client ipfs nodes")
        apis = self._connect(nodes)
        self._phase(
            "daemons",
            contract=address,
            ipfs_api=apis[0],
            ipfs_apis=apis,
            client_sizes=list(sizes),
            ipfs_pids=[n.pid for n in nodes],
        )
        self._launch_clients(ep, apis, paths, ports)
        self._phase("running")

    def _timed(self, step: str, work: Callable[..., T], *args: Any) -> T:
        result = work(*args)
        self._mark(step)
        return result

    def _split(self, org_test: Future[Path]) -> tuple[tuple[Path, ...], Path, tuple[int, ...]]:
        """The data split: from the run dir's cache if the same inputs made one before.

        `org_test` gets the org's file as soon as it is written (or the split's error).
        """
        try:
            return self._split_files(org_test)
        except BaseException as exc:
            if not org_test.done():
                org_test.set_exception(exc)
            raise

    def _split_files(
        self, org_test: Future[Path]
    ) -> tuple[tuple[Path, ...], Path, tuple[int, ...]]:
        s, cache = self.spec, self.run.cache / "data"
        key = datacache.split_key(s.task, s.model, s.data_dir, self._plan())
        if datacache.cacheable(s.task):
            hit = datacache.cached_partitions(cache, key, self.run.data, s.clients)
            if hit is not None:
                org_test.set_result(hit[1])
                return hit
        from daemons.testnet.partition import task_data, write_partitions

        task = task_data(s.task, s.model)  # a built-in task's data side loads no JAX
        parts = write_partitions(self._plan(), s.data_dir, self.run.data, task, org_test.set_result)
        if datacache.cacheable(s.task):
            sizes = parts.client_sizes
            datacache.store_partitions(cache, key, parts.client_paths, parts.test_path, sizes)
        return parts.client_paths, parts.test_path, parts.client_sizes

    def _plan(self) -> Any:
        from daemons.testnet.partition import PartitionPlan

        s = self.spec
        return PartitionPlan(
            s.partition,
            s.clients,
            s.seed,
            s.alpha,
            s.shards_per_client,
            s.samples_per_client,
            s.test_samples,
        )

    def _bundled_nodes(self) -> list[Any]:
        """One (not yet started) bundled node per participant; none with --ipfs-api."""
        if self.spec.ipfs_api:
            return []
        from daemons.ipfs.bundled import BundledIpfsNode

        nodes = []
        swarm_key = self._swarm_key()
        for i in range(self._client_nodes() + 1):
            name = "org" if i == 0 else f"{'host' if self.groups else 'client'}-{i - 1}"
            log = self.run.logs / f"ipfs-{name}.log"
            node = BundledIpfsNode(self.run.ipfs / name, log_path=log, swarm_key=swarm_key)
            self.stack.callback(node.stop)  # stop() is safe on a node that never started
            nodes.append(node)
        return nodes

    def _swarm_key(self) -> Path | None:
        """A fresh private-network key for this run's nodes (docs/security.md), unless off."""
        if not self.spec.swarm_key:
            return None
        from daemons.privacy.swarm_key import write_swarm_key

        path = self.run.ipfs / "swarm.key"
        path.unlink(missing_ok=True)  # a restarted supervisor of the same run makes a new one
        return write_swarm_key(path)

    def _connect(self, nodes: list[Any]) -> list[str]:
        """Dial every client's node to the org's (a star: updates and models pass the org)."""
        if not nodes:
            assert self.spec.ipfs_api is not None
            return [self.spec.ipfs_api] * (self._client_nodes() + 1)
        hub = nodes[0]
        for node in nodes[1:]:
            swarm_connect(node.api_url, hub.swarm_multiaddr, hub.peer_id)
        return [n.api_url for n in nodes]

    def _client_nodes(self) -> int:
        """IPFS nodes on the clients' side: one per client daemon, or one per host."""
        return len(self.groups) if self.groups else self.spec.clients

    def _daemon_names(self) -> list[str]:
        """The client side's daemons: one per client, or one `client-host` per group."""
        if self.groups:
            return [f"host-{h}" for h in range(len(self.groups))]
        return [f"client-{i}" for i in range(self.spec.clients)]

    def _launch_org(self, ep: Endpoints, api: str, test_path: Path, port: int) -> None:
        from nacl.public import PrivateKey

        cfg = self.run.configs / "org.toml"
        clients = self.net["clients"]
        state = self.run.state / "org"
        cache = self.run.cache / "compile" / "org"  # its JAX compile cache, kept across runs
        members = self.spec.models == "members"
        self.member_keys = [PrivateKey.generate() for _ in self.client_keys] if members else []
        cards = self._member_cards(ep, self.member_keys) if members else None
        text = org_config(self.spec, ep, api, state, clients, test_path, port, cards, cache)
        cfg.write_text(text)
        env = daemon_env(self.org_key, self.spec.xla_threads)
        if self.spec.encrypt_updates or members:  # a fresh X25519 key per run, only in env
            env[ENCRYPTION_KEY_ENV] = bytes(PrivateKey.generate()).hex()
        if self.spec.dp == "central":  # a fresh DP noise secret per run, only in the org's env
            env[DP_SECRET_ENV] = secrets.token_hex(32)
        log = self.run.logs / "org.log"
        org = Child(
            "org", daemon_argv("org", cfg), env, log, self.run.root, launcher=self._launcher
        )
        self.children.append(org)
        org.start()

    def _launch_clients(
        self, ep: Endpoints, apis: list[str], data: tuple[Path, ...], ports: dict[str, int]
    ) -> None:
        """The client side: one daemon per client, or one `fedchain client-host` per group."""
        launch = self._hosts if self.groups else self._solo_clients
        started = launch(ep, apis, data, ports)
        self.children += started
        for c in started:
            c.start()

    def _solo_clients(
        self, ep: Endpoints, apis: list[str], data: tuple[Path, ...], ports: dict[str, int]
    ) -> list[Child]:
        """One client daemon per client, each with its own IPFS node."""
        warmup, started = warmup_table(self.spec), []
        pinned = self.net["clients_pinned"] = pins_clients(self.spec)  # testnet.json
        for i, (key, path) in enumerate(zip(self.client_keys, data, strict=True)):
            name = f"client-{i}"
            cfg = self.run.configs / f"{name}.toml"
            encrypted, state = self.spec.encrypt_updates, self.run.state / name
            # one compile cache for all clients: the same recipe on the same shapes, so the
            # first client's warm-up compiles and the others load it (runtime/compile_lock.py)
            task, cache = self.spec.task, self.run.cache / "compile" / "clients"
            args = (ep, apis[i + 1], state, path, encrypted, task, ports[name])
            text = client_config(
                *args, models=self.spec.models, compile_cache_dir=cache, warmup=warmup
            )
            cfg.write_text(text)
            env = daemon_env(key, self.spec.xla_threads)
            if self.member_keys:  # the client's own X25519 key (its card is in the cards dir)
                env[ENCRYPTION_KEY_ENV] = bytes(self.member_keys[i]).hex()
            log = self.run.logs / f"{name}.log"
            # pinned (--pin-cpus, or auto: `pins_clients`): `--xla-threads` CPUs each,
            # round-robin; unpinned on 2 CPUs, 4 clients' 2-thread XLA pools fight over both
            cpus = daemon_cpus(i, self.spec.xla_threads) if pinned else None
            argv = daemon_argv("client", cfg)
            started.append(Child(name, argv, env, log, launcher=self._launcher, cpus=cpus))
        return started

    def _hosts(
        self, ep: Endpoints, apis: list[str], data: tuple[Path, ...], ports: dict[str, int]
    ) -> list[Child]:
        """One `fedchain client-host` per group: its clients' configs, keys and IPFS node."""
        assert self.groups is not None
        encrypted, task = self.spec.encrypt_updates, self.spec.task
        started = []
        for h, members in enumerate(self.groups):
            name, configs = f"host-{h}", []
            env = daemon_env(self.org_key, self.spec.xla_threads)
            env.pop(KEY_ENV)  # each hosted client has its own variable
            cache = self.run.cache / "compile" / name  # one JAX runtime per host
            for i in members:
                key_env, state = client_key_env(i), self.run.state / f"client-{i}"
                enc_env = f"{ENCRYPTION_KEY_ENV}_{i}"
                cfg = self.run.configs / f"client-{i}.toml"
                text = client_config(
                    ep, apis[h + 1], state, data[i], encrypted, task, 0, key_env,
                    models=self.spec.models, encryption_key_env=enc_env, compile_cache_dir=cache,
                )  # fmt: skip
                cfg.write_text(text)
                configs.append(cfg)
                env[key_env] = self.client_keys[i]
                if self.member_keys:  # each hosted client's own X25519 key
                    env[enc_env] = bytes(self.member_keys[i]).hex()
            cfg = self.run.configs / f"{name}.toml"
            cfg.write_text(
                host_config(configs, self.run.state / name, ports[name], self.spec.host_training)
            )
            argv = daemon_argv("client-host", cfg)
            log = self.run.logs / f"{name}.log"
            started.append(Child(name, argv, env, log, launcher=self._launcher))
        return started

    def _member_cards(self, ep: Endpoints, member_keys: list[PrivateKey]) -> Path:
        """Every client's key card, signed by its dev account, in RUN_DIR/cards (public)."""
        from eth_account import Account

        from daemons.privacy.cards import make_card
        from daemons.privacy.keys import public_hex

        folder = self.run.root / "cards"
        folder.mkdir(exist_ok=True)
        for i, (key, member) in enumerate(zip(self.client_keys, member_keys, strict=True)):
            card = make_card(Account.from_key(key), public_hex(member), self.chain_id, ep.contract)
            (folder / f"client-{i}.json").write_text(json.dumps(card.to_json(), indent=2))
        return folder

    @property
    def _launcher(self) -> Any:
        return self._fork if self.forks is not None else None

    def _fork(self, child: Child) -> Proc:
        """Start a daemon as a fork of the pre-imported forkserver (forkserver.py)."""
        return fork_daemon(
            self.forks, child.name, child.argv, child.env, child.log_path, child.cwd, child.cpus
        )

    def check(self) -> str | None:
        """Restart a daemon that failed (like systemd Restart=on-failure); say if one gave up."""
        now = time.monotonic()
        for c in self.children:
            code = c.poll()
            if code is None or code == 0:
                continue
            recent = [t for t in c.restart_times if now - t < RESTART_WINDOW_S]
            if code in NO_RESTART_CODES or len(recent) >= MAX_RESTARTS:
                return (
                    f"{c.name} exited with code {code} {c.restarts + 1} times "
                    f"({len(recent)} restarts in the last {RESTART_WINDOW_S:g} s); "
                    f"see {c.log_path}:\n{c.log_tail()}"
                )
            c.restarts += 1
            c.restart_times = [*recent, now]
            c.start()
            self._phase(self.net["phase"], restarts={x.name: x.restarts for x in self.children})
        return None

    def stop(self, error: str | None = None) -> None:
        """Daemons first (SIGTERM, then SIGKILL after 15 s), then IPFS nodes, then the chain."""
        codes = stop_children(reversed(self.children), timeout_s=15.0)
        if self.forks is not None:
            with contextlib.suppress(Exception):
                stop_forkserver()
        self.stack.close()
        if error:
            self.net["error"] = error
        self._phase("failed" if error else "stopped", exit_codes=codes)


def dev_chain(kind: str) -> type[DevChain]:
    """The node class for `--chain` (spec.CHAINS): anvil, ganache or hardhat."""
    if kind == "ganache":
        from daemons.testnet.nodes.ganache import Ganache

        return Ganache
    if kind == "hardhat":
        from daemons.testnet.nodes.hardhat import Hardhat

        return Hardhat
    return Anvil


class _Stop(Exception):
    """SIGTERM/SIGINT arrived."""


def start_early(spec: NetSpec) -> Any:
    """The forkserver, started first: it imports the daemons' code while the net starts."""
    os.environ.setdefault("OMP_NUM_THREADS", str(spec.xla_threads))
    return start_forkserver()


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


def serve(run_dir: Path) -> int:
    """The supervisor process: start the net, watch it until SIGTERM, then stop it all."""
    import json

    spec = NetSpec.from_json(json.loads((run_dir / "spec.json").read_text()))
    forks = start_early(spec)
    sup = Supervisor(spec, forks)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    error: str | None = None
    try:
        sup.start()
        while error is None:
            error = sup.check()
            time.sleep(0.2)
    except _Stop:
        pass
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with contextlib.suppress(Exception):
            sup.stop(error)
    if error:
        print(f"testnet supervisor: {error}", file=sys.stderr)
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(serve(Path(sys.argv[1])))
