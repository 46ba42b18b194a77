"""The IPFS node's esbuild bundle: built once, rebuilt when stale, node.mjs when it cannot be."""

import logging
import os
from pathlib import Path

import pytest

from daemons.ipfs import node_bundle
from daemons.ipfs.bundled import BundledIpfsNode
from daemons.ipfs.node_bundle import ESBUILD, NODE_SCRIPT, node_script


def test_esbuild_is_installed() -> None:
    assert os.access(ESBUILD, os.X_OK), "npm ci installs esbuild (package.json): run make setup"


def test_the_bundle_is_built_once_and_rebuilt_when_a_source_is_newer(tmp_path: Path) -> None:
    bundle = node_script(tmp_path)
    assert bundle == tmp_path / "node.bundle.mjs"
    text = bundle.read_text()
    assert "createHelia" in text and "__fedchainCreateRequire" in text
    built = bundle.stat().st_mtime_ns
    assert node_script(tmp_path) == bundle and bundle.stat().st_mtime_ns == built  # fresh
    os.utime(bundle, (0, 0))  # older than every source now
    assert node_script(tmp_path) == bundle
    assert bundle.stat().st_mtime > 0
    assert not list(tmp_path.glob("*.partial.mjs"))


def test_without_esbuild_the_node_runs_unbundled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=node_bundle.__name__):
        assert node_script(tmp_path, tmp_path / "no-esbuild") == NODE_SCRIPT
    assert "no esbuild" in caplog.text and "make setup" in caplog.text


def test_a_failed_build_says_why_and_falls_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "esbuild"
    broken.write_text("#!/bin/sh\necho 'syntax error in node.mjs' >&2\nexit 1\n")
    broken.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger=node_bundle.__name__):
        assert node_script(tmp_path / "out", broken) == NODE_SCRIPT
    assert "esbuild exited 1" in caplog.text and "syntax error in node.mjs" in caplog.text
    assert not (tmp_path / "out" / "node.bundle.mjs").exists()


def test_bundled_nodes_start_from_the_bundle(tmp_path: Path) -> None:
    node = BundledIpfsNode(tmp_path / "repo", log_path=tmp_path / "node.log")
    assert str(node_bundle.BUILD_DIR / "node.bundle.mjs") in node.command()
