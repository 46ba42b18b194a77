"""One `fedchain client-host` running 5 clients against a real org, anvil and IPFS node.

Two rounds with every client's update, trained in one vmapped batch per round; then a
`kill -9` of the host right after a client's submit was broadcast, and a restart that
resumes every client: each account sends exactly one transaction per round.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.harness import Daemon, Federation, messages

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
CLIENTS = 5


def _host(fed: Federation) -> Daemon:
    """A host config over the federation's client configs, each given its own key variable."""
    env = {}
    for i, client in enumerate(fed.clients):
        var = f"FEDCHAIN_TEST_KEY_{i}"
        with client.config.open("a") as f:
            f.write(f'[identity]\nprivate_key_env = "{var}"\n')
        env[var] = client.key
    files = ", ".join(f'"{c.config.name}"' for c in fed.clients)
    path = fed.tmp / "host.toml"
    path.write_text(f'[host]\nclients = [{files}]\nstate_dir = "host-state"\ngather_s = 60\n')
    host = Daemon("host", "client-host", path, "", fed.tmp / "host.log", env=env)
    fed.clients = [host]  # torn down (and its log printed) with the federation
    return host


async def _nonces(fed: Federation) -> list[int]:
    assert fed.w3 is not None
    accounts = fed.accounts[1 : 1 + CLIENTS]
    return [int(await fed.w3.eth.get_transaction_count(a.address)) for a in accounts]


def _batches(host: Daemon) -> list[int]:
    return [
        int(r["clients"]) for r in host.records() if r.get("msg") == "training a batch of clients"
    ]


async def test_host_runs_clients_in_batches_and_survives_kill9(
    tmp_path: Path, fed_data: dict[str, Path]
) -> None:
    fed = Federation(tmp_path, fed_data, num_clients=CLIENTS, rounds=3, max_updates=CLIENTS)
    async with fed:
        host = _host(fed)
        assert fed.org is not None
        fed.org.start()
        host.start(FEDCHAIN_CRASH_AT="after_submit_sent:2")
        for r in (1, 2):
            if r == 2:  # the host SIGKILLs itself once a round-2 submit is broadcast
                await fed.wait_for("host killed", lambda: _dead(host), 120)
                host.start()
            info = await fed.wait_settled(r, timeout_s=150)
            assert info.num_updates == CLIENTS, f"round {r}: {info.num_updates} updates"
        info = await fed.wait_settled(3, timeout_s=150)
        assert info.num_updates == CLIENTS
        # one submit per client per round: no transaction sent twice across the crash
        assert await _nonces(fed) == [3] * CLIENTS
        assert "FEDCHAIN_CRASH_AT reached: SIGKILL" in messages(host)
        sizes = _batches(host)
        assert sizes[0] == CLIENTS  # round 1: all five in one vmapped call
        assert sizes[-1] == CLIENTS  # round 3 after the restart likewise
        assert host.terminate() == 0


async def _dead(host: Daemon) -> bool:
    return not host.running()
