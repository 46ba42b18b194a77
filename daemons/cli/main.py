"""The `fedchain` command line: `org run`, `client run`, `ipfs`, plus the other command groups.

Command groups owned by other parts (chain views, testnet) add themselves through their
module's `register(subparsers)`; each module is imported only when its group is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from daemons.errors import ConfigError


def _chain_views(sub: Any) -> None:
    from daemons.cli import chain as cli_chain
    from daemons.cli import model as cli_model

    cli_chain.register(sub)
    cli_model.register(sub)


def _testnet(sub: Any) -> None:
    from daemons.testnet import cli

    cli.register(sub)


def _init(sub: Any) -> None:
    from daemons.cli import init

    init.register(sub)


def _clients(sub: Any) -> None:
    from daemons.cli import clients as cli_clients

    cli_clients.register(sub)


def _keys(sub: Any) -> None:
    from daemons.privacy import cli

    cli.register(sub)


def _task(sub: Any) -> None:
    from daemons.cli import task as task_cli

    task_cli.register(sub)


def _verify(sub: Any) -> None:
    from daemons.verify import cli

    cli.register(sub)


def _report(sub: Any) -> None:
    from daemons.cli import report as cli_report

    cli_report.register(sub)


def _client_host(sub: Any) -> None:
    from daemons.client import host_cli

    host_cli.register(sub)


GROUPS: tuple[tuple[tuple[str, ...], Callable[[Any], None]], ...] = (
    (("events", "rounds", "status", "model"), _chain_views),
    (("testnet",), _testnet),
    (("init",), _init),
    (("clients",), _clients),
    (("keys",), _keys),
    (("data", "new"), _task),
    (("verify",), _verify),
    (("report",), _report),
    (("client-host",), _client_host),
)


def _groups_for(command: str | None) -> list[Callable[[Any], None]]:
    """The command groups to register for `command`: its own only (none for org, client,
    ipfs), or all of them (no command, --help, an unknown one). Each group imports web3
    or JAX, ~1 CPU-second apiece, which `testnet up` and the daemons need not pay."""
    if command in ("org", "client", "ipfs"):
        return []
    mine = [register for names, register in GROUPS if command in names]
    return mine or [register for _, register in GROUPS]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser (every command has --help); `command`: only what it needs."""
    parser = argparse.ArgumentParser(
        prog="fedchain",
        description="Federated learning coordinated by an Ethereum contract, models over IPFS.",
    )
    parser.add_argument("--version", action="version", version=f"fedchain {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for role in ("org", "client"):
        _add_role(sub, role)
    ipfs = sub.add_parser(
        "ipfs",
        help="run the bundled IPFS node",
        description="Run the bundled IPFS node.",
        add_help=False,
    )
    ipfs.add_argument("ipfs_args", nargs=argparse.REMAINDER, help="arguments for the node")
    ipfs.set_defaults(func=_run_ipfs)
    for register in _groups_for(command):
        register(sub)
    return parser


def package_version() -> str:
    """The installed fedchain version (from the package metadata pyproject.toml wrote)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fedchain")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _add_role(sub: Any, role: str) -> None:
    """`fedchain <role> run --config FILE [--log-format human|json]`."""
    what = "org daemon (opens rounds, aggregates)" if role == "org" else "client daemon (trains)"
    group = sub.add_parser(role, help=f"the {what}", description=f"The {what}.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run",
        help=f"run the {role} daemon until SIGTERM/SIGINT",
        description=f"Run the {what} until SIGTERM/SIGINT (exit 0), reacting to contract "
        "events. Exit codes: 1 crash, 2 config error, 3 chain was reset.",
    )
    run.add_argument("--config", "-c", required=True, help=f"{role} TOML config file")
    run.add_argument(
        "--log-format",
        choices=("human", "json"),
        default=None,
        help="override [service].log_format",
    )
    run.set_defaults(func=_run_daemon, role=role)


def _run_daemon(args: argparse.Namespace) -> int:
    from daemons.runtime.config import load_config
    from daemons.runtime.service import setup_logging

    cfg = load_config(args.config, args.role)
    setup_logging(args.log_format or cfg.service.log_format)
    from daemons.runtime.service import exit_past_stray_threads

    if args.role == "org":
        from daemons.org.service import run_org

        return exit_past_stray_threads(asyncio.run(run_org(cfg)))
    from daemons.client.service import run_client

    return exit_past_stray_threads(asyncio.run(run_client(cfg)))


def _run_ipfs(args: argparse.Namespace) -> int:
    from daemons.ipfs.bundled import run_node_command

    return int(run_node_command(args.ipfs_args) or 0)


def _plugin_path() -> None:
    """Let `module:attribute` tasks and strategies import from the current directory.

    As `python -m` would; appended, so it cannot shadow an installed package.
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _plugin_path()
    if argv[:1] == ["ipfs"]:  # everything after `ipfs`, --help included, is the node's
        return _run_ipfs(argparse.Namespace(ipfs_args=argv[1:]))
    command = argv[0] if argv and not argv[0].startswith("-") else None
    args = build_parser(command).parse_args(argv)
    try:
        result = args.func(args)
        if inspect.isawaitable(result):
            result = asyncio.run(result)  # type: ignore[arg-type]
    except ConfigError as exc:
        print(f"fedchain: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)
