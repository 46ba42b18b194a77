"""free_port: outside the kernel's ephemeral range, so no outgoing connection takes it.
A health port that is taken anyway is a config error that names the key."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from daemons.errors import ConfigError
from daemons.runtime.http import serve_forever
from daemons.runtime.metrics import Metrics
from daemons.runtime.ports import LINUX_DEFAULT_RANGE, ephemeral_range, free_port


def test_ports_come_from_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    ports = {free_port() for _ in range(50)}
    assert all(not low <= p <= high for p in ports), sorted(ports)
    assert len(ports) > 40  # picked at random: two testnets side by side do not collide


def test_a_port_is_bindable_and_an_outgoing_connection_never_holds_it() -> None:
    port = free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        # outgoing connections take local ports from the ephemeral range only
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        try:
            low, high = ephemeral_range()
            assert all(low <= c.getsockname()[1] <= high for c in clients)
        finally:
            for c in clients:
                c.close()


def test_a_listening_port_is_never_handed_out(tmp_path: Path) -> None:
    spec = tmp_path / "range"
    spec.write_text("10001\t65535\n")  # leaves one port outside the range: 10000
    with socket.socket() as held:
        held.bind(("127.0.0.1", 10000))
        held.listen()
        port = free_port(spec)
    # 10000 listens: the fallback, a kernel-chosen port, not the held one
    assert port != 10000 and 10001 <= port <= 65535


def test_an_unreadable_range_means_linux_default(tmp_path: Path) -> None:
    assert ephemeral_range(tmp_path / "missing") == LINUX_DEFAULT_RANGE
    bad = tmp_path / "bad"
    bad.write_text("not numbers\n")
    assert ephemeral_range(bad) == LINUX_DEFAULT_RANGE
    lowered = tmp_path / "lowered"
    lowered.write_text("20000\t30000\n")
    port = free_port(lowered)
    assert 10000 <= port < 20000 or 30000 < port <= 65535


async def test_a_taken_health_port_is_a_config_error_that_names_the_key() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"^client.toml: .*127.0.0.1:{port} .*health_port"):
            await serve_forever(
                Metrics("client"), dict, "127.0.0.1", port, lambda _: None, "client.toml"
            )
