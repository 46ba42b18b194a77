"""Byzantine robustness: FedAvg vs median vs trimmed mean vs Krum under four attacks.

An in-process federation (no chain, no IPFS) of `--clients` clients on IID shards of
Fashion-MNIST. k of them are attackers:
  sign_flip   sends base - 4·Δ (its honest change Δ, reversed and boosted)
  scaling     sends base + 10·Δ (a boosted honest change)
  noise       sends base + N(0, σ²) with σ = `--noise-std`
  label_flip  trains honestly on labels y -> 9 - y
Every run starts from the same initial model; each client trains with the same seeds in
every run, so the strategies differ only in how they merge. Prints a markdown table of
final test accuracy and one `RESULT` line per (attack, k, strategy).

  .venv/bin/python benchmarks/robust.py            # full table (a few minutes on 2 cores)
  .venv/bin/python benchmarks/robust.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import jax
import numpy as np

from models import pytree
from models.data import DEFAULT_FASHION_MNIST, Dataset, load_idx_dir, partition_iid
from models.evaluate import evaluate
from models.networks import Model
from models.strategies import ClientUpdate, Strategy, get_strategy
from models.tasks.fashion_mnist import get_model
from models.training import OptimizerRecipe, local_train, params_to_numpy

Params = dict
ATTACKS = ("sign_flip", "scaling", "noise", "label_flip")


@dataclass(frozen=True)
class Setup:
    """Everything one run needs, fixed across strategies."""

    model: Model
    init: Params
    shards: list[Dataset]
    test: Dataset
    config: OptimizerRecipe
    rounds: int
    noise_std: float


def _attack(
    kind: str, base: Params, honest: Params, rng: np.random.Generator, std: float
) -> Params:
    """The params an attacker of `kind` submits, given its honestly trained params."""
    if kind == "sign_flip":
        return _combine(base, honest, -4.0)
    if kind == "scaling":
        return _combine(base, honest, 10.0)
    if kind == "noise":
        return pytree.map_leaves(
            lambda b: (b + rng.normal(0, std, b.shape)).astype(np.float32), base
        )
    return honest  # label_flip poisons the data, not the params


def _combine(base: Params, trained: Params, scale: float) -> Params:
    flat_b, flat_t = pytree.flatten(base), pytree.flatten(trained)
    return pytree.unflatten(
        {n: (flat_b[n] + scale * (flat_t[n] - flat_b[n])).astype(np.float32) for n in flat_b}
    )


def _client_update(
    setup: Setup, base: Params, client: int, round_id: int, attack: str | None
) -> ClientUpdate:
    data = setup.shards[client]
    if attack == "label_flip":
        data = Dataset(data.x, (9 - data.y).astype(np.int32))
    config = OptimizerRecipe(
        epochs=setup.config.epochs,
        batch_size=setup.config.batch_size,
        learning_rate=setup.config.learning_rate,
        seed=1000 * round_id + client,
    )
    trained, _ = local_train(setup.model, base, data, config)
    params = params_to_numpy(trained)
    if attack is not None:
        rng = np.random.default_rng(7919 * round_id + client)
        params = _attack(attack, base, params, rng, setup.noise_std)
    return ClientUpdate(f"client-{client:02d}", params, len(data))


def run_federation(setup: Setup, strategy: Strategy, attack: str | None, k: int) -> float:
    """Final test accuracy after `setup.rounds` rounds with the first k clients attacking.

    NaN when the model diverged to non-finite params (the table shows it as "diverged").
    """
    params = params_to_numpy(setup.init)
    state = strategy.init(params)
    for round_id in range(1, setup.rounds + 1):
        updates = [
            _client_update(setup, params, c, round_id, attack if c < k else None)
            for c in range(len(setup.shards))
        ]
        result = strategy.aggregate(params, updates, state)
        if result is not None:
            params, state = result.params, result.state
    if not all(np.isfinite(leaf).all() for leaf in pytree.leaves(params)):
        return float("nan")
    return evaluate(setup.model, params, setup.test).accuracy


def _setup(args: argparse.Namespace) -> Setup:
    train, test = load_idx_dir(args.data)
    rng = np.random.default_rng(args.seed)
    pool = train.subset(rng.permutation(len(train))[: args.clients * args.samples_per_client])
    shards = [pool.subset(idx) for idx in partition_iid(pool.y, args.clients, args.seed)]
    model = get_model(args.model)
    return Setup(
        model=model,
        init=model.init(jax.random.PRNGKey(args.seed)),
        shards=shards,
        test=test.subset(np.arange(args.test_samples)),
        config=OptimizerRecipe(
            epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr
        ),
        rounds=args.rounds,
        noise_std=args.noise_std,
    )


def _strategies(clients: int, max_attackers: int) -> dict[str, Callable[[], Strategy]]:
    f = min(max_attackers, max((clients - 3) // 2, 0))
    return {
        "fedavg": lambda: get_strategy("fedavg"),
        "median": lambda: get_strategy("median"),
        "trimmed_mean": lambda: get_strategy("trimmed_mean", beta=0.2),
        "krum": lambda: get_strategy("krum", f=f),
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default=str(DEFAULT_FASHION_MNIST))
    p.add_argument("--model", default="logreg")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--samples-per-client", type=int, default=500)
    p.add_argument("--test-samples", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--noise-std", type=float, default=1.0)
    p.add_argument("--max-attackers", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="2 rounds, small shards, k in {0, 2}")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.samples_per_client, args.test_samples = 2, 100, 500
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    start = time.perf_counter()
    setup = _setup(args)
    ks = [2] if args.quick else list(range(1, args.max_attackers + 1))
    strategies = _strategies(args.clients, args.max_attackers)
    rows: list[tuple[str, int, dict[str, float]]] = []
    clean = {name: run_federation(setup, make(), None, 0) for name, make in strategies.items()}
    rows.append(("none", 0, clean))
    for attack in ATTACKS:
        for k in ks:
            rows.append(
                (
                    attack,
                    k,
                    {n: run_federation(setup, m(), attack, k) for n, m in strategies.items()},
                )
            )
            print(
                f"  {attack} k={k}: {rows[-1][2]}  ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    _report(args, rows, list(strategies), time.perf_counter() - start)


def _report(args: argparse.Namespace, rows: list, names: list[str], elapsed_s: float) -> None:
    print(
        f"\n{args.clients} clients x {args.samples_per_client} samples, model {args.model}, "
        f"{args.rounds} rounds, E={args.epochs}, B={args.batch_size}, lr={args.lr}, "
        f"test on {args.test_samples}; {elapsed_s:.0f} s\n"
    )
    print("| attack | k | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for attack, k, accs in rows:
        cells = ["diverged" if np.isnan(accs[n]) else f"{accs[n]:.3f}" for n in names]
        print(f"| {attack} | {k} | " + " | ".join(cells) + " |")
    print()
    for attack, k, accs in rows:
        for name in names:
            print(f"RESULT robust_{attack}_k{k}_{name}_accuracy {accs[name]:.4f} fraction")


if __name__ == "__main__":
    main()
