"""The blob port: a content-addressed store (IPFS), the local blob cache and the fetcher.

The real store is `IpfsStorage` (daemons/ipfs/client.py); handler unit tests plug in an
in-memory fake with the same methods (tests/daemons/fakes.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Any, Protocol


class Storage(Protocol):
    """Content-addressed blob store (IPFS): put pins, get checks digest and size."""

    async def put(self, data: bytes) -> Any: ...

    async def get(
        self, cid: str, digest: bytes, max_bytes: int, timeout_s: float, source: str | None = None
    ) -> bytes: ...

    async def pin(self, cid: str, timeout_s: float | None = None) -> None: ...

    async def unpin(self, cid: str) -> None: ...


class BlobCache:
    """Blobs this daemon already fetched and checked, kept on disk by sha256 (crash-safe)."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: bytes) -> Path:
        return self.dir / digest.hex()

    def get(self, digest: bytes) -> bytes | None:
        """The cached blob with this digest, or None (a corrupt file counts as absent)."""
        path = self._path(digest)
        if not path.exists():
            return None
        data = path.read_bytes()
        return data if hashlib.sha256(data).digest() == digest else None

    def has(self, digest: bytes) -> bool:
        """Whether a blob with this digest is stored (not re-checked; `get` checks)."""
        return self._path(digest).exists()

    def put(self, data: bytes) -> bytes:
        """Store `data` atomically (write + rename); returns its digest."""
        digest = hashlib.sha256(data).digest()
        tmp = self._path(digest).with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self._path(digest))
        return digest

    def drop(self, digest: bytes) -> None:
        """Forget a blob (retention)."""
        self._path(digest).unlink(missing_ok=True)


class BlobFetcher:
    """Digest-checked, size-capped blobs from the local cache, else from IPFS (then cached).

    One fetcher per daemon: the storage, the cache and the IPFS timeout are fixed; each call
    names the blob (CID and the digest the chain holds) and its size cap.
    """

    def __init__(self, storage: Storage, cache: BlobCache, timeout_s: float) -> None:
        self.storage, self.cache, self.timeout_s = storage, cache, timeout_s

    async def get(
        self, cid: str, digest: bytes, max_bytes: int, source: str | None = None
    ) -> bytes:
        """A blob from the cache, else from IPFS (digest and size checked there), then cached.

        `source`: who published it, if known (`Storage.get`).
        """
        data = self.cache.get(digest)
        if data is None:
            data = await self.storage.get(cid, digest, max_bytes, self.timeout_s, source=source)
            self.cache.put(data)
        return data


def raw_cid_digest(cid: str) -> bytes | None:
    """sha256 of the content of a single-block raw-leaf CIDv1 (base32), else None.

    Small blobs (the round config) are one raw block, so their CID's multihash *is* the
    sha256 of the bytes; that lets a client check them with the same digest-checked `get`.
    """
    if not cid.startswith("b"):
        return None
    text = cid[1:].upper()
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (ValueError, binascii.Error):
        return None
    # version 1, codec raw (0x55), multihash sha2-256 (0x12), length 32
    if len(raw) != 36 or raw[:4] != bytes([0x01, 0x55, 0x12, 0x20]):
        return None
    return raw[4:]
