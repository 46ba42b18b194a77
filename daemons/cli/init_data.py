"""The data part of `fedchain init`: each client's share of a task's data set, the org's test set.

The same split as `fedchain data split` (the task's `source`, `models/data.py` partitions via
`daemons.testnet.partition.write_partitions`), placed in each participant's folder.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from daemons.cli.init_files import Participant
from daemons.errors import ConfigError
from models import registry


def check_task(name: str, model: str) -> None:
    """The task and model exist (before any key is made)."""
    from models.errors import ModelsError
    from models.tasks import get_task

    try:
        get_task(name, model)
    except (ModelsError, ValueError) as exc:
        raise ConfigError(f"init --task {name}: {exc}") from None


def split_data(
    args: argparse.Namespace, org: Participant | None, clients: list[Participant]
) -> None:
    """Each client's share in CLIENT/data/train.npz, the org's test set in ORG/data/test.npz.

    The same split as `fedchain data split` (the task's source, models/data.py partitions).
    """
    from daemons.testnet.partition import PartitionPlan, write_partitions
    from models.errors import ModelsError
    from models.tasks import get_task

    plan = PartitionPlan(
        args.partition,
        len(clients),
        seed=args.seed,
        samples_per_client=args.samples_per_client,
        test_samples=args.test_samples,
    )
    name = args.task or registry.DEFAULT_TASK
    with tempfile.TemporaryDirectory(dir=clients[0].folder.parent) as tmp:
        try:
            task = get_task(name, args.model)
            source = Path(args.data) if args.data else None
            result = write_partitions(plan, source, Path(tmp), task)
        except (ModelsError, ValueError) as exc:
            raise ConfigError(f"init --task {name}: {exc}") from None
        for client, path in zip(clients, result.client_paths, strict=True):
            _move(path, client.folder / "data" / "train.npz")
        if org is not None:
            _move(result.test_path, org.folder / "data" / "test.npz")


def _move(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(src, dst)
