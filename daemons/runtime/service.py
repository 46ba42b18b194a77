"""Runtime shared by the org and client daemons: logging, signals, sd_notify, supervision.

Crash-only services (as in the async-service / aiohttp runner pattern): a service is a few
long-running tasks; SIGTERM/SIGINT cancels them and the process exits 0; a crash in any
task cancels the rest and the process exits non-zero so a supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from contracts.errors import ContractGone
from daemons.errors import ChainResetError, ConfigError, FedchainError

log = logging.getLogger("fedchain.service")

EXIT_OK = 0
EXIT_CRASH = 1
EXIT_CONFIG = 2
EXIT_CHAIN_RESET = 3

TaskFactory = Callable[[], Awaitable[None]]
RESET_PREFIX = "chain was reset: "
STOP_TIMEOUT_S = 30.0  # cancelled tasks get this long to finish; then the process goes on


class _HumanFormatter(logging.Formatter):
    """`time level logger: message key=value ...` — for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields = getattr(record, "fields", {}) or {}
        extra = "".join(f" {k}={v}" for k, v in fields.items())
        line = f"{stamp}.{int(record.msecs):03d}Z {record.levelname:<7} {record.name}: "
        line += record.getMessage() + extra
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    """One JSON object per line — for log shippers and `jq`."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, sort_keys=False)


def setup_logging(log_format: str = "human", level: int = logging.INFO) -> None:
    """Send all `fedchain.*` logs to stderr in the chosen format ("human" or "json")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _HumanFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("fedchain").setLevel(level)


def log_event(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    """Log `msg` with structured fields (shown as key=value or JSON keys)."""
    logger.log(level, msg, extra={"fields": fields})


def sd_notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one sd_notify datagram (e.g. "READY=1") if NOTIFY_SOCKET is set; True if sent."""
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(state.encode(), address)
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", env.get("NOTIFY_SOCKET"), exc)
            return False
    return True


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """Half of systemd's WATCHDOG_USEC (the recommended ping period), or None if unset."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 2e6


async def _watchdog(interval_s: float) -> None:
    """Ping systemd's watchdog while the event loop is alive."""
    while True:
        sd_notify("WATCHDOG=1")
        await asyncio.sleep(interval_s)


async def supervise(tasks: list[TaskFactory], name: str = "service", ready: bool = True) -> int:
    """Run `tasks` until a signal, the first one to finish, or the first crash; exit code.

    `ready=False`: the tasks send READY=1 themselves once set-up is done (systemd notify).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def until_signal() -> None:
        await stop.wait()
        log_event(log, logging.INFO, f"{name} stopping on signal")

    interval = watchdog_interval_s()
    watchdog = [] if interval is None else [functools.partial(_watchdog, interval)]
    code = EXIT_OK

    def ended(error: BaseException | None) -> None:
        nonlocal code
        sd_notify("STOPPING=1")
        if error is not None:
            code = report_crash(name, error)

    if ready:
        sd_notify("READY=1")
    try:
        await race([*tasks, *watchdog, until_signal], name, on_end=ended)
    except Exception:
        pass  # `ended` logged it and chose the exit code, before the rest were cancelled
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return code


async def _call(factory: TaskFactory) -> None:
    await factory()


async def race(
    tasks: list[TaskFactory],
    name: str = "service",
    on_end: Callable[[BaseException | None], None] | None = None,
) -> None:
    """Run `tasks` together until the first returns (the rest are cancelled) or one raises.

    `on_end` hears how it ended (the first error, or None) before the rest are cancelled.
    """
    running = [asyncio.create_task(_call(t), name=f"{name}-{i}") for i, t in enumerate(tasks)]
    try:
        done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if not t.cancelled() and t.exception() is not None]
        error = failed[0].exception() if failed else None
        if on_end is not None:
            on_end(error)
        if error is not None:
            raise error
    finally:
        await cancel_all(running, name)


async def cancel_all(tasks: list[asyncio.Task[Any]], name: str) -> None:
    """Cancel `tasks` and wait for them, at most STOP_TIMEOUT_S: a task that does not stop
    (swallows the cancellation, awaits without bound) is logged, never waited on forever,
    so a crash in one task always ends the process."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
    for task in stuck:
        log_event(
            log,
            logging.ERROR,
            f"{name}: task {task.get_name()} did not stop within {STOP_TIMEOUT_S:g} s "
            "of being cancelled; leaving it behind",
        )
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: no "exception never retrieved" noise


def stray_threads() -> list[threading.Thread]:
    """Live non-daemon threads besides the main one: they would keep the process alive."""
    main = threading.main_thread()
    return [t for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()]


def exit_past_stray_threads(code: int) -> int:
    """Return `code` for a normal exit, or, if a non-daemon thread (a library's, a stuck
    worker) would keep the interpreter from exiting, log it and leave now with `code`:
    a daemon that stopped must not stay alive, idle, after its last log line."""
    stray = stray_threads()
    if not stray:
        return code
    names = ", ".join(t.name for t in stray)
    log_event(log, logging.WARNING, f"exiting past {len(stray)} live thread(s): {names}")
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(code)


def report_crash(name: str, exc: BaseException | None) -> int:
    """Log why the service stopped and map the error to an exit code."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, ChainResetError | ContractGone):
        text = str(exc)  # said once: the message may say it already (e.g. ContractGone's)
        if "chain was reset" not in text:
            text = RESET_PREFIX + text
        log_event(log, logging.ERROR, f"{name} stopped: {text}")
        return EXIT_CHAIN_RESET
    if isinstance(exc, ConfigError):
        log_event(log, logging.ERROR, f"{name} stopped: configuration error: {exc}")
        return EXIT_CONFIG
    if isinstance(exc, FedchainError):
        log_event(log, logging.ERROR, f"{name} stopped: {type(exc).__name__}: {exc}")
        return EXIT_CRASH
    log.error("%s crashed", name, exc_info=exc)
    return EXIT_CRASH


def crash_wanted(step: str, round_id: int, env: Mapping[str, str] | None = None) -> bool:
    """Whether FEDCHAIN_CRASH_AT asks for a crash at `step:round_id` (or `step`)."""
    env = os.environ if env is None else env
    wanted = env.get("FEDCHAIN_CRASH_AT", "")
    return bool(wanted) and wanted in (f"{step}:{round_id}", step)


async def crash_after_broadcast(chain: Any, step: str, round_id: int, tx: Any) -> None:
    """Fault injection for tests: at `step:round_id`, sign, persist and broadcast `tx` (a
    `ports.Tx`) through the chain's `TxSender`, then SIGKILL before its receipt is read."""
    if crash_wanted(step, round_id):
        entry = await chain.sender.prepare(tx.key, tx.fn_name, *tx.args)
        await chain.sender.broadcast(entry)
        crash_point(step, round_id)


def crash_point(step: str, round_id: int, env: Mapping[str, str] | None = None) -> None:
    """Fault injection for tests: SIGKILL this process at `step:round_id` in FEDCHAIN_CRASH_AT."""
    env = os.environ if env is None else env
    wanted = env.get("FEDCHAIN_CRASH_AT", "")
    if crash_wanted(step, round_id, env):
        log_event(log, logging.WARNING, "FEDCHAIN_CRASH_AT reached: SIGKILL", at=wanted)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
