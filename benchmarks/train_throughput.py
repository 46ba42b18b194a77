"""Training throughput of ``local_train`` (CNN, B=10) against the same model in PyTorch, one run.

Usage: .venv/bin/python benchmarks/train_throughput.py [--samples 3000] [--repeats 3]
Needs the bench extra for the baseline (`make bench-deps`, i.e. torch==2.13.0 CPU).
Both frameworks use the same thread count (--threads, default: all cores) and plain SGD.
Runs alternate JAX / PyTorch so background load hits both alike; the median is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _set_threads(threads: int) -> None:
    # Must happen before jax is imported: XLA reads it once.
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_cpu_multi_thread_eigen=true"
        f" intra_op_parallelism_threads={threads}"
    ).strip()


def jax_runner(x: np.ndarray, y: np.ndarray, apply_name: str) -> Callable[[int], float]:
    """A function that trains one epoch with local_train and returns the seconds it took."""
    import jax

    from models.data import Dataset
    from models.networks import Model, get_model
    from models.tasks.fashion_mnist import cnn_apply_lax, cnn_apply_slices
    from models.training import TrainConfig, local_train

    base = get_model("cnn")
    apply = cnn_apply_slices if apply_name == "slices" else cnn_apply_lax
    model = Model(f"cnn-{apply_name}", base.init, apply)
    params = model.init(jax.random.PRNGKey(0))
    data = Dataset(x, y)

    def run(seed: int) -> float:
        start = time.perf_counter()
        out, _ = local_train(model, params, data, TrainConfig(batch_size=10, seed=seed))
        jax.block_until_ready(out)
        return time.perf_counter() - start

    return run


def torch_runner(x: np.ndarray, y: np.ndarray, threads: int) -> Callable[[int], float]:
    """The same CNN and SGD loop in PyTorch (eager, CPU)."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(7 * 7 * 64, 512), nn.ReLU(), nn.Linear(512, 10),
    )  # fmt: skip
    assert sum(p.numel() for p in net.parameters()) == 1_663_370
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    yt = torch.from_numpy(y.astype(np.int64))

    def run(seed: int) -> float:
        gen = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        for idx in torch.randperm(len(yt), generator=gen).split(10):
            opt.zero_grad(set_to_none=True)
            loss_fn(net(xt[idx]), yt[idx]).backward()
            opt.step()
        return time.perf_counter() - start

    return run


def _median_rate(times: list[float], n: int) -> float:
    return n / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--lax-samples", type=int, default=500, help="0 skips lax.conv")
    args = parser.parse_args()
    _set_threads(args.threads)
    from models.data import load_idx_dir

    train, _ = load_idx_dir()
    x, y = train.x[: args.samples], train.y[: args.samples]
    runners = {"jax": jax_runner(x, y, "slices")}
    try:
        runners["torch"] = torch_runner(x, y, args.threads)
    except ImportError:
        print("torch not installed: run `make bench-deps` for the PyTorch baseline")
    for warm in runners.values():
        warm(-1)  # warm-up: compilation for JAX, allocator and kernels for PyTorch
    times: dict[str, list[float]] = {name: [] for name in runners}
    for rep in range(args.repeats):
        for name, run in runners.items():
            times[name].append(run(rep))
    rates = {name: _median_rate(t, len(y)) for name, t in times.items()}
    if args.lax_samples:
        lax_run = jax_runner(x[: args.lax_samples], y[: args.lax_samples], "lax")
        lax_run(-1)
        rates["jax_lax_conv"] = _median_rate([lax_run(0)], args.lax_samples)
    print(f"CNN 1,663,370 params, B=10, SGD, {len(y)} samples/epoch, {args.threads} threads")
    for name, rate in rates.items():
        print(f"  {name:14s} {rate:9.1f} samples/s")
    print(f"RESULT cnn_b10_jax_samples_per_s {rates['jax']:.1f} samples/s")
    if "torch" in rates:
        print(f"RESULT cnn_b10_torch_samples_per_s {rates['torch']:.1f} samples/s")
        print(f"RESULT cnn_b10_jax_over_torch {rates['jax'] / rates['torch']:.2f} x")
    if "jax_lax_conv" in rates:
        print(f"RESULT cnn_b10_slices_over_lax_conv {rates['jax'] / rates['jax_lax_conv']:.2f} x")


if __name__ == "__main__":
    main()
