"""An org driven with in-memory fakes, and its rounds turned into verify's `RoundFacts`.

For fast unit tests of the replay; the real chain and IPFS are in
tests/integration/test_verify.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from contracts.events import LogMeta, RoundClosed, RoundFailed, RoundOpened, UpdateSubmitted
from contracts.state import RoundStatus
from daemons.ipfs.blobs import BlobCache
from daemons.org.ledger import Ledger
from daemons.org.parts import OrgParts
from daemons.org.rounds import OrgRounds
from daemons.runtime.config import (
    ChainConfig,
    DaemonConfig,
    FederationConfig,
    IdentityConfig,
    IpfsConfig,
    ServiceConfig,
    TrainingConfig,
)
from daemons.runtime.metrics import Metrics
from daemons.verify.checks import RoundReport
from daemons.verify.facts import Blob, ReplayInputs, RoundFacts
from daemons.verify.pins import platform_facts
from daemons.verify.replay import verify_round
from tests.daemons.fakes import FakeChain, FakeStorage, MemKV
from tests.daemons.test_org_rounds import CLIENTS, ORG, eval_data

META = LogMeta(1, "0x00", "0x00", 0)


def make_org(
    tmp_path: Path,
    heldout: dict[str, Any] | None = None,
    max_blob_bytes: int = 1 << 20,
    privacy: Any = None,
    training: Any = None,
    **fed: Any,
) -> tuple[OrgRounds, FakeChain, FakeStorage]:
    """An org over fakes: logreg, 3 clients, min 1 update; `fed` overrides [federation]."""
    values: dict[str, Any] = dict(
        clients=CLIENTS,
        rounds=3,
        round_duration_s=60,
        min_updates=1,
        max_updates=3,
        model="logreg",
        seed=3,
        eval_data="x",
    )
    cfg = DaemonConfig(
        path="org.toml",
        role="org",
        chain=ChainConfig(),
        identity=IdentityConfig(),
        ipfs=IpfsConfig(timeout_s=5, max_blob_bytes=max_blob_bytes),
        service=ServiceConfig(state_dir=str(tmp_path)),
        federation=FederationConfig(**(values | fed)),
        training=training or TrainingConfig(),
    )
    chain, storage = FakeChain(ORG), FakeStorage()
    ledger, cache = Ledger(MemKV()), BlobCache(tmp_path / "blobs")
    metrics = Metrics("org")
    parts = OrgParts(
        cfg, chain, storage, ledger, cache, eval_data(), metrics, privacy=privacy, heldout=heldout
    )
    org = OrgRounds(parts)
    return org, chain, storage


def _blob(storage: FakeStorage, cid: str, digest: bytes | None = None) -> Blob:
    data = storage.blobs.get(cid)
    if data is None:
        return Blob(reason="unavailable", detail=f"{cid} not in the fake store")
    return Blob(data)


def round_facts(chain: FakeChain, storage: FakeStorage, r: int) -> RoundFacts:
    """Round `r` of the fake chain as verify would gather it."""
    info = chain.rounds[r]
    opened = RoundOpened(
        r,
        info.base_cid,
        info.base_digest,
        info.deadline,
        info.min_updates,
        info.max_updates,
        info.config_cid,
        META,
    )
    updates = tuple(
        UpdateSubmitted(r, client, cid, digest, n, META)
        for (rr, client), (cid, digest, n) in sorted(chain.submitted.items())
        if rr == r
    )
    facts = RoundFacts(r, opened, ORG, updates)
    if info.status is RoundStatus.CLOSED:
        closed = RoundClosed(
            r, info.model_cid, info.model_digest, info.manifest_cid, info.num_updates, META
        )
        facts = replace(
            facts,
            closed=closed,
            closer=ORG,
            manifest=_blob(storage, info.manifest_cid),
            model=_blob(storage, info.model_cid),
        )
    elif info.status is RoundStatus.FAILED:
        facts = replace(facts, failed=RoundFailed(r, info.num_updates, META))
    blobs = {u.client: _blob(storage, u.update_cid) for u in updates}
    return replace(
        facts,
        config=_blob(storage, info.config_cid),
        base=_blob(storage, info.base_cid),
        update_blobs=blobs,
    )


def verify_all(
    chain: FakeChain, storage: FakeStorage, inputs: ReplayInputs | None = None, **swap: RoundFacts
) -> list[RoundReport]:
    """verify_round over every settled round; `swap` replaces a round's facts (r2=...)."""
    facts = {r: round_facts(chain, storage, r) for r in chain.rounds}
    for key, value in swap.items():
        facts[int(key[1:])] = value
    here = platform_facts()
    return [
        verify_round(facts[r], facts.get(r - 1), inputs or ReplayInputs(), here)
        for r in sorted(facts)
        if facts[r].state != "open"
    ]


def statuses(report: RoundReport) -> dict[str, str]:
    """check name -> status."""
    return {c.name: c.status for c in report.checks}
