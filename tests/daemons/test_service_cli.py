"""The `fedchain` CLI: --help on every command, clear config errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemons.cli.main import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def _commands(parser: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every (sub)command path of an argparse parser."""
    import argparse

    found = [prefix]
    for action in parser._actions:  # type: ignore[attr-defined]
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*prefix, name))
    return found


def test_help_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _commands(build_parser())
    assert ("org", "run") in commands and ("client", "run") in commands
    for path in commands:
        with pytest.raises(SystemExit) as info:
            main([*path, "--help"])
        assert info.value.code == 0, path
        assert "usage:" in capsys.readouterr().out


def test_config_error_exit_code(tmp_path: Path) -> None:
    bad = tmp_path / "org.toml"
    bad.write_text("[federation]\nrounds = -1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "daemons.cli", "org", "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "configuration error" in proc.stderr and "federation.rounds" in proc.stderr
    assert str(bad) in proc.stderr


def test_missing_key_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "client.toml"
    cfg.write_text(f'[chain]\ncontract = "0x{"1" * 40}"\n[data]\npath = "x.npz"\n')
    monkeypatch.delenv("FEDCHAIN_PRIVATE_KEY", raising=False)
    assert main(["client", "run", "--config", str(cfg)]) == 2
