"""The EVM target check: a contract compiled for shanghai (PUSH0) on a node with older rules.

A deployment that fails there fails with "invalid opcode" and nothing else to go on; a
daemon that then exits 1 is restarted forever. Probing the node with PUSH0 tells the cause,
so the org can exit 2 with what to do.
"""

from __future__ import annotations

from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError, Web3RPCError

from contracts.artifact import Artifact
from contracts.errors import ContractError


class EvmTargetMismatch(ContractError):
    """The node's chain rules predate the EVM target the contract was compiled for."""


# PUSH0 PUSH0 RETURN as init code: returns empty code on Shanghai and later, and fails
# with an invalid opcode on an older chain (PUSH0, EIP-3855, came with Shanghai)
PUSH0_PROBE = "0x5f5ff3"


async def lacks_push0(w3: AsyncWeb3) -> bool:
    """Whether the node's EVM rejects PUSH0 (its hardfork is older than Shanghai)."""
    try:
        await w3.eth.call({"data": PUSH0_PROBE})  # type: ignore[typeddict-item]
    except (ContractLogicError, Web3RPCError):
        return True
    return False


async def target_mismatch(w3: AsyncWeb3, artifact: Artifact) -> EvmTargetMismatch | None:
    """The error to raise if a failed deployment is the node lacking the EVM target."""
    if not await lacks_push0(w3):
        return None
    url = getattr(w3.provider, "endpoint_uri", "the node")
    return EvmTargetMismatch(
        f"the node at {url} cannot run FederatedRounds: it was compiled for EVM target "
        f"{artifact.evm_version!r}, which uses PUSH0 (Shanghai and later), and the node's "
        "chain rules are older (PUSH0 is an invalid opcode there). Run the node with the "
        "Shanghai rules or later (anvil --hardfork shanghai, ganache --chain.hardfork "
        "shanghai), or recompile for an older target: `node scripts/compile_contract.mjs "
        "--evm-version paris` (rewrites contracts/FederatedRounds.json)"
    )
