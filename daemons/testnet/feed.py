"""What `testnet up` has read of a running net so far: events, manifests, daemons' health."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console

from daemons.ipfs.client import IpfsStorage
from daemons.testnet import collect
from daemons.testnet.facts import Gas
from daemons.testnet.records import RoundRecord, build_rounds, round_wall_times, update_offsets


class Feed:
    """Events and manifests read so far; a failed read is retried on the next step."""

    def __init__(self, watch: collect.ChainWatch, ipfs: IpfsStorage, log: Console | None) -> None:
        self.watch, self.ipfs, self.log = watch, ipfs, log
        self.manifests: dict[str, dict[str, Any]] = {}
        self.pending: list[str] = []
        self.last_error = ""
        self._failing_since: float | None = None
        self.gas: dict[int, Gas] = {}
        self._health: dict[str, Any] = {}
        self._health_at = 0.0

    async def health(self, urls: dict[str, str]) -> dict[str, Any]:
        """The daemons' /healthz, re-read at most once a second."""
        if urls and time.monotonic() - self._health_at >= 1.0:
            self._health = await collect.health_docs(urls)
            self._health_at = time.monotonic()
        return self._health

    def failing_for_s(self) -> float:
        return 0.0 if self._failing_since is None else time.monotonic() - self._failing_since

    async def step(self) -> list[RoundRecord]:
        try:
            for ev in await self.watch.poll():
                if type(ev).__name__ == "RoundClosed":
                    self.pending.append(ev.manifest_cid)
                self._print(ev)
            while self.pending:
                cid = self.pending[0]
                self.manifests[cid] = await collect.fetch_manifest(self.ipfs, cid)
                self.pending.pop(0)
            self._failing_since = None
        except Exception as e:  # any read failure: retry, give up after POLL_GIVE_UP_S
            self.last_error = f"{type(e).__name__}: {e}"
            self._failing_since = self._failing_since or time.monotonic()
        return self.rounds({})

    def rounds(self, facts: dict[str, Any]) -> list[RoundRecord]:
        events, seen = self.watch.events, self.watch.seen_s
        wall = round_wall_times(events, seen)
        offsets = update_offsets(events, seen)
        return build_rounds(events, self.manifests, facts, wall, offsets, self.gas)

    def _print(self, ev: Any) -> None:
        """Plain lines instead of the live view when stdout is not a terminal (CI logs)."""
        if self.log is None:
            return
        kind = type(ev).__name__
        if kind == "RoundOpened":
            self.log.print(f"round {ev.round_id} opened (max {ev.max_updates} updates)")
        elif kind == "UpdateSubmitted":
            self.log.print(f"round {ev.round_id}: update from {ev.client}")
        elif kind == "RoundClosed":
            self.log.print(f"round {ev.round_id} closed with {ev.num_updates} updates")
        elif kind == "RoundFailed":
            self.log.print(f"round {ev.round_id} failed with {ev.num_updates} updates")
