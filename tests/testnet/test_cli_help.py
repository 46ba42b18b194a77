"""`testnet up --help` shows the defaults the code uses; a no-op EWC penalty is warned about."""

from __future__ import annotations

import argparse

import pytest

from daemons.cli.main import build_parser
from daemons.testnet.cli import resolve_penalty, spec_from_args
from daemons.testnet.spec import NetSpec


def _up_parser() -> argparse.ArgumentParser:
    sub = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    testnet = sub.choices["testnet"]
    return testnet._subparsers._group_actions[0].choices["up"]  # type: ignore[union-attr]


def test_help_defaults_are_the_code_defaults() -> None:
    d = NetSpec(run_dir=__import__("pathlib").Path("x"))
    text = " ".join(_up_parser().format_help().split())
    assert f"SGD step (default: {d.learning_rate})" in text  # was a hand-typed 0.05
    assert f"local epochs per round (default: {d.epochs})" in text
    assert f"round deadline, s (default: {d.round_duration_s})" in text
    parser = _up_parser()
    for action in parser._actions:
        if action.default not in (None, False, argparse.SUPPRESS) and action.help:
            assert str(action.default) in parser._get_formatter()._expand_help(action) or (
                "default" in action.help
            ), action.dest


def test_penalty_follows_ewc_lambda_and_warns_on_a_no_op(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert resolve_penalty(None, 0.0) == ("none", "")
    assert resolve_penalty(None, 5.0) == ("ewc", "")
    assert resolve_penalty("fedprox", 0.0) == ("fedprox", "")
    penalty, warning = resolve_penalty("ewc", 0.0)
    assert penalty == "ewc" and "--ewc-lambda 0" in warning and "no penalty" in warning
    args = _up_parser().parse_args(["--penalty", "ewc"])
    spec = spec_from_args(args)
    assert spec.penalty == "ewc" and spec.ewc_lambda == 0
    assert "warning: --penalty ewc with --ewc-lambda 0" in capsys.readouterr().err
    spec_from_args(_up_parser().parse_args(["--ewc-lambda", "5"]))
    assert capsys.readouterr().err == ""
