"""The task-declared forgetting ledger: the org records it, verify re-derives it from the task.

An org over fakes (tests/daemons/verify_helpers.py) runs `permuted_fashion_mnist`, whose task
declares task A's test set; verify re-derives that set from the installed task, with no
`--heldout` file, and names a manifest that misstates or drops it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from daemons.runtime.task_setup import ledger_sets
from daemons.verify.checks import MISMATCH, OK, UNCHECKED, ledger_table
from daemons.verify.facts import Blob
from daemons.verify.pins import dataset_digest
from daemons.wire.manifest import decode_manifest, encode_manifest
from daemons.wire.round_config import decode_round_config
from models.tasks import get_task
from tests.daemons.test_org_rounds import CLIENTS, submit
from tests.daemons.verify_helpers import make_org, round_facts, statuses, verify_all

pytestmark = pytest.mark.timeout(300)
TASK = "permuted_fashion_mnist"


async def test_the_tasks_heldout_set_is_recorded_and_rederived(tmp_path: Path) -> None:
    task = get_task(TASK)
    sets = ledger_sets(task, {}, "org.toml")  # what `fedchain org run` evaluates
    org, chain, storage = make_org(tmp_path, heldout=sets, task=TASK)
    await org.run_until_idle()
    for client, shift in zip(CLIENTS[:2], (0.01, -0.02), strict=True):
        await submit(org, chain, storage, client, shift)
    chain.now += 120
    await org.run_until_idle()
    manifest = decode_manifest(storage.blobs[chain.rounds[1].manifest_cid])
    assert set(manifest.heldout) == {"task-a"}
    recorded = manifest.heldout["task-a"]
    assert recorded["num_samples"] == 10000.0 and 0.5 < recorded["accuracy"] < 0.8
    cfg = decode_round_config(storage.blobs[chain.rounds[1].config_cid])
    assert cfg.replay is not None and cfg.task is not None and cfg.task["name"] == TASK
    assert cfg.replay["heldout_data"] == {"task-a": dataset_digest(sets["task-a"])}

    [report] = verify_all(chain, storage)  # no --heldout: the set comes from the task
    detail = {c.name: c.detail for c in report.checks}
    assert statuses(report)["heldout task-a"] == OK, detail["heldout task-a"]
    assert "(the task's set)" in detail["heldout task-a"]
    assert statuses(report)["model"] == OK and statuses(report)["base"] == OK
    table = ledger_table([report])
    assert table[2].split() == ["round", "task-a"]
    assert table[3].split() == ["1", "accuracy", f"{recorded['accuracy']:.4f}"]

    facts = round_facts(chain, storage, 1)
    forged = dataclasses.replace(
        manifest, heldout={"task-a": {**recorded, "accuracy": recorded["accuracy"] + 0.1}}
    )
    [lied] = verify_all(chain, storage, r1=dataclasses.replace(facts, manifest=_blob(forged)))
    lie = {c.name: c for c in lied.checks}["heldout task-a"]
    assert lie.status == MISMATCH and "|Δaccuracy| = 0.1" in lie.detail
    assert ledger_table([lied])[3].endswith(" !")

    dropped = dataclasses.replace(manifest, heldout={})
    [hid] = verify_all(chain, storage, r1=dataclasses.replace(facts, manifest=_blob(dropped)))
    gone = {c.name: c for c in hid.checks}["heldout task-a"]
    assert gone.status == MISMATCH
    assert "declares this held-out set but the manifest records no metrics" in gone.detail

    doc = json.loads(storage.blobs[chain.rounds[1].config_cid])
    doc["replay"]["heldout_data"]["task-a"] = "0x" + "ab" * 32  # another copy of the data
    other = dataclasses.replace(facts, config=Blob(json.dumps(doc).encode()))
    [elsewhere] = verify_all(chain, storage, r1=other)
    moved = {c.name: c for c in elsewhere.checks}["heldout task-a"]
    assert moved.status == UNCHECKED
    assert "the task's set as derived here (0x" in moved.detail
    assert "is not the set the org pinned (0xabab" in moved.detail


def _blob(manifest: object) -> Blob:
    return Blob(encode_manifest(manifest))  # type: ignore[arg-type]
