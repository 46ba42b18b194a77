"""The committed artifact must equal a fresh compile of the source with the pinned solc."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from contracts.artifact import ARTIFACT_PATH, SOURCE_PATH, load_artifact

REPO = Path(__file__).resolve().parents[2]


def _node() -> str:
    bundled = REPO / "node_modules" / ".bin" / "node"
    found = str(bundled) if bundled.exists() else shutil.which("node")
    if found is None:
        pytest.fail("node not found: run `make setup`")
    return found


@pytest.mark.timeout(120)
def test_committed_artifact_matches_a_fresh_compile(tmp_path: Path) -> None:
    out = tmp_path / "FederatedRounds.json"
    script = REPO / "scripts" / "compile_contract.mjs"
    done = subprocess.run(
        [_node(), str(script), str(out)], cwd=REPO, capture_output=True, text=True, timeout=100
    )
    assert done.returncode == 0, done.stderr
    fresh, committed = json.loads(out.read_text()), json.loads(ARTIFACT_PATH.read_text())
    hint = "contracts/FederatedRounds.json is stale: run `make contracts` and commit it"
    for key in ("abi", "bytecode", "deployedBytecode", "compiler", "evmVersion", "sourceSha256"):
        assert fresh[key] == committed[key], f"{key} differs; {hint}"


def test_artifact_describes_the_source() -> None:
    artifact = load_artifact()
    assert artifact.source_sha256 == hashlib.sha256(SOURCE_PATH.read_bytes()).hexdigest()
    assert artifact.evm_version == "shanghai"
    assert artifact.compiler.startswith("solc-js 0.8.30")
    assert artifact.bytecode.startswith("0x") and len(artifact.deployed_bytecode) > 1000
    names = {f["name"] for f in artifact.entries("function")}
    assert {"openRound", "submitUpdate", "closeRound", "failRound", "getRound"} <= names
