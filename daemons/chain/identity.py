"""Chain identity check at start: a reset chain stops the daemon instead of corrupting state.

A daemon's state directory (cursor, handled events, signed transactions) is only valid for
the chain it was built on. A restarted dev chain (anvil without `--state`) reuses the chain id
but gets a new genesis block, so the chain id and the hash of block 0 together identify it.
"""

from __future__ import annotations

from typing import Any

from web3 import AsyncWeb3

from daemons.chain.backoff import node_call
from daemons.chain.store import ChainIdentity, StateStore
from daemons.errors import ChainResetError, ConfigError


def provider_url(w3: AsyncWeb3[Any]) -> str:
    """The node URL a web3 instance talks to, for messages."""
    return str(getattr(w3.provider, "endpoint_uri", None) or w3.provider)


async def fetch_identity(w3: AsyncWeb3[Any]) -> ChainIdentity:
    """The chain id and genesis block hash the node reports."""
    url = provider_url(w3)
    chain_id = await node_call(url, lambda: w3.eth.chain_id)
    genesis = await node_call(url, lambda: w3.eth.get_block(0))
    return ChainIdentity(int(chain_id), _hex(genesis["hash"]))


def compare_identity(
    recorded: ChainIdentity, found: ChainIdentity, state_dir: str, url: str
) -> None:
    """Raise `ChainResetError` if the node is not the chain the state directory recorded."""
    if recorded == found:
        return
    raise ChainResetError(
        f"chain was reset: state dir {state_dir} recorded chain {recorded.chain_id} genesis "
        f"{recorded.genesis_hash}, the node at {url} has chain {found.chain_id} genesis "
        f"{found.genesis_hash}; if the chain was intentionally reset, remove {state_dir} "
        "(or point rpc_url at the original chain)"
    )


async def check_identity(
    w3: AsyncWeb3[Any], store: StateStore, contract: str | None = None
) -> ChainIdentity:
    """Record the identity on first start; afterwards refuse a different chain or contract."""
    url, state_dir = provider_url(w3), str(store.path.parent)
    found = await fetch_identity(w3)
    recorded = store.identity()
    if recorded is None:
        store.set_identity(found)
    else:
        compare_identity(recorded, found, state_dir, url)
    if contract is not None:
        await _check_contract(w3, store, contract, url, state_dir)
    return found


async def _check_contract(
    w3: AsyncWeb3[Any], store: StateStore, contract: str, url: str, state_dir: str
) -> None:
    """The recorded contract must be the one asked for, and still have code on the chain.

    No code at a contract this state dir recorded: the chain was reset under it (exit 3).
    No code at a contract never recorded here, or another contract than the recorded one:
    a configuration error (exit 2), nothing to do with a reset.
    """
    recorded = store.contract()
    if recorded is not None and recorded.lower() != contract.lower():
        raise ConfigError(
            f"state dir {state_dir} belongs to contract {recorded}, but {contract} was "
            f"given ([chain] contract); use another state dir for another contract, or "
            f"remove {state_dir}"
        )
    code = await node_call(url, lambda: w3.eth.get_code(AsyncWeb3.to_checksum_address(contract)))
    if not code and recorded is not None:
        raise ChainResetError(
            f"chain was reset: contract {contract}, recorded in {state_dir}, has no code on "
            f"the node at {url} any more; if the chain was intentionally reset, remove "
            f"{state_dir} (or point rpc_url at the original chain)"
        )
    if not code:
        raise ConfigError(
            f"[chain] contract {contract} has no code on the node at {url}: check the "
            "address (a typo, or a contract on another chain) and [chain] rpc_url"
        )
    if recorded is None:
        store.set_contract(AsyncWeb3.to_checksum_address(contract))


def _hex(value: Any) -> str:
    """HexBytes / bytes / str -> 0x-prefixed lowercase hex."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return "0x" + str(value).lower().removeprefix("0x")
