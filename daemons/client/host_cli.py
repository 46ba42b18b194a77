"""`fedchain client-host run --config HOST.toml`: many clients in one process (host_service)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any


def register(sub: Any) -> None:
    """Add the `client-host` command group."""
    what = "client host (many clients in one process, training batched)"
    group = sub.add_parser("client-host", help=f"the {what}", description=f"The {what}.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run",
        help="run every client of a host config until SIGTERM/SIGINT",
        description="Run the clients listed in a host config's [host].clients in one process, "
        "sharing one chain connection, one IPFS node and one JAX runtime (docs/daemons.md, "
        "'Client host'). Exit codes: 1 crash, 2 config error, 3 chain was reset.",
    )
    run.add_argument("--config", "-c", required=True, help="client host TOML config file")
    run.add_argument(
        "--log-format", choices=("human", "json"), default=None, help="override host.log_format"
    )
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from daemons.client.host_config import load_host_config
    from daemons.runtime.service import exit_past_stray_threads, setup_logging

    host = load_host_config(args.config)
    setup_logging(args.log_format or host.log_format)
    from daemons.client.host_service import run_host

    return exit_past_stray_threads(asyncio.run(run_host(host)))
