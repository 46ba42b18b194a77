"""Load the compiled FederatedRounds artifact (ABI + bytecode) committed next to the source."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CONTRACTS_DIR = Path(__file__).resolve().parent
ARTIFACT_PATH = CONTRACTS_DIR / "FederatedRounds.json"
SOURCE_PATH = CONTRACTS_DIR / "FederatedRounds.sol"


@dataclass(frozen=True)
class Artifact:
    """The compiler output the binding needs; written by `make contracts`."""

    contract_name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: str
    deployed_bytecode: str
    compiler: str
    evm_version: str
    source_sha256: str

    def entries(self, kind: str) -> list[dict[str, Any]]:
        """ABI entries of one type ("function", "event", "error")."""
        return [e for e in self.abi if e.get("type") == kind]


def artifact_from_json(data: dict[str, Any]) -> Artifact:
    """Build an Artifact from the JSON object written by scripts/compile_contract.mjs."""
    return Artifact(
        contract_name=data["contractName"],
        abi=tuple(data["abi"]),
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        compiler=data["compiler"],
        evm_version=data["evmVersion"],
        source_sha256=data["sourceSha256"],
    )


@cache
def load_artifact(path: Path = ARTIFACT_PATH) -> Artifact:
    """Read the committed artifact; run `make contracts` if it is missing."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"contract artifact {path} is missing: run `make contracts` to compile it"
        ) from exc
    return artifact_from_json(data)
