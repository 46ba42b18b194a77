"""The daemon's HTTP endpoint: `/healthz` (JSON) and Prometheus `/metrics` over aiohttp."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from daemons.errors import ConfigError
from daemons.runtime.metrics import Metrics

HealthFn = Callable[[], dict[str, Any]]


def make_app(metrics: Metrics, health: HealthFn) -> web.Application:
    """An aiohttp app serving `/healthz` from `health()` and `/metrics` from `metrics`."""
    started = time.monotonic()

    async def healthz(_: web.Request) -> web.Response:
        doc = {"status": "ok", "role": metrics.role, "uptime_s": time.monotonic() - started}
        doc.update(health())
        return web.json_response(doc, status=200 if doc["status"] == "ok" else 503)

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    return app


async def serve_forever(
    metrics: Metrics,
    health: HealthFn,
    host: str,
    port: int,
    on_bound: Callable[[int], None],
    config_path: str = "the config",
) -> None:
    """Serve until cancelled; `on_bound(port)` reports the bound port (useful with port 0).

    A port that cannot be bound is a ConfigError naming `config_path`, the file that set it (a
    daemon's `[service]` or a client host's `[host]` table)."""
    runner = web.AppRunner(make_app(metrics, health), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as e:
            raise ConfigError(
                f"{config_path}: health endpoint {host}:{port} cannot be bound ({e.strerror}): "
                "set its health_port to a free port, or 0 for no endpoint"
            ) from e
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        on_bound(sockets[0].getsockname()[1] if sockets else port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
