"""Warm-ups of one recipe take turns across processes that share a compile cache."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemons.runtime.compile_lock import compile_turn, recipe_key

HOLD = """
import sys, time
from daemons.runtime.compile_lock import compile_turn
with compile_turn(sys.argv[1], sys.argv[2]) as cached:
    print("cached" if cached else "compiling", flush=True)
    time.sleep(float(sys.argv[3]))
    if sys.argv[4] == "fail":
        raise SystemExit(3)
print("done", flush=True)
"""


def _holder(cache: Path, key: str, hold_s: float, outcome: str = "ok") -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(cache), key, str(hold_s), outcome],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "compiling"  # it holds the lock now
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def test_no_cache_dir_means_no_turns() -> None:
    for empty in (None, ""):
        with compile_turn(empty, "k") as cached:
            assert cached is False


def test_the_first_compiles_and_the_next_loads_from_the_cache(tmp_path: Path) -> None:
    with compile_turn(tmp_path, "k") as cached:
        assert cached is False
    with compile_turn(tmp_path, "k") as cached:
        assert cached is True
    with compile_turn(tmp_path, "other") as cached:  # another recipe compiles on its own
        assert cached is False


def test_a_second_process_waits_for_the_first_then_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proc = _holder(tmp_path, "k", 1.0)
    try:
        started = time.monotonic()
        with caplog.at_level(logging.INFO), compile_turn(tmp_path, "k", poll_s=0.01) as cached:
            waited = time.monotonic() - started
        assert cached is True and waited >= 0.5
        assert "another process is compiling the same programs" in caplog.text
        assert proc.wait(timeout=10) == 0
    finally:
        _stop(proc)


def test_a_failed_compile_leaves_the_recipe_to_the_next(tmp_path: Path) -> None:
    proc = _holder(tmp_path, "k", 0.2, "fail")
    try:
        assert proc.wait(timeout=10) == 3
        with compile_turn(tmp_path, "k") as cached:
            assert cached is False  # no "compiled" mark: this one compiles
    finally:
        _stop(proc)
    with pytest.raises(RuntimeError), compile_turn(tmp_path, "raises"):
        raise RuntimeError("compile failed")
    with compile_turn(tmp_path, "raises") as cached:
        assert cached is False


def test_a_killed_holder_releases_its_turn(tmp_path: Path) -> None:
    proc = _holder(tmp_path, "k", 60.0)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        started = time.monotonic()
        with compile_turn(tmp_path, "k", limit_s=30.0) as cached:
            assert cached is False and time.monotonic() - started < 5.0
    finally:
        _stop(proc)


def test_the_wait_is_bounded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    proc = _holder(tmp_path, "k", 60.0)
    try:
        started = time.monotonic()
        with caplog.at_level(logging.INFO), compile_turn(tmp_path, "k", limit_s=0.3) as cached:
            assert cached is False  # compiles alongside the holder
        assert time.monotonic() - started < 5.0
        assert "compile lock still held; compiling alongside" in caplog.text
        waiting = [r for r in caplog.records if r.getMessage().startswith("another process")]
        assert waiting[0].fields["holder"] == str(proc.pid)  # type: ignore[attr-defined]
    finally:
        _stop(proc)


def test_an_unusable_cache_dir_compiles_without_turns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING), compile_turn(blocker, "k") as cached:
        assert cached is False
    assert "compile lock unusable" in caplog.text


def test_recipe_keys_are_stable_and_tell_recipes_apart() -> None:
    assert recipe_key("2nn", 32, [(784,), "<f4"]) == recipe_key("2nn", 32, [(784,), "<f4"])
    assert recipe_key("2nn", 32) != recipe_key("2nn", 16)
    assert len(recipe_key("x")) == 24
