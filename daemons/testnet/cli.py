"""`fedchain testnet up|down`: the one-command local federation (registered into daemons.cli)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from daemons.errors import ConfigError, FedchainError
from daemons.testnet.procs import pid_alive
from daemons.testnet.spec import (
    PARTITIONS,
    PENALTIES,
    STRATEGIES,
    NetSpec,
    RunDir,
    validate,
)
from models import registry

DEFAULT_RUN_DIR = Path("runs/testnet")


class DefaultsHelp(argparse.HelpFormatter):
    """Appends each option's real default to its help (skipping None/False: nothing to say)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return f"{text} (default: {action.default})"


def register(subparsers: Any) -> None:
    """Add `testnet up` and `testnet down` to the `fedchain` parser."""
    group = subparsers.add_parser(
        "testnet",
        help="run a local multi-process federation (anvil + IPFS + org + clients)",
        description="A local federation: a dev chain (anvil, or --chain ganache | hardhat), "
        "one IPFS node per participant, the org and "
        "N client daemons as separate processes, with a live view and an HTML report.",
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser(
        "up",
        help="start a testnet, run the rounds, write the report",
        formatter_class=DefaultsHelp,
    )
    _add_up_options(up)
    up.set_defaults(func=_cmd_up)
    down = actions.add_parser(
        "down", help="stop a testnet started with --keep-running", formatter_class=DefaultsHelp
    )
    down.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="its run dir")
    down.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    down.set_defaults(func=_cmd_down)


def _add_up_options(p: argparse.ArgumentParser) -> None:
    """Every `testnet up` option; each help's default is read from `NetSpec` (never retyped)."""
    d = NetSpec(run_dir=DEFAULT_RUN_DIR)
    add = p.add_argument
    add("--clients", type=int, default=d.clients, help="clients (1-1000)")
    add(
        "--clients-per-host",
        type=int,
        default=d.clients_per_host,
        help="clients per `fedchain client-host` process (0: auto, one daemon each up to 16)",
    )
    add(
        "--host-training",
        default=d.host_training,
        help="how a host trains its clients: loop (one by one, as a lone client), vmap, or "
        "auto (loop on a CPU, vmap on an accelerator)",
    )
    add("--rounds", type=int, default=d.rounds, help="rounds to run")
    tasks = " | ".join(registry.TASKS)
    add("--task", default=d.task, help=f"{tasks} or package.module:attr")
    add("--model", default=d.model, help="the task's network (default: the task's first)")
    strategies = ", ".join(STRATEGIES)
    add("--strategy", default=d.strategy, help=f"{strategies} or package.module:Class")
    add(
        "--penalty",
        choices=PENALTIES,
        default=None,
        help=f"local penalty (default: {d.penalty} when --ewc-lambda > 0, else none)",
    )
    add("--ewc-lambda", type=float, default=d.ewc_lambda, help="EWC strength; 0 = off")
    add("--partition", choices=PARTITIONS, default=d.partition, help="data split")
    add("--alpha", type=float, default=d.alpha, help="Dirichlet alpha")
    add("--shards-per-client", type=int, default=d.shards_per_client, help="label shards")
    add("--block-time", type=float, default=None, help="seconds per block (default: automine)")
    add(
        "--chain",
        default=d.chain,
        help="the EVM node to start: anvil (default), ganache or hardhat (npm packages)",
    )
    add("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="run dir")
    add("--keep-running", action="store_true", help="leave the net up after the last round")
    add("--ipfs-api", default=None, help="use this Kubo RPC URL instead of bundled nodes")
    add("--epochs", type=int, default=d.epochs, help="local epochs per round")
    add("--batch-size", type=int, default=d.batch_size, help="batch size")
    add("--learning-rate", type=float, default=d.learning_rate, help="SGD step")
    add("--samples-per-client", type=int, default=0, help="cap each client's data (0 = all)")
    add("--test-samples", type=int, default=0, help="cap the org's test set (0 = all)")
    add("--round-duration", type=int, default=d.round_duration_s, help="round deadline, s")
    add("--min-updates", type=int, default=d.min_updates, help="updates needed to close")
    add("--seed", type=int, default=d.seed, help="seed for data split and model")
    add("--data", type=Path, default=None, help="the task's data set (Fashion-MNIST: IDX dir)")
    add("--xla-threads", type=int, default=d.xla_threads, help="XLA threads per daemon")
    add(
        "--pin-cpus",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pin each client daemon to --xla-threads CPUs, round-robin (bounds its XLA pool);"
        " default: auto, pinned when the client daemons' threads fill the CPUs",
    )
    add(
        "--no-swarm-key",
        action="store_true",
        help="bundled nodes without a private network (by default they share a fresh "
        "RUN_DIR/ipfs/swarm.key; docs/security.md)",
    )
    add("--encrypt-updates", action="store_true", help="clients seal updates to the org's key")
    add(
        "--models",
        default="public",
        help="public | members: the org seals every model to each client's key (a fresh "
        "X25519 key and signed key card per client and run)",
    )
    add(
        "--dp",
        default="off",
        help="differential privacy: off | central | local (needs --penalty none)",
    )
    add("--dp-clip", type=float, default=d.dp_clip_norm, help="DP clip norm C (1.0)")
    add("--dp-noise", type=float, default=d.dp_noise_multiplier, help="DP noise multiplier z (1.0)")
    add("--dp-budget", type=float, default=0.0, help="stop before ε would exceed this (0: none)")


def resolve_penalty(penalty: str | None, ewc_lambda: float) -> tuple[str, str]:
    """The penalty to run and a warning ("" if none) for `--penalty ewc --ewc-lambda 0`."""
    if penalty is None:
        return ("ewc" if ewc_lambda > 0 else "none"), ""
    if penalty == "ewc" and ewc_lambda == 0:
        return penalty, (
            "warning: --penalty ewc with --ewc-lambda 0 trains with no penalty at all; "
            "pass --ewc-lambda > 0 (e.g. 5) for EWC, or --penalty none to say so"
        )
    return penalty, ""


def spec_from_args(a: argparse.Namespace) -> NetSpec:
    """The validated spec for parsed `testnet up` arguments (warns on a no-op penalty)."""
    penalty, warning = resolve_penalty(a.penalty, a.ewc_lambda)
    if warning:
        print(f"fedchain testnet: {warning}", file=sys.stderr)
    return validate(
        NetSpec(
            run_dir=a.run_dir,
            clients=a.clients,
            clients_per_host=a.clients_per_host,
            host_training=a.host_training,
            rounds=a.rounds,
            task=a.task,
            model=a.model,
            strategy=a.strategy,
            penalty=penalty,
            ewc_lambda=a.ewc_lambda,
            partition=a.partition,
            alpha=a.alpha,
            shards_per_client=a.shards_per_client,
            block_time_s=a.block_time,
            chain=a.chain,
            keep_running=a.keep_running,
            ipfs_api=a.ipfs_api,
            epochs=a.epochs,
            batch_size=a.batch_size,
            learning_rate=a.learning_rate,
            samples_per_client=a.samples_per_client,
            test_samples=a.test_samples,
            round_duration_s=a.round_duration,
            min_updates=a.min_updates,
            seed=a.seed,
            data_dir=a.data,
            xla_threads=a.xla_threads,
            pin_cpus=a.pin_cpus,
            swarm_key=not a.no_swarm_key,
            encrypt_updates=a.encrypt_updates,
            models=a.models,
            dp=a.dp,
            dp_clip_norm=a.dp_clip,
            dp_noise_multiplier=a.dp_noise,
            dp_epsilon_budget=a.dp_budget,
        )
    )


def _cmd_up(a: argparse.Namespace) -> int:
    from daemons.testnet.run import up

    console = Console() if sys.stdout.isatty() else Console(width=120)
    try:
        return up(spec_from_args(a), console)
    except ConfigError:
        raise  # daemons.cli prints it and exits 2
    except FedchainError as e:
        console.print(f"[red]fedchain testnet: {e}[/red]")
        return 1


def _cmd_down(a: argparse.Namespace) -> int:
    from daemons.testnet.spec import read_net_file

    run = RunDir(a.run_dir.resolve())
    try:
        net = read_net_file(run)
    except FedchainError as e:
        print(f"fedchain testnet down: {e}")
        return 1
    pid = net.get("supervisor_pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        print(f"no testnet is running in {run.root} (last phase: {net.get('phase')})")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + a.timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            print(f"supervisor {pid} did not stop in {a.timeout:.0f} s; sending SIGKILL")
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    print(f"testnet in {run.root} stopped; logs in {run.logs}")
    return 0
