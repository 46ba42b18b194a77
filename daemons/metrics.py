"""Prometheus metrics of one daemon, in a registry of its own (no global state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass
class Metrics:
    """The counters a federation operator watches: rounds, updates, bytes, timings."""

    role: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.rounds = Counter(
            "fedchain_rounds", "Rounds settled by this daemon, by outcome", ["outcome"], registry=r
        )
        self.current_round = Gauge("fedchain_current_round", "Latest round id seen", registry=r)
        self.updates_accepted = Counter(
            "fedchain_updates_accepted", "Updates accepted (org) or submitted (client)", registry=r
        )
        self.updates_rejected = Counter(
            "fedchain_updates_rejected", "Updates rejected, by reason", ["reason"], registry=r
        )
        self.bytes = Counter(
            "fedchain_bytes", "Blob bytes moved through IPFS", ["direction"], registry=r
        )
        self.train_seconds = Histogram(
            "fedchain_train_seconds", "Local training time", buckets=SECONDS_BUCKETS, registry=r
        )
        self.aggregate_seconds = Histogram(
            "fedchain_aggregate_seconds", "Aggregation time", buckets=SECONDS_BUCKETS, registry=r
        )
        self.last_block = Gauge("fedchain_last_block", "Last block handled", registry=r)
        self.privacy_epsilon = Gauge(  # org under DP: ε after the latest opened round
            "fedchain_privacy_epsilon", "DP epsilon spent (docs/privacy.md)", registry=r
        )
        self.info = Gauge("fedchain_info", "Daemon role", ["role"], registry=r)
        self.info.labels(role=self.role).set(1)

    def render(self) -> bytes:
        """The text exposition format served at /metrics."""
        return generate_latest(self.registry)
