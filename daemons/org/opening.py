"""Opening a round: its base (round 0's seeded model, else the last settled one), its config,
then `openRound` (afresh under a new key when a stale stored intent is refused)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from contracts.errors import BadDeadline
from contracts.state import RoundInfo, RoundStatus
from daemons.chain.port import Chain
from daemons.org.ledger import Ledger
from daemons.org.model_step import model_metadata
from daemons.org.models_seal import OrgModels
from daemons.org.privacy import OrgPrivacy
from daemons.org.warmup import OrgWarmup
from daemons.privacy.policy import UpdateEncryption
from daemons.runtime.config import FederationConfig, TrainingConfig
from daemons.runtime.metrics import Metrics
from daemons.runtime.service import crash_point, log_event
from daemons.runtime.task_setup import OrgTask
from daemons.wire.round_config import RoundConfig, encode_round_config
from models.codec import encode_blob
from models.rounds import initial_sections

log = logging.getLogger("fedchain.org")


@dataclass(frozen=True)
class RoundOpener:
    """What opening a round reads and writes: the chain, the ledger, IPFS (through `put`), the
    federation's and training settings, the task, the encryption and privacy policies."""

    chain: Chain
    ledger: Ledger
    put: Callable[[bytes], Awaitable[Any]]  # to IPFS (pinned) and the cache, bytes counted
    metrics: Metrics
    fed: FederationConfig
    training: TrainingConfig
    with_fisher: bool
    task: OrgTask
    encryption: UpdateEncryption | None
    privacy: OrgPrivacy | None
    models: OrgModels
    warmup: OrgWarmup | None
    pins: Callable[[], dict[str, Any]]  # what `fedchain verify` needs to replay a round

    async def next_base(self, round_id: int, info: RoundInfo | None) -> tuple[str, bytes]:
        """The base of the next round: round 0's seeded model, else the last settled model."""
        if info is None:
            return await self.publish_initial()
        if info.status is RoundStatus.CLOSED:
            return info.model_cid, info.model_digest
        return info.base_cid, info.base_digest

    async def publish_initial(self) -> tuple[str, bytes]:
        """Build the seeded round-0 model and put it to IPFS (same seed, same CID).

        A sealed one differs on every sealing (fresh keys and nonce), so its CID is kept in
        the ledger: a restart before round 1 opened reuses it.
        """
        known = self.ledger.get_json("initial_model") if self.models.policy else None
        if known is not None:
            return known["cid"], bytes.fromhex(known["digest"])
        task = self.task.task
        sections = None
        if self.warmup is not None:
            try:
                sections = await self.warmup.initial()
            except Exception as exc:  # the warm-up's problem: build it here as before
                log_event(log, logging.WARNING, "warm-up had no initial model", error=str(exc))
        if sections is None:
            sections = initial_sections(task.model, self.fed.seed, self.with_fisher, task)
        meta = model_metadata(0, self.chain.address, "", 0, task.model)
        blob = self.models.seal(encode_blob(sections, meta), 0, "")
        stored = await self.put(blob)
        if self.models.policy is not None:
            self.ledger.put_json(
                "initial_model", {"cid": stored.cid, "digest": stored.digest.hex()}
            )
        log_event(log, logging.INFO, "initial model published", cid=stored.cid, seed=self.fed.seed)
        return stored.cid, stored.digest

    async def open_next(self, round_id: int, info: RoundInfo | None) -> None:
        """Publish the round config and open round `round_id + 1` on the base model."""
        new_id = round_id + 1
        base_cid, base_digest = await self.next_base(round_id, info)
        privacy = None if self.privacy is None else self.privacy.round_privacy()
        config = RoundConfig(
            new_id,
            self.task.task.model,
            self.fed.seed,
            self.training,
            self.with_fisher,
            encryption=self.encryption,
            task=self.task.identity,
            privacy=privacy,
            replay=self.pins(),
            models=self.models.policy,
        )
        if self.privacy is not None:  # before openRound: ε counts every round ever opened
            self.privacy.record_open(self.ledger, new_id)
        config_cid = (await self.put(encode_round_config(config))).cid
        deadline = await self.chain.now_s() + self.fed.round_duration_s
        args = (base_cid, base_digest, deadline, self.fed.min_updates, self.fed.max_updates)
        try:
            await self.chain.open_round(new_id, *args, config_cid)
        except BadDeadline as exc:
            # a stored openRound from before a long outage has a deadline in the past, or the
            # latest block is stale (a chain that mines only on transactions): that intent is
            # void, so open afresh under a new key, timed from the block the contract judged by
            earliest = int(exc.error_args.get("earliest", 0))
            deadline = max(deadline, earliest - 1 + self.fed.round_duration_s)
            args = (*args[:2], deadline, *args[3:])
            log_event(
                log, logging.WARNING, "stale openRound refused; opening afresh", round_id=new_id
            )
            await self.chain.open_round(new_id, *args, config_cid, afresh=True)
        dp = {}
        if self.privacy is not None:
            dp = {"epsilon_after": self.privacy.epsilon(self.ledger, new_id)}
            self.metrics.privacy_epsilon.set(dp["epsilon_after"])
        log_event(
            log,
            logging.INFO,
            "round opened",
            round_id=new_id,
            base_cid=base_cid,
            deadline=deadline,
            **dp,
        )
        crash_point("after_open", new_id)
