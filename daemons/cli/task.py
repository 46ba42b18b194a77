"""`fedchain data split` and `fedchain new task`: a task's data files and a task skeleton.

`data split` writes each client's data file and the org's evaluation file for any task
(built-in or `module:attribute`), so no one has to write Python against `models/data.py`.
`new task NAME` writes a task module, org and client configs and a testnet script that run
at once (like `flwr new`), for the user to edit into their own problem.
"""

from __future__ import annotations

import argparse
import os
import stat
from importlib import resources
from pathlib import Path
from typing import Any

from daemons.errors import ConfigError
from models import registry

# anvil's well-known dev accounts 0..2 (never use them on a real chain), and the address the
# first contract deployed by account 0 on a fresh anvil gets (nonce 0)
DEV_ADDRESSES = (
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dC3A010c7D01b50e20d4DC79c8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
)
FIRST_CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def register(subparsers: Any) -> None:
    """Add `data split` and `new task` to the `fedchain` parser."""
    data = subparsers.add_parser("data", help="prepare a task's data files")
    actions = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    split = actions.add_parser(
        "split",
        help="split a task's data set into client files and the org's evaluation file",
        description="Write DIR/client-<i>.npz for each client and DIR/org-test.npz.",
    )
    add = split.add_argument
    add("--task", required=True, help=f"{' | '.join(registry.TASKS)} or package.module:attr")
    add("--model", default="", help="the task's model (default: its first)")
    add("--clients", type=int, required=True, help="number of clients")
    add("--partition", choices=registry.PARTITIONS, default="iid", help="how to split (iid)")
    add("--out", type=Path, required=True, help="directory to write the files into")
    add("--data", default=None, help="the task's data source (Fashion-MNIST: its IDX dir)")
    add("--alpha", type=float, default=0.5, help="Dirichlet alpha (0.5)")
    add("--shards-per-client", type=int, default=2, help="label shards per client (2)")
    add("--samples-per-client", type=int, default=0, help="cap each client's data (0 = all)")
    add("--test-samples", type=int, default=0, help="cap the org's file (0 = all)")
    add("--seed", type=int, default=0, help="seed of the split (0)")
    split.set_defaults(func=_cmd_split)
    new = subparsers.add_parser("new", help="write a skeleton to start from")
    kinds = new.add_subparsers(dest="kind", metavar="KIND", required=True)
    task = kinds.add_parser(
        "task",
        help="a task module plus org/client configs and a testnet script",
        description="Write NAME/task.py (a runnable Task to edit), org.toml, client-0.toml, "
        "client-1.toml and testnet.sh into DIR (default: ./NAME-project).",
    )
    task.add_argument("name", help="the task's Python package name (an identifier)")
    task.add_argument("--dir", type=Path, default=None, help="where to write (NAME-project)")
    task.set_defaults(func=_cmd_new_task)


def _cmd_split(a: argparse.Namespace) -> int:
    from daemons.testnet.partition import PartitionPlan, write_partitions
    from models.errors import ModelsError
    from models.tasks import get_task

    if a.clients < 1:
        raise ConfigError(f"--clients={a.clients}: use an integer >= 1")
    plan = PartitionPlan(
        a.partition,
        a.clients,
        a.seed,
        a.alpha,
        a.shards_per_client,
        a.samples_per_client,
        a.test_samples,
    )
    try:
        task = get_task(a.task, a.model)
        result = write_partitions(plan, Path(a.data) if a.data else None, a.out, task)
    except (ModelsError, ValueError) as exc:
        raise ConfigError(f"data split --task {a.task}: {exc}") from None
    for path, size, counts in zip(
        result.client_paths, result.client_sizes, result.label_counts, strict=True
    ):
        labels = f"  labels {list(counts)}" if counts else ""
        print(f"{path}: {size} samples{labels}")
    print(f"{result.test_path}: the org's evaluation data ([federation] eval_data)")
    return 0


def _cmd_new_task(a: argparse.Namespace) -> int:
    name = a.name
    if not name.isidentifier() or name in registry.TASKS:
        raise ConfigError(f"new task {name!r}: use a Python identifier that is not a built-in")
    root = (a.dir or Path(f"{name}-project")).resolve()
    if root.exists() and any(root.iterdir()):
        raise ConfigError(f"new task: {root} exists and is not empty; pick another --dir")
    pkg = root / name
    pkg.mkdir(parents=True, exist_ok=True)
    template = resources.files("daemons.cli").joinpath("templates/task.py.txt").read_text()
    (pkg / "__init__.py").write_text(f'"""The {name} task package."""\n')
    (pkg / "task.py").write_text(template.format(name=name))
    ref = f"{name}.task:task"
    (root / "org.toml").write_text(_org_toml(ref))
    for i in (0, 1):
        (root / f"client-{i}.toml").write_text(_client_toml(ref, i))
    script = root / "testnet.sh"
    script.write_text(_testnet_sh(ref))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (root / "README.md").write_text(_readme(name, ref))
    print(f"wrote {root}: {name}/task.py, org.toml, client-0.toml, client-1.toml, testnet.sh")
    print(f"try it: cd {os.path.relpath(root)} && ./testnet.sh")
    return 0


def _org_toml(ref: str) -> str:
    clients = ", ".join(f'"{a}"' for a in DEV_ADDRESSES[1:])
    return f"""# The org of a 2-client federation on a local anvil + IPFS node (see README.md).
[chain]
rpc_url = "http://127.0.0.1:8545"
contract = ""                  # "" = deploy on first start (then printed and remembered)

[identity]
private_key_env = "FEDCHAIN_PRIVATE_KEY"   # anvil dev account 0

[ipfs]
api_url = "http://127.0.0.1:5001"

[service]
state_dir = "state/org"

[federation]
clients = [{clients}]
rounds = 5
round_duration_s = 120
min_updates = 2
max_updates = 2
task = "{ref}"
eval_data = "data/org-test.npz"
exit_when_done = true

[training]
epochs = 5
batch_size = 16
learning_rate = 0.05
penalty = "ewc"
ewc_lambda = 1.0
"""


def _client_toml(ref: str, i: int) -> str:
    return f"""# Client {i} (anvil dev account {i + 1}); see README.md.
[chain]
rpc_url = "http://127.0.0.1:8545"
contract = "{FIRST_CONTRACT}"   # the org's first deployment on a fresh anvil

[identity]
private_key_env = "FEDCHAIN_PRIVATE_KEY"

[ipfs]
api_url = "http://127.0.0.1:5001"

[service]
state_dir = "state/client-{i}"

[data]
task = "{ref}"
path = "data/client-{i}.npz"
"""


def _testnet_sh(ref: str) -> str:
    return f"""#!/bin/sh
# The whole federation on this machine: anvil, one IPFS node each, the org and 3 clients.
cd "$(dirname "$0")" || exit 1
exec fedchain testnet up --task {ref} --clients 3 --rounds 5 --partition dirichlet \\
    --alpha 1.0 --epochs 5 --batch-size 16 --learning-rate 0.05 --run-dir runs/testnet "$@"
"""


def _readme(name: str, ref: str) -> str:
    return f"""# {name}

A fedchain task. `{name}/task.py` is the task: edit the model (`init`, `apply`), the data
(`source`, or give each client its own file) and `metrics`. docs/tasks.md in fedchain
describes every field.

    ./testnet.sh                                   # the whole federation on this machine

By hand, with your own chain and IPFS node:

    fedchain data split --task {ref} --clients 2 --partition iid --out data
    FEDCHAIN_PRIVATE_KEY=<org key> fedchain org run --config org.toml
    FEDCHAIN_PRIVATE_KEY=<client 0 key> fedchain client run --config client-0.toml
    FEDCHAIN_PRIVATE_KEY=<client 1 key> fedchain client run --config client-1.toml

Run them from this directory (the daemons import `{name}` from it).
"""
