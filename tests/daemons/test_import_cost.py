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
        ("daemons.runtime.config", ()),
        ("daemons.testnet.supervisor", ()),  # web3 etc. only once the forkserver runs
    ],
)
def test_module_imports_nothing_heavy(module: str, allowed: tuple[str, ...]) -> None:
    code = f"import sys, {module}; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = [m for m in ast.literal_eval(out.stdout) if m not in allowed]
    assert loaded == [], f"importing {module} loads {loaded}"
