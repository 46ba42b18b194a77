"""What starts before any work must not import JAX (~1.3 s here) or web3 it does not use.

The `fedchain` CLI, `testnet up`'s own process and the testnet supervisor sit on the path to
the first RoundOpened (issue #16); the daemons' error roots are imported by every module.
"""

import ast
import subprocess
import sys

import pytest

HEAVY = ("jax", "web3", "matplotlib")


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("daemons.errors", ()),
        ("models.errors", ()),
        ("daemons.cli.main", ()),
        ("daemons.testnet.run", ()),
        ("daemons.testnet.report", ()),  # matplotlib: in the plot workers, when they draw
        ("daemons.testnet.plots", ()),
        ("daemons.runtime.config", ()),
        ("daemons.testnet.supervisor", ()),  # web3 etc. only once the forkserver runs
        ("daemons.testnet.partition", ()),
        ("models.tasks.fashion_mnist_data", ()),
    ],
)
def test_module_imports_nothing_heavy(module: str, allowed: tuple[str, ...]) -> None:
    code = f"import sys, {module}; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = [m for m in ast.literal_eval(out.stdout) if m not in allowed]
    assert loaded == [], f"importing {module} loads {loaded}"


def test_splitting_a_built_in_tasks_data_loads_no_jax(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # the testnet supervisor splits the data while the org waits for its file (issue #16)
    code = (
        "import sys; from pathlib import Path; "
        "from daemons.testnet.partition import PartitionPlan, task_data, write_partitions; "
        f"write_partitions(PartitionPlan('iid', 2, samples_per_client=50, test_samples=20), "
        f"None, Path({str(tmp_path)!r}), task_data('fashion_mnist', '2nn')); "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ast.literal_eval(out.stdout) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "client-0.npz",
        "client-1.npz",
        "org-test.npz",
    ]
