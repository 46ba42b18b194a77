"""Training throughput of ``local_train`` (CNN, B=10) against the same model in PyTorch, one run.

Usage: .venv/bin/python benchmarks/train_throughput.py [--samples 3000] [--repeats 3]
Needs the bench extra for the baseline (`make bench-deps`, i.e. torch==2.13.0 CPU).
Both frameworks run in this one process on the same CPUs: the process is pinned to the first
--threads cores (default: all) before either is imported, which is what sizes XLA's CPU thread
pool (jaxlib 0.10 ignores `--xla_cpu_multi_thread_eigen` and `intra_op_parallelism_threads`
for it), and PyTorch gets `torch.set_num_threads(--threads)`. Plain SGD for both. Runs
alternate JAX / PyTorch so background load hits both alike; the median is reported, both as
samples per wall second and per CPU second of the process (the latter moves less with other
processes' load; a framework whose idle threads spin is charged for the spinning).
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


def _pin_cpus(threads: int) -> list[int]:
    """Pin this process to `threads` of its CPUs; must happen before jax/torch are imported.

    XLA sizes its CPU thread pool from the process's CPU affinity when the client starts.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if not 1 <= threads <= len(cpus):
        sys.exit(f"--threads {threads}: this process may use 1..{len(cpus)} CPUs")
    os.sched_setaffinity(0, cpus[:threads])
    return cpus[:threads]


Timed = tuple[float, float]  # (wall seconds, CPU seconds of the process)


def _timed(fn: Callable[[], object]) -> Timed:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def jax_runner(x: np.ndarray, y: np.ndarray, apply_name: str) -> Callable[[int], Timed]:
    """A function that trains one epoch with local_train and returns its (wall, CPU) seconds."""
    import jax

    from models.data import Dataset
    from models.networks import Model
    from models.tasks.fashion_mnist import cnn_apply_lax, cnn_apply_slices, get_model
    from models.training import OptimizerRecipe, local_train

    base = get_model("cnn")
    apply = cnn_apply_slices if apply_name == "slices" else cnn_apply_lax
    model = Model(f"cnn-{apply_name}", base.init, apply)
    params = model.init(jax.random.PRNGKey(0))
    data = Dataset(x, y)

    def run(seed: int) -> Timed:
        cfg = OptimizerRecipe(batch_size=10, seed=seed)
        return _timed(lambda: jax.block_until_ready(local_train(model, params, data, cfg)[0]))

    return run


def torch_runner(x: np.ndarray, y: np.ndarray, threads: int) -> Callable[[int], Timed]:
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

    def epoch(gen: torch.Generator) -> None:
        for idx in torch.randperm(len(yt), generator=gen).split(10):
            opt.zero_grad(set_to_none=True)
            loss_fn(net(xt[idx]), yt[idx]).backward()
            opt.step()

    def run(seed: int) -> Timed:
        gen = torch.Generator().manual_seed(seed)
        return _timed(lambda: epoch(gen))

    return run


def _median_rates(times: list[Timed], n: int) -> tuple[float, float]:
    """Samples per wall second and per CPU second, each from the median run."""
    return n / statistics.median(t[0] for t in times), n / statistics.median(t[1] for t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--lax-samples", type=int, default=500, help="0 skips lax.conv")
    args = parser.parse_args()
    cpus = _pin_cpus(args.threads)
    load = os.getloadavg()
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
    times: dict[str, list[Timed]] = {name: [] for name in runners}
    for rep in range(args.repeats):
        for name, run in runners.items():
            times[name].append(run(rep))
    rates = {name: _median_rates(t, len(y)) for name, t in times.items()}
    if args.lax_samples:
        lax_run = jax_runner(x[: args.lax_samples], y[: args.lax_samples], "lax")
        lax_run(-1)
        rates["jax_lax_conv"] = _median_rates([lax_run(0)], args.lax_samples)
    print(
        f"CNN 1,663,370 params, B=10, SGD, {len(y)} samples/epoch, {args.threads} threads "
        f"(CPUs {cpus}), {_versions()}, load average {load[0]:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end"
    )
    for name, (wall, cpu) in rates.items():
        print(f"  {name:14s} {wall:9.1f} samples/s {cpu:9.1f} samples/CPU-s")
    print(f"RESULT cnn_b10_jax_samples_per_s {rates['jax'][0]:.1f} samples/s")
    if "torch" in rates:
        jax_rate, torch_rate = rates["jax"], rates["torch"]
        print(f"RESULT cnn_b10_torch_samples_per_s {torch_rate[0]:.1f} samples/s")
        print(f"RESULT cnn_b10_jax_over_torch {jax_rate[0] / torch_rate[0]:.2f} x")
        print(f"RESULT cnn_b10_jax_over_torch_per_cpu_s {jax_rate[1] / torch_rate[1]:.2f} x")
    if "jax_lax_conv" in rates:
        lax = rates["jax_lax_conv"][0]
        print(f"RESULT cnn_b10_slices_over_lax_conv {rates['jax'][0] / lax:.2f} x")


def _versions() -> str:
    import jax

    out = f"jax {jax.__version__}"
    if "torch" in sys.modules:
        out += f", torch {sys.modules['torch'].__version__}"
    return out


if __name__ == "__main__":
    main()
