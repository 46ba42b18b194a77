"""A deliberately dishonest org for the verify tests: the real org daemon with one lie patched in.

`python -m tests.integration.dishonest_org org run --config FILE` with
`FEDCHAIN_TAMPER="model@2,exclude@3,base@4"`:
- `model@R`: round R's published model is not the aggregation (params + 0.01);
- `exclude@R`: round R's lowest-addressed valid update is rejected as "norm" with no detail;
- `base@R`: round R opens on the seeded initial model instead of round R-1's model;
- `heldout@R`: round R's manifest overstates the accuracy on each forgetting-ledger set by
  0.1 (the model and everything else honest).
Test code only: production has no hook for any of it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from typing import Any

import jax
import numpy as np

import daemons.cli.main as cli
from daemons.org import close, collect, opening
from daemons.org.collect import Verdict
from daemons.org.ledger import ACCEPTED


def plan(text: str) -> dict[str, set[int]]:
    """`what@round,...` -> {what: {rounds}}."""
    out: dict[str, set[int]] = {"model": set(), "exclude": set(), "base": set(), "heldout": set()}
    for item in filter(None, text.split(",")):
        what, _, r = item.partition("@")
        out[what].add(int(r))
    return out


def install(tamper: dict[str, set[int]]) -> None:
    """Patch the org's functions (module attributes) with the lies asked for."""
    real_encode, real_check, real_base = close.encode_blob, collect.check_update, None
    excluded: dict[int, str] = {}

    def encode_blob(sections: Any, meta: Any) -> bytes:
        if meta.kind == "model" and meta.round_id in tamper["model"]:
            shifted = jax.tree_util.tree_map(lambda a: a + np.float32(0.01), sections["params"])
            sections = {**sections, "params": shifted}
        return real_encode(sections, meta)

    def check_update(data: bytes, base_params: Any, claim: Any, *args: Any) -> Any:
        verdict, decoded = real_check(data, base_params, claim, *args)
        r = claim.round_id
        lie = r in tamper["exclude"] and verdict.code == ACCEPTED
        if lie and excluded.setdefault(r, claim.client) == claim.client:
            return Verdict("norm", ""), None
        return verdict, decoded

    real_base = opening.RoundOpener.next_base

    async def next_base(self: Any, round_id: int, info: Any) -> tuple[str, bytes]:
        if round_id + 1 in tamper["base"]:
            return await self.publish_initial()
        return await real_base(self, round_id, info)

    real_manifest = close._manifest

    def manifest(org: Any, info: Any, *args: Any) -> Any:
        honest = real_manifest(org, info, *args)
        if info.round_id not in tamper["heldout"]:
            return honest
        ledger = {k: {**v, "accuracy": v["accuracy"] + 0.1} for k, v in honest.heldout.items()}
        return replace(honest, heldout=ledger)

    close._manifest = manifest  # type: ignore[assignment]
    close.encode_blob = encode_blob  # type: ignore[assignment]
    collect.check_update = check_update  # type: ignore[assignment]
    opening.RoundOpener.next_base = next_base  # type: ignore[method-assign]


if __name__ == "__main__":
    install(plan(os.environ.get("FEDCHAIN_TAMPER", "")))
    sys.exit(cli.main(sys.argv[1:]))
