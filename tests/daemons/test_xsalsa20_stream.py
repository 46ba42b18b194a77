"""The private network's cipher (daemons/ipfs/node/xsalsa20-stream: libsodium's XSalsa20 through
sodium-native, or @noble/ciphers' where the addon cannot load, behind xsalsa20's streaming API,
installed over xsalsa20 1.2.0 by package.json "overrides").

Its own node tests compare both back-ends with the original package's output and with each
other; here each is also checked against libsodium's XSalsa20 through PyNaCl (the construction
Kubo's pnet uses), so a keyed Helia node and a keyed Kubo node produce the same bytes on the wire.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import nacl.bindings
import pytest

from daemons.ipfs.bundled import REPO_ROOT, find_node

PACKAGE = REPO_ROOT / "daemons" / "ipfs" / "node" / "xsalsa20-stream"
pytestmark = pytest.mark.timeout(180)

# The key stream of `n` bytes, produced in updates of the given odd sizes, as hex on stdout.
KEY_STREAM_SCRIPT = """
import xsalsa20 from 'xsalsa20'
const [nonce, key, sizes] = process.argv.slice(1)
const x = xsalsa20(Buffer.from(nonce, 'hex'), Buffer.from(key, 'hex'))
const parts = sizes.split(',').map((n) => Buffer.from(x.update(new Uint8Array(Number(n)))))
process.stdout.write(Buffer.concat(parts).toString('hex'))
"""


def test_the_package_passes_its_node_tests() -> None:
    out = subprocess.run(
        [find_node(), "--test", str(PACKAGE / "test.mjs")],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    # five tests per back-end (libsodium and noble) and two across them
    assert "# fail 0" in out.stdout and "# pass 12" in out.stdout


def test_pnet_resolves_xsalsa20_to_the_local_package() -> None:
    """npm ci honours the override: @libp2p/pnet imports this package, not xsalsa20 1.2.0."""
    script = (
        "import { createRequire } from 'node:module';"
        "const pnet = createRequire(import.meta.resolve('@libp2p/pnet'));"
        "process.stdout.write(pnet.resolve('xsalsa20'))"
    )
    out = subprocess.run(
        [find_node(), "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout).resolve() == (PACKAGE / "index.js").resolve()


def test_the_node_uses_libsodium_unless_told_otherwise() -> None:
    script = "import { backend } from 'xsalsa20'; process.stdout.write(backend)"
    for env, expected in (({}, "libsodium"), ({"FEDCHAIN_XSALSA20": "noble"}, "noble")):
        out = subprocess.run(
            [find_node(), "--input-type=module", "-e", script],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
            env={**os.environ, **env},
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout == expected


@pytest.mark.parametrize("backend", ["libsodium", "noble"])
@pytest.mark.parametrize("sizes", [[1, 63, 64, 65, 3, 1000, 2], [4096], [7] * 150 + [333]])
def test_key_stream_equals_libsodiums_xsalsa20(backend: str, sizes: list[int]) -> None:
    key, nonce = bytes(range(32)), bytes(range(100, 124))
    total = sum(sizes)
    cuts = ",".join(["32", *map(str, sizes)])
    out = subprocess.run(
        [find_node(), "--input-type=module", "-e", KEY_STREAM_SCRIPT, nonce.hex(), key.hex(), cuts],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env={**os.environ, "FEDCHAIN_XSALSA20": "" if backend == "libsodium" else backend},
    )
    assert out.returncode == 0, out.stderr
    stream = bytes.fromhex(out.stdout)
    # NaCl's secretbox is XSalsa20 whose first 32 key-stream bytes key Poly1305; the message is
    # XORed with the stream from byte 32 on, after a 16-byte tag: zeros give the stream itself.
    boxed = nacl.bindings.crypto_secretbox(bytes(total), nonce, key)
    assert len(stream) == 32 + total
    assert stream[32:] == boxed[16:]
