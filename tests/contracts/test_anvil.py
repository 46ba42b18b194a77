"""The Anvil process manager: free ports, readiness, state, logs, and no leftover processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account

from daemons.testnet.nodes import anvil as anvil_module
from daemons.testnet.nodes.anvil import Anvil, AnvilError

pytestmark = pytest.mark.timeout(60)
REPO = Path(__file__).resolve().parents[2]


def _gone(pid: int) -> bool:
    """True once the process no longer exists (or is only a zombie awaiting its reaper)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in state


def _refuses(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_two_chains_on_free_ports_with_dev_accounts(tmp_path: Path) -> None:
    with Anvil(log_path=tmp_path / "a.log") as a, Anvil() as b:
        assert a.port != b.port and a.rpc_url.startswith("http://127.0.0.1:")
        assert a.ws_url == f"ws://127.0.0.1:{a.port}"
        assert int(a.rpc("eth_chainId"), 16) == 31337
        funded = [x.lower() for x in a.rpc("eth_accounts")]
        assert [Account.from_key(k).address.lower() for k in a.dev_private_keys] == funded
        pid = a._proc.pid if a._proc else -1
    assert not a.running and _refuses(a.port) and _gone(pid)
    assert "Listening on 127.0.0.1" in (tmp_path / "a.log").read_text()


def test_block_time_mines_without_transactions() -> None:
    with Anvil(block_time_s=1) as node:
        first = int(node.rpc("eth_blockNumber"), 16)
        time.sleep(2.5)
        assert int(node.rpc("eth_blockNumber"), 16) >= first + 2


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "chain.json"
    with Anvil(state_path=state) as node:
        node.rpc("anvil_mine", ["0x7"])
        head = node.rpc("eth_getBlockByNumber", ["latest", False])
    assert state.exists()
    with Anvil(state_path=state) as node:
        again = node.rpc("eth_getBlockByNumber", ["latest", False])
    assert (again["number"], again["hash"]) == (head["number"], head["hash"])


def test_anvil_dies_with_its_parent() -> None:
    code = (
        "import sys, time; from daemons.testnet.nodes.anvil import Anvil; a = Anvil().start(); "
        "print(a._proc.pid, flush=True); time.sleep(120)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        anvil_pid = int(parent.stdout.readline())
        assert not _gone(anvil_pid)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while not _gone(anvil_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(anvil_pid), "anvil outlived the process that started it"


def test_a_sigterm_to_its_parents_group_leaves_anvil_to_its_parent() -> None:
    # a testnet's supervisor gets SIGTERM through its group and stops its daemons first; the
    # chain must still answer them until the supervisor stops it, last
    code = (
        "import signal, sys, time; from daemons.testnet.nodes.anvil import Anvil; "
        "signal.signal(signal.SIGTERM, lambda *_: None); a = Anvil().start(); "
        "print(a._proc.pid, a.rpc_url, flush=True); sys.stdin.readline(); a.stop()"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert parent.stdout is not None and parent.stdin is not None
        pid, url = parent.stdout.readline().split()
        os.killpg(parent.pid, signal.SIGTERM)
        time.sleep(1.0)
        assert not _gone(int(pid)), "anvil ended with its parent's group, before its parent"
        assert os.getpgid(int(pid)) == int(pid)  # it leads its own
        parent.stdin.write("\n")
        parent.stdin.flush()
        assert parent.wait(timeout=20) == 0
        assert _gone(int(pid))
        assert url.startswith("http://127.0.0.1:")
    finally:
        parent.kill()
        parent.wait()


def test_a_busy_port_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(AnvilError, match=f"did not answer on http://127.0.0.1:{port}"):
            Anvil(port=port, start_timeout_s=5).start()


def test_a_missing_binary_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDCHAIN_ANVIL", "/nonexistent/anvil")
    with pytest.raises(AnvilError, match="FEDCHAIN_ANVIL=/nonexistent/anvil is not an executable"):
        Anvil().start()
    monkeypatch.delenv("FEDCHAIN_ANVIL")
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(anvil_module, "REPO_ROOT", Path("/nonexistent"))
    with pytest.raises(AnvilError, match="make setup"):
        anvil_module.find_anvil()
