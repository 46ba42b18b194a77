"""models/ stays pure: no asyncio, web3, aiohttp or aioipfs, directly or transitively."""

import ast
import subprocess
import sys
from pathlib import Path

import models

FORBIDDEN = ("asyncio", "web3", "aiohttp", "aioipfs")
MODELS_DIR = Path(models.__file__).parent


def _module_names() -> list[str]:
    root = MODELS_DIR.parent
    return sorted(
        ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for p in MODELS_DIR.rglob("*.py")
    )


def test_no_forbidden_import_statement() -> None:
    offenders = []
    for path in MODELS_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_importing_every_module_loads_none_of_them() -> None:
    # JAX itself imports asyncio when etils is installed (flax pulls it in: jax._src.path
    # prefers etils.epath, which loads unittest -> asyncio); what models/ must not add is
    # any forbidden module beyond what its third-party imports already load.
    modules = _module_names()
    assert "models.training" in modules
    code = (
        "import importlib, sys\n"
        "import jax, numpy, optax, ml_dtypes\n"
        f"before = {{m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}}}\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}"
        " and m not in before))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
