"""Hosts simulated on one machine: each a Linux network namespace with its own IP on a bridge.

The bridge lives in a namespace of its own, so the machine's own network is never touched and
the only addresses in play are the ones the lab created (198.18.0.0/15 is the range set aside
for benchmarking, RFC 2544). Names carry a random tag, so parallel runs do not collide.
Links can be shaped with `tc` (tbf: `netem` is not in this kernel; latency comes from
tests/netsim/delay_proxy.py) and cut (the host's bridge port is detached: packets vanish, as
on a broken path, and TCP only notices by its timers). `close()` kills every process started
in the lab, then everything else still inside its namespaces, then deletes them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

REPO = Path(__file__).resolve().parents[2]
SUBNET = "198.18.0"
NETNS_ETC = Path("/etc/netns")


class LabUnavailable(RuntimeError):
    """This machine cannot create network namespaces (not root, or no CAP_SYS_ADMIN)."""


def _ip(*args: str) -> None:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {res.stderr.strip()}")


def check_available() -> None:
    """Raise LabUnavailable with the reason if namespaces cannot be made here."""
    if sys.platform != "linux" or os.geteuid() != 0:
        raise LabUnavailable("network namespaces need Linux and root (CI runs as root)")
    probe = f"fcprobe{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except (RuntimeError, OSError) as exc:
        raise LabUnavailable(f"cannot create a network namespace: {exc}") from None
    _ip("netns", "del", probe)


class Lab:
    """Namespaces `hosts` on one bridge; `run`/`start` commands inside them."""

    def __init__(self, hosts: Sequence[str], log_dir: Path) -> None:
        self.tag = f"fc{secrets.token_hex(3)}"
        self.switch = f"{self.tag}-sw"
        self.hosts = list(hosts)
        self.ns = {h: f"{self.tag}-{h}" for h in hosts}
        self.ip = {h: f"{SUBNET}.{i + 1}" for i, h in enumerate(hosts)}
        self.port = {h: f"p{i}" for i, h in enumerate(hosts)}  # its end on the bridge
        self.log_dir = log_dir
        self.procs: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
        self._made: list[str] = []
        self._etc: list[Path] = []
        self._sock_dir: Path | None = None

    def __enter__(self) -> Lab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _build(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._add_ns(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for host in self.hosts:
            ns, port = self.ns[host], self.port[host]
            self._add_ns(ns)
            _ip(
                "-n",
                ns,
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                port,
                "netns",
                self.switch,
            )
            _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{self.ip[host]}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def _add_ns(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def command(self, host: str | None, argv: Sequence[str]) -> list[str]:
        """`argv` inside `host`'s namespace (None: this machine's own, as for a window)."""
        return list(argv) if host is None else ["ip", "netns", "exec", self.ns[host], *argv]

    def run(
        self,
        host: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout_s: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run to completion inside `host`'s namespace; output captured."""
        return subprocess.run(
            self.command(host, argv),
            env=dict(env or os.environ),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def start(
        self,
        host: str | None,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process inside `host`; its output goes to LOG_DIR/host-name.log."""
        log = (self.log_dir / f"{host or 'local'}-{name}.log").open("ab")
        proc = subprocess.Popen(
            self.command(host, argv),
            env=dict(env or os.environ),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs.append((proc, log))
        return proc

    def proxy(
        self,
        host: str | None,
        name: str,
        listen: str,
        target: str,
        delay_ms: float = 0.0,
        delay_file: Path | None = None,
    ) -> None:
        """Start tests/netsim/delay_proxy.py in `host` and wait until it accepts connections."""
        argv = [sys.executable, "-m", "tests.netsim.delay_proxy", "--listen", listen]
        argv += ["--target", target, "--delay-ms", str(delay_ms)]
        argv += ["--delay-file", str(delay_file)] if delay_file else []
        self.start(host, name, argv, cwd=REPO)
        deadline = time.monotonic() + 30
        while "ready" not in self.log_tail(host, name, 5):
            if time.monotonic() > deadline:
                raise RuntimeError(f"proxy {name} did not start: {self.log_tail(host, name)}")
            time.sleep(0.1)

    def window(self, host: str, target: str) -> str:
        """A loopback HOST:PORT on this machine that reaches `target` as seen from `host`.

        A Unix socket crosses namespaces (it lives in the filesystem), so the test can talk
        to the lab's servers without the lab having any route to this machine.
        """
        if self._sock_dir is None:  # short: a Unix socket path is limited to 107 bytes
            self._sock_dir = Path(tempfile.mkdtemp(prefix=f"{self.tag}-", dir="/tmp"))
        sock = self._sock_dir / f"w{len(list(self._sock_dir.iterdir()))}.sock"
        self.proxy(host, f"window-in-{sock.stem}", f"unix:{sock}", target)
        port = _free_port()
        self.proxy(None, f"window-out-{sock.stem}", f"127.0.0.1:{port}", f"unix:{sock}")
        return f"127.0.0.1:{port}"

    def log_tail(self, host: str | None, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{host or 'local'}-{name}.log"
        text = path.read_text(errors="replace") if path.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def hosts_file(self, host: str, names: Mapping[str, str]) -> None:
        """`host`'s own /etc/hosts (ip netns exec bind-mounts /etc/netns/NS/hosts there)."""
        folder = NETNS_ETC / self.ns[host]
        folder.mkdir(parents=True, exist_ok=True)
        self._etc.append(folder)
        lines = ["127.0.0.1 localhost"] + [f"{ip} {name}" for name, ip in names.items()]
        (folder / "hosts").write_text("\n".join(lines) + "\n")

    def shape(self, host: str, rate_mbit: float) -> None:
        """Cap `host`'s link at `rate_mbit` both ways (tbf on each end of its veth)."""
        burst = f"{max(16, int(rate_mbit * 2))}kb"  # >= rate / HZ, and a few MTUs
        for ns, dev in ((self.ns[host], "eth0"), (self.switch, self.port[host])):
            subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "tc",
                    "qdisc",
                    "replace",
                    "dev",
                    dev,
                    "root",
                    "tbf",
                    "rate",
                    f"{rate_mbit}mbit",
                    "burst",
                    burst,
                    "latency",
                    "400ms",
                ],
                check=True,
                capture_output=True,
                timeout=30,
            )

    def unshape(self, host: str) -> None:
        """Remove `host`'s bandwidth caps (a link without a qdisc is left as it is)."""
        for ns, dev in ((self.ns[host], "eth0"), (self.switch, self.port[host])):
            subprocess.run(
                ["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"],
                capture_output=True,
                timeout=30,
                check=False,
            )

    def cut(self, host: str) -> None:
        """Detach `host` from the bridge: its packets vanish, its carrier stays up."""
        _ip("-n", self.switch, "link", "set", self.port[host], "nomaster")

    def restore(self, host: str) -> None:
        _ip("-n", self.switch, "link", "set", self.port[host], "master", "br0")

    def close(self) -> None:
        """Stop every process in the lab (SIGTERM, then SIGKILL), delete the namespaces."""
        for proc, _ in self.procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc, log in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(10)
            log.close()
        for ns in reversed(self._made):
            self._kill_inside(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30, check=False)
        for folder in [*self._etc, *([self._sock_dir] if self._sock_dir else [])]:
            shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            NETNS_ETC.rmdir()  # only if no one else keeps a namespace's files there
        self._made.clear()
        self._etc.clear()
        self.procs.clear()

    @staticmethod
    def _kill_inside(ns: str) -> None:
        """SIGKILL whatever still runs in `ns` (only the lab's own children can be there)."""
        res = subprocess.run(
            ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30, check=False
        )
        for pid in res.stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
