"""Async web3 binding for FederatedRounds: deploy, typed views, transactions, named reverts."""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import AsyncWeb3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError, Web3RPCError
from web3.types import BlockIdentifier, TxReceipt

from contracts.artifact import Artifact, load_artifact
from contracts.errors import (
    ContractError,
    ContractGone,
    ContractRevert,
    UnknownRevert,
    revert_data,
    revert_from_data,
)
from contracts.evm_target import EvmTargetMismatch, target_mismatch
from contracts.state import RoundInfo, UpdateInfo

RECEIPT_TIMEOUT_S = 120.0
GAS_MARGIN = 1.2  # estimates are exact for the state at estimation; leave room for drift


class BadArgument(ContractError, ValueError):
    """A Python-side argument cannot be sent (e.g. a digest that is not 32 bytes)."""


class TxFailed(ContractError):
    """A mined transaction failed and replaying it did not reproduce a revert."""


def as_digest(value: bytes, name: str = "digest") -> bytes:
    """Check that `value` is a 32-byte sha256 digest (raw bytes, not hex)."""
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise BadArgument(f"{name} must be 32 raw bytes (sha256), got {value!r:.80}")
    return bytes(value)


async def _reverts(awaitable: Any) -> Any:
    """Await a web3 call; turn revert data into the named ContractRevert subclass.

    Nodes differ in where the data is: web3 raises `ContractLogicError` with anvil's hex
    string, or with ganache's nested object; an error web3 does not recognise as a revert
    (`Web3RPCError`) is one too if its message says so and its data holds revert data.
    """
    try:
        return await awaitable
    except ContractLogicError as exc:
        data = revert_data(exc.data)
        if data is None:
            data = revert_data([a for a in exc.args if not isinstance(a, str)])
        raise revert_from_data(data) from exc
    except Web3RPCError as exc:
        error: Any = (exc.rpc_response or {}).get("error") or {}
        data = revert_data(error.get("data")) if isinstance(error, dict) else None
        if data is None or "revert" not in str(exc).lower():
            raise
        raise revert_from_data(data) from exc


class FederatedRounds:
    """A deployed FederatedRounds contract, reached through an AsyncWeb3 connection."""

    def __init__(self, w3: AsyncWeb3, address: str, artifact: Artifact | None = None) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.artifact = artifact or load_artifact()
        self.contract = w3.eth.contract(address=self.address, abi=list(self.artifact.abi))
        self._chain_id: int | None = None

    @classmethod
    async def deploy(cls, w3: AsyncWeb3, account: LocalAccount) -> FederatedRounds:
        """Deploy a fresh contract with `account` as its org; wait for the receipt."""
        artifact = load_artifact()
        tx = await _base_tx(w3, account.address, None)
        tx["data"] = artifact.bytecode
        try:
            tx["gas"] = int(await w3.eth.estimate_gas(tx) * GAS_MARGIN)  # type: ignore[arg-type]
        except (ContractLogicError, Web3RPCError) as exc:
            mismatch = await target_mismatch(w3, artifact)
            if mismatch is not None:
                raise mismatch from exc
            raise
        signed = account.sign_transaction(tx)
        tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)
        if receipt["status"] != 1 or not receipt["contractAddress"]:
            mismatch = await target_mismatch(w3, artifact)
            if mismatch is not None:
                raise mismatch
            raise TxFailed(f"deploying FederatedRounds failed: tx {tx_hash.to_0x_hex()}")
        return cls(w3, receipt["contractAddress"], artifact)

    # ----- views -----

    async def call(self, fn_name: str, *args: Any, block: BlockIdentifier = "latest") -> Any:
        """Call a view; reverts raise the named ContractRevert subclass, and an address
        without code (a chain reset under a running daemon) raises ContractGone."""
        fn = self.contract.functions[fn_name](*args)
        try:
            return await _reverts(fn.call(block_identifier=block))
        except BadFunctionCallOutput:
            if await self.w3.eth.get_code(self.address, block_identifier=block):
                raise
            url = getattr(self.w3.provider, "endpoint_uri", "the node")
            raise ContractGone(
                f"contract {self.address} has no code on the node at {url} (at block "
                f"{block!r}): the chain was reset; if intended, remove the daemon's state dir"
            ) from None

    async def org(self) -> str:
        return str(await self.call("org"))

    async def pending_org(self) -> str:
        return str(await self.call("pendingOrg"))

    async def paused(self) -> bool:
        return bool(await self.call("paused"))

    async def current_round_id(self) -> int:
        return int(await self.call("currentRoundId"))

    async def get_round(self, round_id: int) -> RoundInfo:
        """The stored round; raises UnknownRound for ids never opened."""
        return RoundInfo.from_tuple(round_id, await self.call("getRound", round_id))

    async def is_client(self, address: str) -> bool:
        return bool(await self.call("isClient", to_checksum_address(address)))

    async def has_submitted(self, round_id: int, client: str) -> bool:
        return bool(await self.call("hasSubmitted", round_id, to_checksum_address(client)))

    async def get_update(self, round_id: int, client: str) -> UpdateInfo:
        values = await self.call("getUpdate", round_id, to_checksum_address(client))
        return UpdateInfo.from_tuple(values)

    async def max_duration(self) -> int:
        return int(await self.call("MAX_DURATION"))

    async def max_cid_length(self) -> int:
        return int(await self.call("MAX_CID_LENGTH"))

    # ----- transactions -----

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(await self.w3.eth.chain_id)
        return self._chain_id

    async def build_transaction(
        self,
        fn_name: str,
        args: list[Any] | tuple[Any, ...],
        sender: str,
        nonce: int | None = None,
        gas: int | None = None,
    ) -> dict[str, Any]:
        """An unsigned EIP-1559 tx (gas estimated unless given); estimation reverts are raised."""
        call = {"from": to_checksum_address(sender), "to": self.address, "value": 0}
        call["data"] = self.contract.encode_abi(fn_name, args=list(args))
        if gas is None:  # estimate first: a call that reverts fails after one round trip
            estimate = await _reverts(self.w3.eth.estimate_gas(call))  # type: ignore[arg-type]
            gas = int(estimate * GAS_MARGIN)
        tx = await _base_tx(self.w3, sender, nonce, await self.chain_id())
        return {**tx, **call, "gas": gas}

    async def transact(
        self, account: LocalAccount, fn_name: str, *args: Any, gas: int | None = None
    ) -> TxReceipt:
        """Build, sign, send and wait; a revert (estimated or mined) raises ContractRevert."""
        tx = await self.build_transaction(fn_name, args, account.address, gas=gas)
        signed = account.sign_transaction(tx)
        tx_hash = await self.w3.eth.send_raw_transaction(signed.raw_transaction)
        return await self.wait_for_receipt(tx_hash.to_0x_hex())

    async def wait_for_receipt(
        self, tx_hash: str, timeout_s: float = RECEIPT_TIMEOUT_S
    ) -> TxReceipt:
        """Wait until mined; a failed tx raises the ContractRevert its replay reports."""
        receipt = await self.w3.eth.wait_for_transaction_receipt(
            tx_hash,  # type: ignore[arg-type]
            timeout=timeout_s,
        )
        await self.check_receipt(receipt)
        return receipt

    async def check_receipt(self, receipt: TxReceipt) -> None:
        """Raise the named revert of a status-0 receipt by replaying it with eth_call.

        The replay runs on the state at the end of the tx's own block: its failed effects are
        nil, and with automine (one tx per block) that state is the one it saw.
        """
        if receipt["status"] == 1:
            return
        tx = await self.w3.eth.get_transaction(receipt["transactionHash"])
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
        try:
            await _reverts(self.w3.eth.call(call, block_identifier=receipt["blockNumber"]))  # type: ignore[arg-type]
        except ContractRevert:
            raise
        tx_hex = receipt["transactionHash"].to_0x_hex()
        raise TxFailed(f"tx {tx_hex} failed but its replay did not revert (state moved on)")

    # ----- typed helpers (each returns the receipt) -----

    async def add_client(self, account: LocalAccount, client: str) -> TxReceipt:
        return await self.transact(account, "addClient", to_checksum_address(client))

    async def add_clients(self, account: LocalAccount, clients: list[str]) -> TxReceipt:
        checked = [to_checksum_address(c) for c in clients]
        return await self.transact(account, "addClients", checked)

    async def remove_client(self, account: LocalAccount, client: str) -> TxReceipt:
        return await self.transact(account, "removeClient", to_checksum_address(client))

    async def open_round(
        self,
        account: LocalAccount,
        base_cid: str,
        base_digest: bytes,
        deadline: int,
        min_updates: int,
        max_updates: int,
        config_cid: str,
    ) -> TxReceipt:
        digest = as_digest(base_digest, "base_digest")
        args = (base_cid, digest, deadline, min_updates, max_updates, config_cid)
        return await self.transact(account, "openRound", *args)

    async def submit_update(
        self,
        account: LocalAccount,
        round_id: int,
        update_cid: str,
        digest: bytes,
        num_samples: int,
    ) -> TxReceipt:
        args = (round_id, update_cid, as_digest(digest), num_samples)
        return await self.transact(account, "submitUpdate", *args)

    async def close_round(
        self,
        account: LocalAccount,
        round_id: int,
        model_cid: str,
        model_digest: bytes,
        manifest_cid: str,
    ) -> TxReceipt:
        args = (round_id, model_cid, as_digest(model_digest, "model_digest"), manifest_cid)
        return await self.transact(account, "closeRound", *args)

    async def fail_round(self, account: LocalAccount, round_id: int) -> TxReceipt:
        return await self.transact(account, "failRound", round_id)

    async def pause(self, account: LocalAccount) -> TxReceipt:
        return await self.transact(account, "pause")

    async def unpause(self, account: LocalAccount) -> TxReceipt:
        return await self.transact(account, "unpause")

    async def transfer_org(self, account: LocalAccount, new_org: str) -> TxReceipt:
        return await self.transact(account, "transferOrg", to_checksum_address(new_org))

    async def accept_org(self, account: LocalAccount) -> TxReceipt:
        return await self.transact(account, "acceptOrg")


async def _base_tx(
    w3: AsyncWeb3, sender: str, nonce: int | None, chain_id: int | None = None
) -> dict[str, Any]:
    """Sender, nonce, chain id and EIP-1559 fees (max fee = 2 x base fee + tip)."""
    sender = to_checksum_address(sender)
    if nonce is None:
        nonce = await w3.eth.get_transaction_count(sender, "pending")
    block = await w3.eth.get_block("latest")
    tip = await w3.eth.max_priority_fee
    return {
        "type": 2,
        "from": sender,
        "nonce": nonce,
        "chainId": chain_id if chain_id is not None else await w3.eth.chain_id,
        "value": 0,
        "maxPriorityFeePerGas": tip,
        "maxFeePerGas": 2 * int(block.get("baseFeePerGas", 0)) + tip,
    }


__all__ = [
    "BadArgument",
    "EvmTargetMismatch",
    "FederatedRounds",
    "TxFailed",
    "UnknownRevert",
    "as_digest",
]
