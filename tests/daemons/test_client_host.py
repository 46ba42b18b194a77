"""The client host's config, its batching of the clients' training, the testnet's grouping."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from daemons.client import host_train
from daemons.client.host_config import load_host_config
from daemons.client.host_storage import SharedStorage
from daemons.client.host_train import BatchTrainer
from daemons.errors import ConfigError
from daemons.testnet.hosts import host_config, host_groups
from daemons.testnet.spec import NetSpec, clients_per_host, validate

ADDR = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OTHER = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"


def _client(tmp: Path, i: int, contract: str = ADDR, key_env: str = "") -> Path:
    path = tmp / f"client-{i}.toml"
    path.write_text(
        f'[chain]\ncontract = "{contract}"\n'
        f'[identity]\nprivate_key_env = "{key_env or f"KEY_{i}"}"\n'
        f'[service]\nstate_dir = "state-{i}"\n[data]\npath = "c{i}.npz"\n'
    )
    return path


def _host(tmp: Path, clients: list[Path], extra: str = "", training: str = "auto") -> Path:
    path = tmp / "host.toml"
    path.write_text(host_config(clients, Path("host-state"), 0, training) + extra)
    return path


def test_host_config_loads_every_client(tmp_path: Path) -> None:
    host = load_host_config(_host(tmp_path, [_client(tmp_path, i) for i in range(3)]))
    assert [c.identity.private_key_env for c in host.clients] == ["KEY_0", "KEY_1", "KEY_2"]
    assert host.state_dir == str(tmp_path / "host-state")
    assert host.gather_s == 60.0
    assert host.training == "auto"
    assert host_train.resolve_mode("auto") == "loop"  # these tests run on a CPU
    host = load_host_config(_host(tmp_path, [_client(tmp_path, 0)], training="vmap"))
    assert host.training == "vmap"


def test_host_config_refuses_an_unknown_training_mode(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"host\.training must be one of auto, vmap, loop"):
        load_host_config(_host(tmp_path, [_client(tmp_path, 0)], training="batch"))
    with pytest.raises(ValueError, match="auto, loop or vmap"):
        BatchTrainer(mode="batch")


@pytest.mark.parametrize(
    ("second", "needle"),
    [
        ({"contract": OTHER}, "chain.contract"),
        ({"key_env": "KEY_0"}, "share identity"),
    ],
)
def test_host_config_refuses_clients_that_cannot_share(
    tmp_path: Path, second: dict, needle: str
) -> None:
    clients = [_client(tmp_path, 0), _client(tmp_path, 1, **second)]
    with pytest.raises(ConfigError, match=needle):
        load_host_config(_host(tmp_path, clients))


def test_host_config_refuses_a_shared_state_dir_and_unknown_keys(tmp_path: Path) -> None:
    a, b = _client(tmp_path, 0), _client(tmp_path, 1)
    b.write_text(b.read_text().replace("state-1", "state-0"))
    with pytest.raises(ConfigError, match=r"share service\.state_dir"):
        load_host_config(_host(tmp_path, [a, b]))
    with pytest.raises(ConfigError, match="unknown \\[host\\] keys"):
        load_host_config(_host(tmp_path, [a], "gather = 3\n"))
    (tmp_path / "empty.toml").write_text('[host]\nclients = []\nstate_dir = "s"\n')
    with pytest.raises(ConfigError, match="non-empty list"):
        load_host_config(tmp_path / "empty.toml")


def _fake_train(
    calls, done=None, mode="loop"
):  # stands in for the JAX training: one blob per call, named
    out = [f"blob-{call[0]}".encode() for call in calls]
    for i, blob in enumerate(out):
        done(i, blob)
    return out


async def test_batch_waits_for_every_client_of_the_dispatch(monkeypatch) -> None:
    monkeypatch.setattr(host_train, "train_updates", _fake_train)
    trainer = BatchTrainer(gather_s=30)
    trainer.begin(3)
    a = asyncio.create_task(trainer.train("a"))
    await asyncio.sleep(0.01)
    assert trainer.batches == 0  # one of three asked: wait
    trainer.finished()  # a client with nothing to train (e.g. already submitted)
    b = asyncio.create_task(trainer.train("b"))
    assert await asyncio.gather(a, b) == [b"blob-a", b"blob-b"]
    assert (trainer.batches, trainer.last_batch_size) == (1, 2)


async def test_batch_goes_without_a_late_client_after_gather_s(monkeypatch, caplog) -> None:
    monkeypatch.setattr(host_train, "train_updates", _fake_train)
    trainer = BatchTrainer(gather_s=0.05)
    trainer.begin(2)
    with caplog.at_level(logging.WARNING, "fedchain"):
        assert await asyncio.wait_for(trainer.train("a"), 5) == b"blob-a"
    assert "after waiting 0.05 s" in caplog.text
    trainer.finished()
    assert await asyncio.wait_for(trainer.train("late"), 5) == b"blob-late"  # its own batch
    assert trainer.batches == 2


async def test_a_failed_client_fails_only_itself(monkeypatch) -> None:
    def train(calls, done, mode):
        out = [ValueError("bad") if c[0] == "x" else b"ok" for c in calls]
        for i, result in enumerate(out):
            done(i, result)
        return out

    monkeypatch.setattr(host_train, "train_updates", train)
    trainer = BatchTrainer()
    trainer.begin(2)
    good, bad = trainer.train("a"), trainer.train("x")
    results = await asyncio.gather(good, bad, return_exceptions=True)
    assert results[0] == b"ok" and isinstance(results[1], ValueError)


def test_testnet_groups_clients_into_hosts(tmp_path: Path) -> None:
    assert host_groups(10, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert clients_per_host(4, 0) == 0  # the demo: one daemon per client
    assert clients_per_host(100, 0) == 50 and len(host_groups(100, 50)) == 2
    assert validate(NetSpec(run_dir=tmp_path, clients=100)).clients == 100
    with pytest.raises(ConfigError, match="--clients=1001"):
        validate(NetSpec(run_dir=tmp_path, clients=1001))
    with pytest.raises(ConfigError, match="--clients-per-host"):
        validate(NetSpec(run_dir=tmp_path, clients=8, clients_per_host=-1))


async def test_shared_storage_fetches_a_blob_once_for_all_clients() -> None:
    class SlowStorage:
        def __init__(self) -> None:
            self.gets = 0
            self.node_id = "node"

        async def get(self, cid, digest, max_bytes, timeout_s, source=None):
            self.gets += 1
            await asyncio.sleep(0.05)
            return f"data-{cid}".encode()

    inner = SlowStorage()
    shared = SharedStorage(inner, keep=1)
    got = await asyncio.gather(*(shared.get("a", b"d", 10, 1) for _ in range(50)))
    assert got == [b"data-a"] * 50 and inner.gets == 1
    assert await shared.get("a", b"d", 10, 1) == b"data-a" and inner.gets == 1  # kept
    await shared.get("b", b"d", 10, 1)
    await shared.get("a", b"d", 10, 1)  # `keep=1`: "a" was dropped for "b"
    assert inner.gets == 3 and shared.node_id == "node"


def test_testnet_writes_host_configs_that_load(tmp_path: Path) -> None:
    from daemons.testnet.configgen import Endpoints
    from daemons.testnet.supervisor import Supervisor

    sup = Supervisor(NetSpec(run_dir=tmp_path, clients=5, clients_per_host=2))
    assert sup.groups == [[0, 1], [2, 3], [4]] and sup._client_nodes() == 3
    sup.run.create()
    ep = Endpoints("http://127.0.0.1:1", "ws://127.0.0.1:1", ADDR)
    apis = [f"http://127.0.0.1:{5000 + i}" for i in range(4)]
    data = tuple(tmp_path / f"c{i}.npz" for i in range(5))
    children = sup._hosts(ep, apis, data, {f"host-{h}": 7000 + h for h in range(3)})  # not started
    assert [c.name for c in children] == ["host-0", "host-1", "host-2"]
    host = load_host_config(sup.run.configs / "host-1.toml")
    assert [c.ipfs.api_url for c in host.clients] == [apis[2]] * 2  # the host's own node
    assert [c.identity.private_key_env for c in host.clients] == [
        "FEDCHAIN_PRIVATE_KEY_2",
        "FEDCHAIN_PRIVATE_KEY_3",
    ]
    env = children[1].env
    assert env["FEDCHAIN_PRIVATE_KEY_2"] == sup.client_keys[2] and "FEDCHAIN_PRIVATE_KEY" not in env
    assert host.health_port == 7001


def test_hosted_members_each_get_their_own_model_key_variable(tmp_path: Path) -> None:
    from nacl.public import PrivateKey

    from daemons.testnet.configgen import Endpoints
    from daemons.testnet.supervisor import Supervisor

    spec = NetSpec(run_dir=tmp_path, clients=3, clients_per_host=2, models="members")
    sup = Supervisor(spec)
    sup.run.create()
    sup.member_keys = [PrivateKey.generate() for _ in range(3)]  # as _launch_org sets them
    ep = Endpoints("http://127.0.0.1:1", "ws://127.0.0.1:1", ADDR)
    apis = [f"http://127.0.0.1:{5000 + i}" for i in range(3)]
    data = tuple(tmp_path / f"c{i}.npz" for i in range(3))
    children = sup._hosts(ep, apis, data, {"host-0": 7000, "host-1": 7001})
    host = load_host_config(sup.run.configs / "host-0.toml")
    names = [c.encryption.key_env for c in host.clients]
    assert names == ["FEDCHAIN_ENCRYPTION_KEY_0", "FEDCHAIN_ENCRYPTION_KEY_1"]
    assert all(c.encryption.models == "members" for c in host.clients)
    env = children[0].env
    assert [env[n] for n in names] == [bytes(k).hex() for k in sup.member_keys[:2]]
    assert "FEDCHAIN_ENCRYPTION_KEY_2" in children[1].env and "FEDCHAIN_ENCRYPTION_KEY" not in env


def test_loop_mode_encodes_each_update_while_the_next_client_trains(monkeypatch) -> None:
    """On a CPU the host trains one client after another; client i's Fisher pass and encoding
    run while client i+1 trains, each update is handed back (put, submit, the org's fetch) as
    soon as it is encoded, in client order, and train_s adds up to the batch's training."""
    import threading
    import time
    from types import SimpleNamespace

    events: list[str] = []
    b_trains = threading.Event()

    def prepare(base, config, data, client, previous, task):
        job = SimpleNamespace(params=client, data=data, config=None, penalty=None)
        return SimpleNamespace(model="one model", job=job)

    def local_train(model, params, data, config, penalty):
        events.append(f"train {params}")
        if params == "b":
            b_trains.set()
        time.sleep(0.02)
        return params, "metrics"

    monkeypatch.setattr(host_train, "prepare_training", prepare)
    monkeypatch.setattr(host_train, "local_train", local_train)
    monkeypatch.setattr(host_train, "privatized", lambda prep, trained: trained)
    spent: dict[str, float] = {}

    def encode(prep, cid, trained, metrics, train_s):
        # a's encoding waits for b's training to start: one after the other, it never would
        if trained == "a" and not b_trains.wait(10):
            raise AssertionError("client a was encoded before client b started training")
        spent[trained] = train_s
        return f"blob-{trained}".encode()

    monkeypatch.setattr(host_train, "encode_update", encode)
    calls = [("base", "cid", "config", "data", name, None, None) for name in "abc"]
    out = host_train.train_updates(calls, lambda i, r: events.append(f"done {i}"), "loop")
    assert out == [b"blob-a", b"blob-b", b"blob-c"]
    assert [e for e in events if e.startswith("train")] == ["train a", "train b", "train c"]
    assert [e for e in events if e.startswith("done")] == ["done 0", "done 1", "done 2"]
    assert events.index("train b") < events.index("done 0")
    assert 0.02 <= spent["a"] < spent["b"] < spent["c"] < 0.5
