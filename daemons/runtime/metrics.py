"""Prometheus metrics of one daemon, in a registry of its own (no global state).

What an operator watches: rounds and their duration, the org's evaluation metrics, updates
accepted and rejected (the org's validation reasons) apart from submissions the contract
refused (the client's), bytes, gas and fees, the account's balance, how far the tailer is
behind the chain head, transactions waiting to be mined, and RPC / IPFS errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
ROUND_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 6 * 3600, 24 * 3600)
WEI_PER_ETH = 10**18


@dataclass
class Metrics:
    """The counters a federation operator watches (see the module docstring)."""

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
            "fedchain_updates_rejected",
            "Updates the org's validation rejected, by reason code (org only)",
            ["reason"],
            registry=r,
        )
        self.submissions_refused = Counter(
            "fedchain_submissions_refused",
            "Submissions the contract refused, by its error name (client only)",
            ["error"],
            registry=r,
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
        self._operator_metrics(r)

    def _operator_metrics(self, r: CollectorRegistry) -> None:
        self.eval_metric = Gauge(
            "fedchain_eval_metric",
            "The org's held-out metrics of the latest settled round's model (org only)",
            ["metric"],
            registry=r,
        )
        self.eval_round = Gauge(
            "fedchain_eval_round", "Round whose model fedchain_eval_metric describes", registry=r
        )
        self.round_seconds = Histogram(
            "fedchain_round_seconds",
            "Round duration, opened to settled, in chain time (org only)",
            ["outcome"],
            buckets=ROUND_BUCKETS,
            registry=r,
        )
        self.blocks_behind = Gauge(
            "fedchain_blocks_behind", "Chain head minus the event tailer's cursor", registry=r
        )
        self.head_block = Gauge("fedchain_head_block", "The node's latest block", registry=r)
        self.pending_transactions = Gauge(
            "fedchain_pending_transactions", "Signed transactions not yet mined", registry=r
        )
        self.gas_used = Counter(
            "fedchain_gas_used", "Gas of this daemon's mined transactions", ["fn"], registry=r
        )
        self.fees_eth = Counter(
            "fedchain_fees_eth", "Fees paid for mined transactions, ETH", ["fn"], registry=r
        )
        self.balance_eth = Gauge(
            "fedchain_balance_eth", "Balance of this daemon's account, ETH", registry=r
        )
        self.rpc_errors = Counter(
            "fedchain_rpc_errors",
            "JSON-RPC failures: transport exceptions by type, `error_reply` for error answers",
            ["kind"],
            registry=r,
        )
        self.ipfs_errors = Counter(
            "fedchain_ipfs_errors", "IPFS API failures by kind", ["kind"], registry=r
        )

    def observe_eval(self, round_id: int, metrics: Mapping[str, float]) -> None:
        """Publish the org's evaluation of round `round_id`'s model."""
        for name, value in metrics.items():
            self.eval_metric.labels(metric=name).set(float(value))
        self.eval_round.set(round_id)

    def observe_receipt(self, fn_name: str, receipt: Any) -> None:
        """Count a mined transaction's gas and fee (receipt of web3 or a plain mapping)."""
        if receipt is None:
            return
        used = int(receipt.get("gasUsed", 0))
        price = int(receipt.get("effectiveGasPrice", 0))
        self.gas_used.labels(fn=fn_name).inc(used)
        self.fees_eth.labels(fn=fn_name).inc(used * price / WEI_PER_ETH)

    def render(self) -> bytes:
        """The text exposition format served at /metrics."""
        return generate_latest(self.registry)
