"""CLI conventions: `--json` on read commands, `model ls`, `model get latest`, `--version`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemons.cli.main import build_parser, main, package_version
from daemons.ipfs.bundled import BundledIpfsNode
from daemons.ipfs.client import IpfsStorage
from tests.daemons.chain_helpers import open_round, submit
from tests.daemons.test_cli_chain import fedchain, one_closed_round, target
from tests.fixtures.anvil import Deployed

pytestmark = pytest.mark.timeout(120)


async def test_rounds_and_status_json(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    await one_closed_round(deployed)
    code, out, err = await fedchain(capsys, "rounds", "--json", *target(deployed))
    assert code == 0, err
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["round_id"] == 1 and first["state"] == "closed" and first["num_updates"] == 3
    assert first["model_cid"] == "bafymodel1" and first["manifest_cid"] == "bafymanifest1"
    assert first["model_digest"].startswith("0x") and len(first["model_digest"]) == 66
    assert second["state"] == "open" and second["deadline_passed"] is False
    assert second["deadline_utc"].endswith("Z")
    code, out, err = await fedchain(capsys, "status", "--json", *target(deployed))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["chain_id"] == 31337 and doc["contract"] == deployed.contract.address
    assert doc["org"] == deployed.org.address and doc["paused"] is False
    assert doc["current_round"] == 2
    assert doc["round"]["status"] == "open" and doc["round"]["base_cid"] == "bafymodel1"
    assert doc["round"]["max_updates"] == 3 and doc["round"]["deadline_passed"] is False


async def test_status_json_before_any_round(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await fedchain(capsys, "status", "--json", *target(deployed))
    assert code == 0 and json.loads(out)["round"] is None and json.loads(out)["current_round"] == 0


async def test_model_ls_lists_initial_and_closed_models(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await fedchain(capsys, "model", "ls", *target(deployed))
    assert code == 0 and out.strip() == "no model published yet"
    await one_closed_round(deployed)
    code, out, _ = await fedchain(capsys, "model", "ls", "--json", *target(deployed))
    entries = [json.loads(line) for line in out.splitlines()]
    assert [(e["round_id"], e["cid"]) for e in entries] == [(0, "bafybase"), (1, "bafymodel1")]
    assert entries[1]["manifest_cid"] == "bafymanifest1"
    code, out, _ = await fedchain(capsys, "model", "ls", *target(deployed))
    header, r0, r1 = out.strip().splitlines()
    assert header.split()[:3] == ["round", "model", "CID"]
    assert r0.split()[:2] == ["0", "bafybase"] and r1.split()[:2] == ["1", "bafymodel1"]


async def test_model_get_latest_follows_the_newest_closed_round(
    deployed: Deployed,
    ipfs_node: BundledIpfsNode,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with IpfsStorage(ipfs_node.api_url) as storage:
        base = await storage.put(b"initial model")
        model = await storage.put(b"round one model")
    ipfs = ["--ipfs-api", ipfs_node.api_url, *target(deployed)]
    out_file = tmp_path / "latest.bin"
    code, _, err = await fedchain(capsys, "model", "get", "latest", "-o", str(out_file), *ipfs)
    assert code == 1 and "no model published yet" in err and not out_file.exists()
    block = await deployed.w3.eth.get_block("latest")
    deadline = int(block["timestamp"]) + 600
    await deployed.contract.open_round(deployed.org, base.cid, base.digest, deadline, 1, 1, "c")
    code, out, err = await fedchain(capsys, "model", "get", "latest", "-o", str(out_file), *ipfs)
    assert code == 0, err
    assert out_file.read_bytes() == b"initial model" and "round 0 initial model" in out
    await submit(deployed, 0, 1)
    await deployed.contract.close_round(deployed.org, 1, model.cid, model.digest, "bafyman")
    await open_round(deployed, base_cid=model.cid)
    code, out, err = await fedchain(capsys, "model", "get", "latest", "-o", str(out_file), *ipfs)
    assert code == 0, err
    assert out_file.read_bytes() == b"round one model" and "round 1 model" in out


def test_model_get_refuses_a_bad_round_word(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["model", "get", "newest", "-o", "x", "--contract", "0x" + "11" * 20])
    assert exc.value.code == 2 and "expected a round id or `latest`" in capsys.readouterr().err


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"fedchain {package_version()}"
    assert package_version()[0].isdigit()


def test_every_read_command_has_json() -> None:
    parser = build_parser()
    for argv in (["events"], ["rounds"], ["status"], ["model", "ls"]):
        args = parser.parse_args([*argv, "--json"])
        assert args.json is True, argv
