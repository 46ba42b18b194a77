"""The daemons' web3 connection: one pooled HTTP connection, not one per request."""

from __future__ import annotations

from aiohttp import web
from web3 import AsyncHTTPProvider, AsyncWeb3

from daemons.runtime.wiring import keep_alive
from daemons.testnet.nodes.anvil import free_port


async def _rpc_server(peers: list[int]) -> tuple[web.AppRunner, str]:
    """A JSON-RPC endpoint answering eth_chainId; records each request's client port."""

    async def handle(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        body = await request.json()
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": "0x7a69"})

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def test_requests_share_one_connection() -> None:
    peers: list[int] = []
    runner, url = await _rpc_server(peers)
    try:
        plain = AsyncWeb3(AsyncHTTPProvider(url))
        for _ in range(3):
            assert await plain.eth.chain_id == 31337
        assert len(set(peers)) == 3  # web3's own session: a new connection per request
        await plain.provider.disconnect()
        peers.clear()
        pooled = AsyncWeb3(AsyncHTTPProvider(url))
        session = await keep_alive(pooled)
        try:
            for _ in range(5):
                assert await pooled.eth.chain_id == 31337
        finally:
            await session.close()
        assert len(peers) == 5 and len(set(peers)) == 1
    finally:
        await runner.cleanup()
