"""Bounded client influence: the default FedAvg federation against one capturing client.

An in-process federation (no chain, no IPFS) that runs THE ORG'S OWN checks and step: each
update is encoded and judged like the org does (`samples_verdict`, then `validate_blob`
with `update_limits`: the absolute `max_update_norm`), and the round is merged by
`aggregate_step` with `influence_bounds(FederationConfig())` (the round-level norm rule and
the weight cap), all at the shipped `[federation]` defaults. `--clients` clients hold
Dirichlet(alpha) non-iid shards of Fashion-MNIST, as `fedchain testnet --partition
dirichlet` makes them; client 0 attacks, the issue's two attacks (#10 §2):

  noise     sends base + 100·N(0,1)                   (||Δ|| ≈ 8.9e3 for logreg)
  samples   claims num_samples = 10^15 for its honest update

and two that stay just inside the absolute bounds (what is left to the round-level rules):

  noise_under_cap    base + noise scaled to ||Δ|| = 0.99 × max_update_norm
  samples_at_cap     claims exactly max_samples_per_client

Each is run with the defaults and with every bound off ("undefended"). Prints a table and
`RESULT` lines: the final accuracy as a fraction of the clean (no attacker) federation's.

  .venv/bin/python benchmarks/influence.py            # 10 clients, 10 rounds (minutes)
  .venv/bin/python benchmarks/influence.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass

import jax
import numpy as np

from daemons.org.collect import influence_bounds, samples_verdict
from daemons.org.model_step import aggregate_step, update_limits, update_template
from daemons.runtime.config import FederationConfig
from models import pytree
from models.codec import BlobMetadata, DecodedBlob, encode_blob
from models.data import DEFAULT_FASHION_MNIST, Dataset, load_idx_dir, partition_dirichlet
from models.errors import BlobRejected
from models.influence import InfluenceBounds, delta_norm
from models.networks import Model
from models.strategies import ClientUpdate
from models.tasks.fashion_mnist import get_model
from models.training import OptimizerRecipe, local_train, params_to_numpy
from models.validation import validate_blob

ATTACKS = ("noise", "samples", "noise_under_cap", "samples_at_cap")
MAX_BYTES = 64 << 20


@dataclass(frozen=True)
class Setup:
    """Everything one run needs, fixed across runs."""

    model: Model
    model_name: str
    init: dict
    shards: list[Dataset]
    test: Dataset
    config: OptimizerRecipe
    rounds: int
    fed: FederationConfig


@dataclass
class Run:
    """One federation's outcome: final accuracy, rejections by reason, honest norm ratios."""

    accuracy: float
    rejected: dict[str, int]
    honest_ratio: float


def _attack(kind: str, base: dict, honest: dict, fed: FederationConfig, seed: int) -> dict:
    """The params an attacker sends (the samples attacks send their honest params)."""
    if kind not in ("noise", "noise_under_cap"):
        return honest
    rng = np.random.default_rng(seed)
    noise = pytree.map_leaves(lambda b: rng.normal(0, 100.0, b.shape), base)
    if kind == "noise_under_cap":
        scale = (
            0.99 * fed.max_update_norm / delta_norm(noise, pytree.map_leaves(np.zeros_like, base))
        )
        noise = pytree.map_leaves(lambda n: n * scale, noise)
    flat_b, flat_n = pytree.flatten(base), pytree.flatten(noise)
    return pytree.unflatten({k: (flat_b[k] + flat_n[k]).astype(np.float32) for k in flat_b})


def _claim(kind: str | None, honest: int, fed: FederationConfig) -> int:
    if kind == "samples":
        return 10**15
    if kind == "samples_at_cap":
        return fed.max_samples_per_client
    return honest


def _judge(setup: Setup, base: DecodedBlob, update: ClientUpdate, round_id: int) -> str | None:
    """The org's per-update verdict (None = accepted), from the encoded blob."""
    fed = setup.fed
    verdict = samples_verdict(update.num_samples, fed.max_samples_per_client)
    if verdict is not None:
        return verdict.code
    meta = BlobMetadata("update", round_id, update.client, "base", update.num_samples, "m")
    blob = encode_blob({"params": update.params}, meta)
    template = update_template(base.sections["params"], "none")
    limits = update_limits(MAX_BYTES, False, fed.max_update_norm)
    try:
        validate_blob(blob, template, {"round_id": round_id}, limits)
    except BlobRejected as exc:
        return exc.reason
    return None


def _train(setup: Setup, params: dict, client: int, round_id: int) -> dict:
    config = dataclasses.replace(setup.config, seed=1000 * round_id + client)
    trained, _ = local_train(setup.model, params, setup.shards[client], config)
    return params_to_numpy(trained)


def run_federation(setup: Setup, attack: str | None, bounds: InfluenceBounds | None) -> Run:
    """Final accuracy after `setup.rounds` rounds with client 0 attacking (or nobody)."""
    fed = setup.fed if bounds is not None else _off(setup.fed)
    setup = dataclasses.replace(setup, fed=fed)
    meta = BlobMetadata("model", 0, "org", "", 0, setup.model_name)
    base = DecodedBlob({"params": params_to_numpy(setup.init)}, meta)
    rejected: dict[str, int] = {}
    ratios: list[float] = []
    accuracy = 0.0
    for r in range(1, setup.rounds + 1):
        params = base.sections["params"]
        updates, honest_norms = [], []
        for c in range(len(setup.shards)):
            trained = _train(setup, params, c, r)
            kind = attack if c == 0 else None
            if kind is None:
                honest_norms.append(delta_norm(trained, params))
            sent = trained if kind is None else _attack(kind, params, trained, fed, 7919 * r)
            update = ClientUpdate(f"client-{c:02d}", sent, _claim(kind, len(setup.shards[c]), fed))
            reason = _judge(setup, base, update, r)
            if reason is None:
                updates.append(update)
            else:
                rejected[reason] = rejected.get(reason, 0) + 1
        ratios.append(max(honest_norms) / float(np.median(honest_norms)))
        step = aggregate_step(base, updates, "fedavg", {}, 0.9, setup.test, False, bounds)
        for reason, _ in step.rejected.values():
            rejected[reason] = rejected.get(reason, 0) + 1
        base = DecodedBlob(step.sections, dataclasses.replace(meta, round_id=r))
        accuracy = step.metrics["accuracy"]
    return Run(accuracy, rejected, max(ratios))


def _off(fed: FederationConfig) -> FederationConfig:
    return dataclasses.replace(
        fed, max_update_norm=0.0, max_norm_ratio=0.0, max_samples_per_client=0, max_client_share=1.0
    )


def _setup(args: argparse.Namespace) -> Setup:
    train, test = load_idx_dir(args.data)
    rng = np.random.default_rng(args.seed)
    pool = train.subset(rng.permutation(len(train))[: args.clients * args.samples_per_client])
    parts = partition_dirichlet(pool.y, args.clients, args.seed, alpha=args.alpha)
    model = get_model(args.model)
    return Setup(
        model=model,
        model_name=args.model,
        init=model.init(jax.random.PRNGKey(args.seed)),
        shards=[pool.subset(idx) for idx in parts],
        test=test.subset(np.arange(args.test_samples)),
        config=OptimizerRecipe(
            epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr
        ),
        rounds=args.rounds,
        fed=_fed(args.max_client_share),
    )


def _fed(share: float | None) -> FederationConfig:
    """The shipped `[federation]` defaults (optionally another weight share)."""
    fed = FederationConfig(eval_data="x")
    return fed if share is None else dataclasses.replace(fed, max_client_share=share)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default=str(DEFAULT_FASHION_MNIST))
    p.add_argument("--model", default="logreg")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--samples-per-client", type=int, default=500)
    p.add_argument("--alpha", type=float, default=0.3)
    p.add_argument("--test-samples", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-client-share", type=float, default=None, help="override the default")
    p.add_argument("--quick", action="store_true", help="3 rounds, 5 clients, small shards")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.clients, args.samples_per_client, args.test_samples = 3, 5, 200, 500
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    start = time.perf_counter()
    setup = _setup(args)
    defaults = influence_bounds(setup.fed)
    clean = run_federation(setup, None, defaults)
    clean_off = run_federation(setup, None, None)
    rows: list[tuple[str, Run, Run | None]] = [("none", clean, clean_off)]
    for attack in ATTACKS:
        undefended = run_federation(setup, attack, None) if attack in ("noise", "samples") else None
        rows.append((attack, run_federation(setup, attack, defaults), undefended))
        print(f"  {attack}: {rows[-1][1]} ({time.perf_counter() - start:.0f} s)", flush=True)
    _report(args, setup.fed, rows, time.perf_counter() - start)


def _report(args: argparse.Namespace, fed: FederationConfig, rows: list, elapsed_s: float) -> None:
    print(
        f"\n{args.clients} clients x {args.samples_per_client} samples, Dirichlet alpha "
        f"{args.alpha}, model {args.model}, {args.rounds} rounds, E={args.epochs}, "
        f"B={args.batch_size}, lr={args.lr}, test on {args.test_samples}; defaults: "
        f"max_update_norm={fed.max_update_norm:g}, max_norm_ratio={fed.max_norm_ratio:g}, "
        f"max_samples_per_client={fed.max_samples_per_client}, "
        f"max_client_share={fed.max_client_share:g}; {elapsed_s:.0f} s\n"
    )
    clean = rows[0][1].accuracy
    print("| attacker | defaults: accuracy (x clean) | rejected | undefended: accuracy |")
    print("|---|---|---|---|")
    for attack, run, off in rows:
        undefended = "" if off is None else f"{off.accuracy:.3f}"
        print(
            f"| {attack} | {run.accuracy:.3f} ({run.accuracy / clean:.3f}) | "
            f"{run.rejected or '-'} | {undefended} |"
        )
    print()
    print(f"RESULT influence_clean_accuracy {clean:.4f} fraction")
    print(f"RESULT influence_clean_rejected {sum(rows[0][1].rejected.values())} updates")
    print(f"RESULT influence_honest_norm_spread {rows[0][1].honest_ratio:.3f} max_over_median")
    for attack, run, off in rows[1:]:
        print(f"RESULT influence_{attack}_kept {run.accuracy / clean:.4f} fraction_of_clean")
        if off is not None:
            print(
                f"RESULT influence_{attack}_undefended {off.accuracy / clean:.4f} fraction_of_clean"
            )


if __name__ == "__main__":
    main()
