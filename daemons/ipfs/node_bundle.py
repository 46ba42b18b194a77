"""The bundled IPFS node as one esbuild bundle: ~0.5 CPU-s to start instead of ~1.8.

Node.js spends most of a node's start-up resolving and reading Helia's thousands of small ESM
files; the same code bundled into one file starts in about a third of the time (docs/ipfs.md,
"Start-up"). `node_script()` returns that bundle, built under build/ipfs-node/ on first use and
rebuilt when a file of daemons/ipfs/node/ or the installed npm tree is newer than it, under a
file lock so that nodes starting side by side build it once. Without esbuild (a node_modules
from before it was a dependency) it returns node.mjs itself and logs why: slower, same node.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).resolve().parent / "node"
NODE_SCRIPT = NODE_DIR / "node.mjs"
BUILD_DIR = REPO_ROOT / "build" / "ipfs-node"
BUNDLE_NAME = "node.bundle.mjs"
ESBUILD = REPO_ROOT / "node_modules" / ".bin" / "esbuild"
# npm rewrites this file on every `npm ci`/`npm install`: a changed npm tree rebuilds the bundle
NPM_TREE = REPO_ROOT / "node_modules" / ".package-lock.json"
BUILD_TIMEOUT_S = 120.0
# Loaded from node_modules at run time, not bundled: ssdp reads its own package.json through a
# relative require, node-datachannel and sodium-native (the private network's cipher) load a
# native addon by package name.
EXTERNAL = ("@achingbrain/ssdp", "node-datachannel", "@node-datachannel/*", "sodium-native")
# CommonJS dependencies call require() for Node built-ins; an ES module has no require.
BANNER = (
    "import { createRequire as __fedchainCreateRequire } from 'node:module'; "
    "const require = __fedchainCreateRequire(import.meta.url);"
)


def node_script(build_dir: Path = BUILD_DIR, esbuild: Path = ESBUILD) -> Path:
    """The script to run the node from: the up-to-date bundle, else node.mjs (logged).

    The bundle must sit inside the repository: its `EXTERNAL` imports resolve from
    node_modules above it.
    """
    if not os.access(esbuild, os.X_OK):
        log.warning("no esbuild at %s (run `make setup`): the IPFS node runs unbundled", esbuild)
        return NODE_SCRIPT
    bundle = build_dir / BUNDLE_NAME
    if _fresh(bundle):
        return bundle
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        with open(build_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another node may be building it right now
            if not _fresh(bundle):
                _build(esbuild, bundle)
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("could not bundle the IPFS node (%s): it runs unbundled", e)
        return NODE_SCRIPT
    return bundle


def _fresh(bundle: Path) -> bool:
    try:
        built = bundle.stat().st_mtime
    except FileNotFoundError:
        return False
    return built >= _newest_source()


def _newest_source() -> float:
    paths = [p for p in NODE_DIR.rglob("*") if p.is_file()]
    paths += [p for p in (NPM_TREE, REPO_ROOT / "package-lock.json") if p.exists()]
    return max(p.stat().st_mtime for p in paths)


def _build(esbuild: Path, bundle: Path) -> None:
    # its own name: an esbuild left running by a killed builder never writes into ours
    partial = bundle.with_suffix(f".{os.getpid()}.partial.mjs")
    argv = [str(esbuild), str(NODE_SCRIPT), "--bundle", "--platform=node", "--format=esm"]
    argv += ["--target=node22", f"--outfile={partial}", f"--banner:js={BANNER}"]
    argv += [f"--external:{name}" for name in EXTERNAL] + ["--log-level=error"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    if done.returncode != 0:
        raise subprocess.SubprocessError(f"esbuild exited {done.returncode}: {done.stderr[-2000:]}")
    os.replace(partial, bundle)  # whole or not at all: a node never starts a half-written file
    log.info("bundled the IPFS node into %s", bundle)
