"""`testnet up` as a function: start the supervisor process, watch the net, write the report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from daemons.errors import ConfigError
from daemons.testnet import progress
from daemons.testnet.facts import fold_gas
from daemons.testnet.plot_pool import PlotWorkerError, PlotWorkers, start_plot_workers
from daemons.testnet.procs import Child, pid_alive, signal_group, stop_children
from daemons.testnet.records import RoundRecord
from daemons.testnet.spec import DEFAULT_DATA_DIR, NetSpec, RunDir, TestnetError, read_net_file

# web3, IPFS, the blob codec (JAX) and matplotlib are imported where they are used, after
# the supervisor has started: `testnet up` spends no CPU on them before the net starts.

RUN_ENTRIES = ("logs", "configs", "data", "ipfs", "state", "plots", "report.html")
RUN_FILES = ("testnet.json", "spec.json", "summary.json", "testnet.tmp")
KEPT_ENTRIES = ("cache",)  # compile caches and the data split, reused by the next run


@dataclass
class Outcome:
    """How a watched run ended."""

    rounds: list[RoundRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    report: Path | None = None
    finished: bool = False


def prepare_run_dir(run: RunDir) -> None:
    """Empty a previous run's entries; refuse a live net or a directory that is not a run dir."""
    if run.net_file.exists():
        pid = read_net_file(run).get("supervisor_pid")
        if isinstance(pid, int) and pid_alive(pid) and _is_supervisor(pid, run):
            raise TestnetError(
                f"a testnet is still running in {run.root} (supervisor pid {pid}); "
                f"stop it with `fedchain testnet down --run-dir {run.root}`"
            )
    if run.root.exists() and any(run.root.iterdir()):
        known = set(RUN_ENTRIES) | set(RUN_FILES) | set(KEPT_ENTRIES)
        if not (run.root / "spec.json").exists() or set(os.listdir(run.root)) - known:
            raise TestnetError(
                f"{run.root} is not empty and not a testnet run dir; pick another --run-dir"
            )
    for name in RUN_ENTRIES + RUN_FILES:
        path = run.root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    run.root.mkdir(parents=True, exist_ok=True)


def _is_supervisor(pid: int, run: RunDir) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return "daemons.testnet.supervisor" in cmdline and str(run.root) in cmdline


def start_supervisor(spec: NetSpec, run: RunDir) -> Child:
    """Write spec.json and spawn the supervisor (detached from us if --keep-running)."""
    (run.root / "spec.json").write_text(json.dumps(spec.to_json(), indent=2))
    argv = [sys.executable, "-m", "daemons.testnet.supervisor", str(run.root)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # a plug-in task or strategy is imported by module path in every daemon: from the
    # directory `testnet up` ran in (as `python -m` would), whatever the daemon's cwd
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH")) if p)
    child = Child("supervisor", argv, env, run.logs / "supervisor.log")
    child.die_with_parent = not spec.keep_running
    child.start()
    return child


async def wait_running(run: RunDir, sup: Child, console: Console) -> dict[str, Any]:
    """Block until the supervisor reports `running`; raise with its log if it fails first."""
    last = ""
    with console.status("starting the testnet…") as status:
        while True:
            net = read_net_file(run) if run.net_file.exists() else {}
            phase = net.get("phase", "starting")
            if phase != last:
                status.update(f"starting the testnet: {phase}…")
                last = phase
            if phase == "running":
                return net
            if sup.poll() is not None or phase == "failed":
                raise TestnetError(
                    f"the testnet failed while starting ({phase}): {net.get('error', '')}\n"
                    f"supervisor log {sup.log_path}:\n{sup.log_tail()}"
                )
            await asyncio.sleep(0.1)


POLL_GIVE_UP_S = 60.0


async def _follow(
    run: RunDir, sup: Child, spec: NetSpec, feed: Any, out: Outcome, console: Console
) -> None:
    """Poll until every planned round settled, the supervisor stopped, or reads keep failing."""
    live = Live(console=console, refresh_per_second=4) if console.is_terminal else None
    with live if live is not None else contextlib.nullcontext():
        while not out.finished:
            if sup.poll() is not None:
                error = read_net_file(run).get("error", "no error recorded")
                out.problems.append(f"the testnet stopped early: {error}")
                return
            rounds = await feed.step()
            if live is not None:
                net = read_net_file(run)
                health = await feed.health(net.get("health", {}))
                live.update(progress.render(net, rounds, spec.rounds, health))
            settled = sum(r.status != "open" for r in rounds)
            out.finished = settled >= spec.rounds and not feed.pending
            if feed.failing_for_s() > POLL_GIVE_UP_S:
                out.problems.append(f"cannot read the chain or IPFS: {feed.last_error}")
                return
            await asyncio.sleep(0.1)


async def watch_rounds(
    run: RunDir, sup: Child, net: dict[str, Any], spec: NetSpec, console: Console
) -> Outcome:
    """Follow the chain until `spec.rounds` rounds are settled or the supervisor stops."""
    from daemons.ipfs.client import IpfsStorage
    from daemons.testnet import collect
    from daemons.testnet.feed import Feed

    watch = collect.ChainWatch(net["rpc_url"], net["contract"])
    out = Outcome()
    try:
        async with IpfsStorage(net["ipfs_api"]) as ipfs:
            feed = Feed(watch, ipfs, None if console.is_terminal else console)
            await _follow(run, sup, spec, feed, out, console)
            if sup.poll() is None:
                facts, problems = await collect.blob_facts(ipfs, feed.rounds({}))
                out.problems += problems
                got, problems = await collect.receipts(watch.w3, watch.events)
                out.problems += problems
                feed.gas = fold_gas(watch.events, got)
                out.rounds = feed.rounds(facts)
            else:
                out.rounds = feed.rounds({})
    finally:
        await watch.close()
    return out


def _import_watchers() -> None:
    """Import what following the rounds needs, so the watch starts as soon as the net runs
    (a round seen late would get no wall time)."""
    import daemons.ipfs.client
    import daemons.testnet.collect
    import daemons.testnet.feed  # noqa: F401


def write_summary(run: RunDir, out: Outcome, spec: NetSpec, elapsed_s: float) -> None:
    """summary.json: the per-round numbers for scripts (CI test, benchmark)."""
    from daemons.testnet.report import overhead_s, summarize

    rows = [
        {
            "round_id": r.round_id,
            "status": r.status,
            "accuracy": r.accuracy,
            "loss": r.loss,
            "headline": r.headline,
            "metrics": dict(r.metrics),
            "gas": None if r.gas is None else asdict(r.gas),
            "wall_s": r.wall_s,
            "slowest_train_s": r.slowest_train_s,
            "overhead_s": overhead_s(r),
            "last_update_s": r.last_update_s,
            "bytes_moved": r.bytes_moved,
            "model_cid": r.model_cid,
            "manifest_cid": r.manifest_cid,
            "updates": [asdict(u) | {"train": dict(u.train)} for u in r.updates],
            "timings_s": dict(r.timings_s),
        }
        for r in out.rounds
    ]
    doc = {
        "spec": spec.to_json(),
        "elapsed_s": elapsed_s,
        "finished": out.finished,
        "problems": out.problems,
        "summary": asdict(summarize(out.rounds)),
        "rounds": rows,
    }
    (run.root / "summary.json").write_text(json.dumps(doc, indent=2))


def finish(
    run: RunDir,
    out: Outcome,
    net: dict[str, Any],
    spec: NetSpec,
    t0: float,
    plots: PlotWorkers | None = None,
) -> None:
    """Write report.html, plots (in the `plots` workers, if any) and summary.json."""
    from daemons.testnet.report import write_report

    elapsed = time.monotonic() - t0
    facts = {
        "run dir": str(run.root),
        "clients": str(spec.clients),
        "task / model / strategy": f"{spec.task} / {spec.model} / {spec.strategy}",
        "partition": spec.partition,
        "training": f"{spec.epochs} epoch(s), batch {spec.batch_size}, lr {spec.learning_rate}",
        "penalty": f"{spec.penalty} (lambda {spec.ewc_lambda})",
        "chain": f"{net.get('rpc_url')} contract {net.get('contract')}",
        "ipfs": str(net.get("ipfs_api")),
        "elapsed": f"{elapsed:.1f} s",
        "problems": "; ".join(out.problems) or "none",
    }
    clients = net.get("clients", [])
    names = {c.lower(): f"client-{i}" for i, c in enumerate(clients)}  # as configgen names them
    report = (out.rounds, clients, run.root, facts, names)
    try:
        out.report = write_report(*report, workers=plots)
    except PlotWorkerError as e:  # a worker died or hung: draw the plots here
        print(f"testnet: {e}; drawing the plots in this process", file=sys.stderr)
        out.report = write_report(*report)
    write_summary(run, out, spec, elapsed)


def print_end(console: Console, run: RunDir, out: Outcome, kept: bool) -> None:
    """The summary table, headline lines, problems, and where everything is."""
    from daemons.testnet.report import rich_table, summarize, summary_lines

    console.print(rich_table(out.rounds))
    for line in summary_lines(summarize(out.rounds)):
        console.print(line)
    for p in out.problems:
        console.print(f"[red]problem:[/red] {p}")
    if out.report is not None:
        console.print(f"report: {out.report}")
    console.print(f"logs:   {run.logs}")
    if kept:
        console.print(
            f"the testnet keeps running; stop it with `fedchain testnet down --run-dir {run.root}`"
        )


def stop_supervisor(sup: Child, timeout_s: float = 60.0) -> None:
    """SIGTERM the supervisor (unless `begin_stop` did) and wait until it has stopped
    everything it owns."""
    stop_children([sup], timeout_s=timeout_s)


def begin_stop(sup: Child) -> None:
    """SIGTERM the supervisor without waiting: the net stops while the report is written.
    Sent once (a second SIGTERM could cut short the supervisor's own clean-up)."""
    if sup.proc is not None and sup.proc.poll() is None:
        signal_group(sup.proc, signal.SIGTERM)
        sup.stop_sent = True


async def _up_async(
    spec: NetSpec, run: RunDir, sup: Child, console: Console, t0: float, plots: PlotWorkers | None
) -> Outcome:
    await asyncio.to_thread(_import_watchers)  # while the supervisor starts the net
    net = await wait_running(run, sup, console)
    console.print(
        f"testnet up: chain {spec.chain} {net['rpc_url']}, contract {net['contract']}, "
        f"{spec.clients} clients, logs in {run.logs}"
    )
    out = await watch_rounds(run, sup, net, spec, console)
    net = read_net_file(run)
    if not spec.keep_running:
        begin_stop(sup)  # every round is in `out`: the report needs the net no more
    finish(run, out, net, spec, t0, plots)
    return out


def check_plugins(spec: NetSpec) -> None:
    """Import the task and strategy now, so a typo fails here (exit 2) and not in 5 daemons.

    Built-in names are checked against the JAX-free registry (`validate` did); only a
    plug-in is imported (which imports JAX).
    """
    from models import registry

    if not (registry.is_plugin(spec.task) or registry.is_plugin(spec.strategy)):
        return
    from models.errors import ModelsError
    from models.strategies import strategy_uses_fisher
    from models.tasks import get_task

    try:
        get_task(spec.task, spec.model)
        strategy_uses_fisher(spec.strategy)
    except ModelsError as exc:
        raise ConfigError(f"testnet: {exc}") from None


def up(spec: NetSpec, console: Console) -> int:
    """Run a testnet to the end (or keep it running); 0 when every round settled cleanly."""
    if spec.task == "fashion_mnist" and not (spec.data_dir or DEFAULT_DATA_DIR).is_dir():
        raise ConfigError(
            f"testnet option --data={spec.data_dir or DEFAULT_DATA_DIR} is not a directory: run "
            "`make setup` (installs dataset-fashion-mnist) or pass a directory with the four "
            "IDX files"
        )
    check_plugins(spec)
    run = RunDir(spec.run_dir.resolve())
    spec = NetSpec(**{**spec.__dict__, "run_dir": run.root})
    prepare_run_dir(run)
    run.create()
    t0 = time.monotonic()
    sup = start_supervisor(spec, run)
    plots = start_plot_workers(run.logs)  # matplotlib loads while the net runs (plot_pool.py)
    try:
        return _run_to_end(spec, run, sup, console, t0, plots)
    finally:
        if plots is not None:
            plots.close()


def _run_to_end(
    spec: NetSpec, run: RunDir, sup: Child, console: Console, t0: float, plots: PlotWorkers | None
) -> int:
    out: Outcome | None = None
    try:
        out = asyncio.run(_up_async(spec, run, sup, console, t0, plots))
    except KeyboardInterrupt:
        console.print("interrupted: stopping every process…")
        stop_supervisor(sup)
        console.print(f"stopped. logs: {run.logs}")
        return 130
    except BaseException:
        stop_supervisor(sup)
        console.print(f"logs: {run.logs}")
        raise
    if not spec.keep_running:
        stop_supervisor(sup)
    print_end(console, run, out, spec.keep_running)
    ok = out.finished and not out.problems and all(r.status == "closed" for r in out.rounds)
    return 0 if ok else 1
