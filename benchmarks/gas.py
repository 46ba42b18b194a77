"""Gas used by each FederatedRounds function on a fresh anvil: `.venv/bin/python benchmarks/gas.py`.

Prints one line per call, the ratio of submitUpdate's gas to its 120,000 budget, and RESULT
lines; exits non-zero when submitUpdate with a 59-character CIDv1 goes over budget.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable

from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.types import TxReceipt

from contracts.binding import FederatedRounds
from daemons.testnet.nodes.anvil import Anvil

SUBMIT_BUDGET = 120_000
CID59 = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
CID128 = "b" * 128


def sha(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


async def measure(rpc_url: str, keys: tuple[str, ...]) -> dict[str, int]:
    """Run each function once (in an order where it succeeds) and record gasUsed."""
    w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
    org, c1, c2, c3, c4, outsider = (Account.from_key(k) for k in keys[:6])
    gas: dict[str, int] = {}
    try:
        contract = await FederatedRounds.deploy(w3, org)
        (deploy_hash,) = (await w3.eth.get_block("latest"))["transactions"]
        receipt = await w3.eth.get_transaction_receipt(deploy_hash)  # type: ignore[arg-type]
        gas["deploy"] = receipt["gasUsed"]

        async def rec(name: str, awaitable: Awaitable[TxReceipt]) -> None:
            gas[name] = (await awaitable)["gasUsed"]

        await rec("addClient", contract.add_client(org, c1.address))
        await rec("addClients(3)", contract.add_clients(org, [c2.address, c3.address, c4.address]))
        await rec("removeClient", contract.remove_client(org, c4.address))
        now = (await w3.eth.get_block("latest"))["timestamp"]
        args = (CID59, sha("base"), now + 600, 1, 3, CID59)
        await rec("openRound", contract.open_round(org, *args))
        await rec("submitUpdate(cid59, 1st)", contract.submit_update(c1, 1, CID59, sha("1"), 600))
        await rec("submitUpdate(cid59, 2nd)", contract.submit_update(c2, 1, CID59, sha("2"), 600))
        await rec("submitUpdate(cid128)", contract.submit_update(c3, 1, CID128, sha("3"), 600))
        await rec("closeRound", contract.close_round(org, 1, CID59, sha("m"), CID59))
        await contract.open_round(org, CID59, sha("m"), now + 700, 1, 3, CID59)
        await w3.provider.make_request("evm_increaseTime", [1000])
        await w3.provider.make_request("evm_mine", [])
        await rec("failRound", contract.fail_round(outsider, 2))
        await rec("pause", contract.pause(org))
        await rec("unpause", contract.unpause(org))
        await rec("transferOrg", contract.transfer_org(org, outsider.address))
        await rec("acceptOrg", contract.accept_org(outsider))
    finally:
        await w3.provider.disconnect()
    return gas


def main() -> int:
    with Anvil() as node:
        gas = asyncio.run(measure(node.rpc_url, node.dev_private_keys))
    for name, used in gas.items():
        print(f"{name:28s} {used:>9,d} gas")
    submit = gas["submitUpdate(cid59, 1st)"]
    print(f"submitUpdate / budget        {submit / SUBMIT_BUDGET:.3f} (budget {SUBMIT_BUDGET:,d})")
    print(f"RESULT submit_update_gas {submit} gas")
    print(f"RESULT open_round_gas {gas['openRound']} gas")
    print(f"RESULT close_round_gas {gas['closeRound']} gas")
    print(f"RESULT deploy_gas {gas['deploy']} gas")
    return 0 if submit < SUBMIT_BUDGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
