"""`fedchain verify` against real federations (anvil, the bundled IPFS node, real daemons).

An honest run (a stateful strategy, a forgetting-ledger set) verifies clean, bit for bit;
a deliberately dishonest org (tests/integration/dishonest_org.py) that publishes a model
that is not the aggregation, excludes an honest update as "norm", and opens a round on a
swapped base is caught, each lie named in the round it was told.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from models.data import load_dataset, permute_pixels, save_npz
from tests.integration.harness import REPO, Federation

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def run_verify(fed: Federation, *extra: str) -> tuple[int, str, str]:
    """The CLI as a user runs it; returns (exit code, stdout, stderr)."""
    assert fed.anvil is not None and fed.ipfs is not None and fed.contract is not None
    argv = [sys.executable, "-m", "daemons.cli", "verify", "--rpc", fed.anvil.rpc_url]
    argv += ["--contract", fed.contract.address, "--ipfs-api", fed.ipfs.api_url, *extra]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout, done.stderr


async def verify_json(fed: Federation, *extra: str) -> tuple[int, dict[str, Any]]:
    code, out, err = await asyncio.to_thread(run_verify, fed, "--json", *extra)
    assert out.strip(), f"verify printed nothing (exit {code}): {err}"
    return code, json.loads(out)


def checks(doc: dict[str, Any], round_id: int) -> dict[str, dict[str, str]]:
    """check name -> {status, detail} of one round."""
    [r] = [r for r in doc["rounds"] if r["round_id"] == round_id]
    return {c["name"]: c for c in r["checks"]}


def with_heldout(fed: Federation, name: str, path: Path) -> None:
    """Add a forgetting-ledger set to the org's [federation] table."""
    assert fed.org is not None
    text = fed.org.config.read_text()
    line = f'heldout_data = {{ "{name}" = "{path}" }}\n'
    fed.org.config.write_text(text.replace("[federation]\n", "[federation]\n" + line, 1))


async def test_an_honest_federation_verifies_bit_for_bit(
    tmp_path: Path, fed_data: dict[str, Path]
) -> None:
    old_task = tmp_path / "permuted.npz"
    save_npz(old_task, permute_pixels(load_dataset(fed_data["org"]), seed=5))
    options = {"exit_when_done": True, "strategy": "fedavgm"}
    async with Federation(tmp_path, fed_data, rounds=2, org_options=options) as fed:
        with_heldout(fed, "permuted", old_task)
        fed.start_all()
        for r in (1, 2):
            await fed.wait_settled(r, timeout_s=240)
        extra = ("--eval-data", str(fed_data["org"]), "--heldout", f"permuted={old_task}")
        code, doc = await verify_json(fed, *extra)
        assert code == 0 and doc["ok"], json.dumps(doc, indent=1)
        for r in (1, 2):
            got = checks(doc, r)
            assert got["model"]["status"] == "ok" and "bit-identical" in got["model"]["detail"]
            for name in ("base", "weights", "metrics", "heldout permuted", "platform"):
                assert got[name]["status"] == "ok", (name, got[name])
        assert [r["verdict"] for r in doc["rounds"]] == ["ok", "ok"]
        code, out, _ = await asyncio.to_thread(run_verify, fed)
        assert code == 0 and out.splitlines()[0].split() == ["round", "state", "checks", "verdict"]
        assert "unchecked metrics: not re-evaluated (pass --eval-data FILE)" in out


async def test_a_dishonest_org_is_caught_and_each_lie_named(
    tmp_path: Path, fed_data: dict[str, Path]
) -> None:
    options = {"exit_when_done": True}
    async with Federation(tmp_path, fed_data, rounds=4, org_options=options) as fed:
        assert fed.org is not None
        fed.org.module = "tests.integration.dishonest_org"
        fed.org.start(FEDCHAIN_TAMPER="model@2,exclude@3,base@4")
        for client in fed.clients:
            client.start()
        for r in (1, 2, 3, 4):
            await fed.wait_settled(r, timeout_s=240)
        code, doc = await verify_json(fed, "--eval-data", str(fed_data["org"]))
        table_code, table, _ = await asyncio.to_thread(run_verify, fed)
    print(table)
    assert table_code == 1
    assert "round 2: MISMATCH model: " in table and "round 4: MISMATCH base: swapped base" in table
    assert code == 1 and not doc["ok"]
    verdicts = {r["round_id"]: r["verdict"] for r in doc["rounds"]}
    assert verdicts == {1: "ok", 2: "MISMATCH", 3: "MISMATCH", 4: "MISMATCH"}, verdicts

    def bad(r: int) -> dict[str, str]:
        return {n: c["detail"] for n, c in checks(doc, r).items() if c["status"] == "MISMATCH"}

    assert "max |Δ| = 0.01" in bad(2)["model"]
    # its manifest's metrics are the honest model's, not the published one's: caught too
    assert set(bad(2)) == {"model", "metrics"}
    updates = [n for n in bad(3) if n.startswith("update ")]
    assert len(updates) == 1, bad(3)
    assert (
        "excluded as 'norm'" in bad(3)[updates[0]] and "re-validation: valid" in bad(3)[updates[0]]
    )
    assert checks(doc, 3)["base"]["status"] == "ok"  # round 2's (forged) model, as published
    assert set(bad(4)) == {"base"} and "swapped base" in bad(4)["base"]


def continual_data(tmp_path: Path, fed_data: dict[str, Path]) -> dict[str, Path]:
    """The federation's files for `permuted_fashion_mnist`: task B, the permuted images."""
    from models.tasks.continual import permuted

    out = {}
    for name, path in fed_data.items():
        out[name] = tmp_path / f"permuted-{name}.npz"
        save_npz(out[name], permuted(load_dataset(path)))
    return out


async def test_the_tasks_forgetting_ledger_is_rederived_and_a_wrong_number_caught(
    tmp_path: Path, fed_data: dict[str, Path]
) -> None:
    """`permuted_fashion_mnist` declares task A's test set: every manifest records it, verify
    re-derives it from the task (no --heldout), and an org that overstates it is named."""
    task = "permuted_fashion_mnist"
    data = continual_data(tmp_path, fed_data)
    options = {"exit_when_done": True, "task": task}
    fed_args = {"num_clients": 2, "max_updates": 2, "rounds": 2, "org_options": options}
    async with Federation(tmp_path, data, **fed_args) as fed:
        assert fed.org is not None
        for client in fed.clients:
            text = client.config.read_text()
            client.config.write_text(text.replace("[data]\n", f'[data]\ntask = "{task}"\n'))
        fed.org.module = "tests.integration.dishonest_org"
        fed.org.start(FEDCHAIN_TAMPER="heldout@2")
        for client in fed.clients:
            client.start()
        for r in (1, 2):
            await fed.wait_settled(r, timeout_s=300)
        code, doc = await verify_json(fed, "--eval-data", str(data["org"]))
        table_code, table, _ = await asyncio.to_thread(run_verify, fed)
    print(table)
    assert code == 1 and table_code == 1
    assert {r["round_id"]: r["verdict"] for r in doc["rounds"]} == {1: "ok", 2: "MISMATCH"}
    one, two = checks(doc, 1), checks(doc, 2)
    for got in (one, two):
        assert got["model"]["status"] == "ok" and got["metrics"]["status"] == "ok"
        assert got["task"]["status"] == "ok" and task in got["task"]["detail"]
    assert one["heldout task-a"]["status"] == "ok", one["heldout task-a"]
    assert "(the task's set)" in one["heldout task-a"]["detail"]
    accuracy = one["heldout task-a"]["values"]["accuracy"]
    assert 0.4 < accuracy < 0.8 and one["heldout task-a"]["values"]["num_samples"] == 10000
    lie = two["heldout task-a"]
    assert lie["status"] == "MISMATCH" and "|Δaccuracy| = 0.1" in lie["detail"]
    assert [n for n, c in two.items() if c["status"] == "MISMATCH"] == ["heldout task-a"]
    assert "round 2: MISMATCH heldout task-a: |Δaccuracy| = 0.1" in table
    ledger = table[table.index("forgetting ledger") :].splitlines()
    assert ledger[1].split() == ["round", "task-a"]
    assert ledger[2].split() == ["1", "accuracy", f"{accuracy:.4f}"]
    assert ledger[3].split()[:2] == ["2", "accuracy"] and ledger[3].endswith(" !")
