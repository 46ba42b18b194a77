"""benchmarks/proc_accounting.py: CPU seconds of a process tree, named per testnet component."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from proc_accounting import TreeSampler, group, per_component

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

BURN = (
    "import time,sys\nt=time.process_time()\nwhile time.process_time()-t<0.4: pass\ntime.sleep(30)"
)


def test_a_child_daemons_cpu_is_counted_under_its_name(tmp_path: Path) -> None:
    config = tmp_path / "configs" / "client-3.toml"
    child = subprocess.Popen([sys.executable, "-c", BURN, "--config", str(config)])
    try:
        with TreeSampler(os.getpid(), interval_s=0.05) as sampler:
            start = sampler.mark()
            time.sleep(1.5)
            end = sampler.mark()
    finally:
        child.kill()
        child.wait()
    used = per_component(start, end)
    assert "client-3" in used, used
    assert 0.2 <= used["client-3"].cpu_s <= 1.0
    assert group("client-3") == "clients" and group("ipfs-client-3") == "ipfs-clients"
    assert group("org") == "org"
