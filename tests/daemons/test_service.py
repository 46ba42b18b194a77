"""Service runtime: signals exit 0, crashes exit non-zero, sd_notify, JSON logs, HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import aiohttp
import pytest

from contracts.errors import ContractGone
from daemons.errors import ChainResetError
from daemons.runtime.http import serve_forever
from daemons.runtime.metrics import Metrics
from daemons.runtime.service import (
    EXIT_CHAIN_RESET,
    EXIT_CRASH,
    EXIT_OK,
    log_event,
    race,
    report_crash,
    sd_notify,
    setup_logging,
    supervise,
    watchdog_interval_s,
)

pytestmark = pytest.mark.timeout(60)

SCRIPT = textwrap.dedent(
    """
    import asyncio, logging, sys
    from daemons.runtime.service import supervise, setup_logging, log_event
    setup_logging(sys.argv[1])
    log = logging.getLogger("fedchain.test")
    async def forever():
        log_event(log, logging.INFO, "started", answer=42)
        await asyncio.Event().wait()
    sys.exit(asyncio.run(supervise([forever], name="t")))
    """
)


def _spawn(tmp_path: Path, fmt: str, env: dict[str, str]) -> subprocess.Popen[str]:
    script = tmp_path / "svc.py"
    script.write_text(SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), fmt],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero_with_sd_notify(tmp_path: Path, sig: signal.Signals) -> None:
    sock_path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(sock_path)
        sock.settimeout(20)
        env = {"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "200000"}
        proc = _spawn(tmp_path, "json", env)
        try:
            got = [sock.recv(100).decode() for _ in range(3)]
            assert "READY=1" in got and "WATCHDOG=1" in got
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=20)
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        rest = []
        sock.settimeout(0.5)
        try:
            while True:
                rest.append(sock.recv(100).decode())
        except TimeoutError:
            pass
        assert "STOPPING=1" in rest
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    started = [d for d in lines if d["msg"] == "started"]
    assert started and started[0]["answer"] == 42 and started[0]["level"] == "info"
    assert any("stopping on signal" in d["msg"] for d in lines)


async def test_crash_cancels_others_and_maps_exit_code() -> None:
    cancelled = asyncio.Event()

    async def survivor() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def crash() -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("boom")

    async def reset() -> None:
        raise ChainResetError("genesis differs")

    assert await supervise([survivor, crash]) == EXIT_CRASH
    assert cancelled.is_set()
    assert await supervise([survivor, reset]) == EXIT_CHAIN_RESET

    async def finishes() -> None:
        return None

    assert await supervise([survivor, finishes]) == EXIT_OK


async def test_a_crash_ends_the_service_even_if_a_task_will_not_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task that swallows its cancellation must not keep a crashed daemon alive, idle."""
    monkeypatch.setattr("daemons.runtime.service.STOP_TIMEOUT_S", 0.3)
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    async def inner() -> None:
        await race([stubborn, crash], name="org")

    async def crash() -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("boom")

    try:
        assert await asyncio.wait_for(supervise([inner]), 10) == EXIT_CRASH
    finally:
        release.set()


async def test_race_says_how_it_ended_before_cancelling_the_rest() -> None:
    """`on_end` (supervise: the crash log, STOPPING=1) comes before the bounded cancel wait."""
    order: list[str] = []

    async def survivor() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            order.append("cancelled")

    async def crash() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await race([survivor, crash], on_end=lambda exc: order.append(repr(exc)))
    assert order == ["RuntimeError('boom')", "cancelled"]

    async def finishes() -> None:
        return None

    order.clear()
    await race([survivor, finishes], on_end=lambda exc: order.append(repr(exc)))
    assert order == ["None", "cancelled"]


def test_a_stray_thread_does_not_keep_a_stopped_daemon_alive() -> None:
    """A non-daemon thread that never ends would hang the interpreter's exit forever."""
    script = textwrap.dedent(
        """
        import threading, time
        from daemons.runtime.service import exit_past_stray_threads, setup_logging
        setup_logging()
        threading.Thread(target=lambda: time.sleep(3600), name="stuck-worker").start()
        raise SystemExit(exit_past_stray_threads(1))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1
    assert "exiting past 1 live thread(s): stuck-worker" in proc.stderr


def test_reset_message_says_chain_was_reset_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="fedchain.service"):
        assert report_crash("org", ChainResetError("chain was reset: genesis differs")) == 3
        assert report_crash("client", ContractGone("contract 0xab has no code")) == 3
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "org stopped: chain was reset: genesis differs",
        "client stopped: chain was reset: contract 0xab has no code",
    ]


def test_sd_notify_without_socket_is_noop() -> None:
    assert sd_notify("READY=1", {}) is False
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "2000000"}) == 1.0


def test_human_log_format(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("human")
    log_event(logging.getLogger("fedchain.x"), logging.WARNING, "hello", round_id=3)
    err = capsys.readouterr().err
    assert "WARNING fedchain.x: hello round_id=3" in err


async def test_http_healthz_and_metrics() -> None:
    metrics = Metrics("org")
    metrics.updates_rejected.labels(reason="non_finite").inc()
    metrics.rounds.labels(outcome="closed").inc(2)
    bound: list[int] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    task = asyncio.create_task(
        serve_forever(metrics, lambda: {"round_id": 4}, "127.0.0.1", port, bound.append)
    )
    try:
        deadline = time.monotonic() + 10
        while not bound and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200
                doc = await resp.json()
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert doc["status"] == "ok" and doc["round_id"] == 4 and doc["role"] == "org"
    assert 'fedchain_updates_rejected_total{reason="non_finite"} 1.0' in text
    assert 'fedchain_rounds_total{outcome="closed"} 2.0' in text
