"""Blob storage over the Kubo RPC API (`aioipfs`): put pins, get checks size and digest.

Works unchanged against a Kubo daemon (`ipfs daemon`) and fedchain's bundled node
(`fedchain ipfs`). Failures are typed by what the caller should do: `IpfsUnavailable` and
`IpfsTimeout` are transient (retry with backoff); `ContentRejected` is final (never retry).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import aiohttp
import aioipfs
from multiformats_cid import make_cid
from yarl import URL

from daemons.errors import FedchainError, RejectedUpdate, TransientError

T = TypeVar("T")
CHUNK_SIZE = 262144
READ_CHUNK = 1 << 16
# A `cat` that gets no byte for this long is asked again (same deadline): a bitswap want
# can hang on a race in the node while its block is already in the node's store (docs/ipfs.md)
STALL_RETRY_S = 5.0
log = logging.getLogger("fedchain.ipfs")
_HINT = "is the IPFS daemon running there? start it with `fedchain ipfs` or `ipfs daemon`"


class IpfsUnavailable(TransientError):
    """The IPFS API could not be reached or failed the request: retry with backoff."""


class IpfsTimeout(TransientError):
    """The content was not retrieved in time (unknown CID, no provider yet): retry later."""


class IpfsRequestError(FedchainError):
    """The IPFS API refused the request itself (HTTP 400/403/404): a bug or a wrong api_url."""


class ContentRejected(RejectedUpdate):
    """The content is unacceptable (digest mismatch, too large, malformed CID): never retry."""

    def __init__(self, reason: str, detail: str = "", cid: str = "") -> None:
        super().__init__(reason, detail)
        self.cid = cid


class _Stalled(Exception):
    """A `cat` got no byte for `stall_retry_s` (internal: asked again until the deadline)."""


@dataclass(frozen=True)
class StoredBlob:
    """A blob as added to IPFS: its CIDv1, sha256 digest (32 bytes) and size in bytes."""

    cid: str
    digest: bytes
    size: int


def check_cid(cid: str) -> str:
    """Return `cid` if it parses as a CID; raise `ContentRejected("bad_cid")` otherwise."""
    try:
        make_cid(cid)
    except Exception as exc:  # multiformats_cid raises several unrelated types
        raise ContentRejected("bad_cid", f"{cid!r} is not a CID: {exc}", cid=str(cid)) from exc
    return cid


class IpfsStorage:
    """Async context manager over one Kubo RPC endpoint (`api_url`, e.g. http://127.0.0.1:5001)."""

    def __init__(
        self,
        api_url: str,
        chunk_size: int = CHUNK_SIZE,
        request_timeout_s: float = 300.0,
        stall_retry_s: float = STALL_RETRY_S,
    ) -> None:
        url = URL(api_url)
        if url.scheme not in ("http", "https") or not url.host or url.port is None:
            raise ValueError(f"api_url {api_url!r} must look like http://127.0.0.1:5001")
        if not 1 <= chunk_size <= 1048576:
            raise ValueError(f"chunk_size {chunk_size} must be 1..1048576 bytes (Kubo's limit)")
        self.api_url = api_url.rstrip("/")
        self.chunk_size = chunk_size
        self.request_timeout_s = request_timeout_s
        self.stall_retry_s = stall_retry_s
        self._url = url
        self._client: aioipfs.AsyncIPFS | None = None
        # called with the error's class name on every failed API call (a daemon's metrics)
        self.on_error: Callable[[str], None] | None = None

    @property
    def client(self) -> aioipfs.AsyncIPFS:
        if self._client is None:
            raise RuntimeError("IpfsStorage is not open: use `async with IpfsStorage(url) as s`")
        return self._client

    async def __aenter__(self) -> Self:
        self._client = aioipfs.AsyncIPFS(
            host=self._url.host, port=self._url.port, scheme=self._url.scheme
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _call(self, what: str, awaitable: Awaitable[T], timeout_s: float | None = None) -> T:
        """Await one RPC call, translating aioipfs/aiohttp failures into the typed errors."""
        try:
            return await self._typed_call(what, awaitable, timeout_s)
        except FedchainError as exc:
            if self.on_error is not None:
                self.on_error(type(exc).__name__)
            raise

    async def _typed_call(self, what: str, awaitable: Awaitable[T], timeout_s: float | None) -> T:
        limit = self.request_timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(limit):
                result = await awaitable
        except TimeoutError as exc:
            raise IpfsTimeout(f"{what}: no answer from {self.api_url} in {limit:g}s") from exc
        except aioipfs.APIError as exc:
            raise self._api_error(what, exc) from exc
        except (aiohttp.ClientError, aioipfs.IPFSConnectionError, OSError) as exc:
            raise IpfsUnavailable(f"{what}: cannot reach {self.api_url} ({exc}); {_HINT}") from exc
        if result is None:  # aioipfs swallows connection errors on some calls and returns None
            raise IpfsUnavailable(f"{what}: no reply from {self.api_url}; {_HINT}")
        return result

    def _api_error(self, what: str, exc: aioipfs.APIError) -> FedchainError:
        message = f"{what}: {self.api_url} answered HTTP {exc.http_status}: {exc.message}"
        if isinstance(exc, aioipfs.EndpointNotFoundError | aioipfs.RPCAccessDenied):
            return IpfsRequestError(f"{what}: {self.api_url} is not a Kubo RPC API we may use")
        if exc.http_status == 400:
            return IpfsRequestError(message)
        if "deadline exceeded" in str(exc.message) or "timeout" in str(exc.message).lower():
            return IpfsTimeout(message)
        return IpfsUnavailable(message)

    async def put(self, data: bytes) -> StoredBlob:
        """Add and pin `data` (CIDv1, raw leaves, fixed-size chunks); returns CID and sha256."""
        added = await self._call(
            "add",
            self.client.core.add_bytes(
                bytes(data),
                cid_version=1,
                raw_leaves=True,
                chunker=f"size-{self.chunk_size}",
                pin=True,
            ),
        )
        return StoredBlob(
            cid=str(added["Hash"]), digest=hashlib.sha256(data).digest(), size=len(data)
        )

    async def get(
        self, cid: str, digest: bytes, max_bytes: int, timeout_s: float, source: str | None = None
    ) -> bytes:
        """The blob `cid`, read only up to max_bytes + 1 and checked against `digest`.

        `source` names who published it (the org passes the submitting client's address): the
        bundled node then asks the peer that delivered that source's last blob first, instead
        of every connected peer (docs/ipfs.md, "Who published it"); Kubo ignores it.
        """
        _check_get_args(digest, max_bytes, timeout_s)
        data = await self.cat(cid, max_bytes, timeout_s, source)
        if hashlib.sha256(data).digest() != digest:
            actual = hashlib.sha256(data).hexdigest()
            raise ContentRejected(
                "digest", f"{cid}: sha256 is 0x{actual}, expected 0x{digest.hex()}", cid=cid
            )
        return data

    async def cat(
        self, cid: str, max_bytes: int, timeout_s: float, source: str | None = None
    ) -> bytes:
        """The bytes of `cid`, read only up to max_bytes + 1, with no digest check.

        For content no digest is published for (manifests), or where the caller reports a
        mismatch instead of refusing it; use `get` for anything a daemon acts on.
        """
        _check_read_args(max_bytes, timeout_s)
        check_cid(cid)
        reading = self._read_asking_again(cid, max_bytes, timeout_s, source)
        return await self._call(f"cat {cid}", reading, timeout_s)

    async def _read_asking_again(
        self, cid: str, max_bytes: int, timeout_s: float, source: str | None
    ) -> bytes:
        """`_read_capped` until it succeeds; one that stalls is asked again (the caller's
        `_call` holds the one deadline, `timeout_s` from now, across all attempts)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        attempt = 1
        while True:
            left = max(deadline - loop.time(), 0.001)
            try:
                return await self._read_capped(cid, max_bytes, left, source)
            except _Stalled:
                log.warning(
                    "cat %s: no data from %s for %gs; asking again (attempt %d, %.1fs left)",
                    cid,
                    self.api_url,
                    self.stall_retry_s,
                    attempt + 1,
                    deadline - loop.time(),
                )
                attempt += 1

    async def _read_capped(
        self, cid: str, max_bytes: int, timeout_s: float, source: str | None
    ) -> bytes:
        # `length` asks the node for at most max_bytes + 1; we also stop reading there.
        timeout_ms = max(1, math.ceil(timeout_s * 1000))
        params = {"arg": cid, "length": str(max_bytes + 1), "timeout": f"{timeout_ms}ms"}
        if source:
            params["source"] = source
        loop = asyncio.get_running_loop()
        stall = self.stall_retry_s
        try:
            async with asyncio.timeout(stall) as quiet:  # rescheduled on every byte
                async with self._post("cat", params) as resp:
                    announced = resp.headers.get("X-Content-Length")
                    if announced is not None and int(announced) > max_bytes:
                        raise _too_large(cid, max_bytes)
                    data = bytearray()
                    async for chunk in resp.content.iter_chunked(READ_CHUNK):
                        quiet.reschedule(loop.time() + stall)
                        data += chunk
                        if len(data) > max_bytes:
                            raise _too_large(cid, max_bytes)
        except TimeoutError as exc:
            raise _Stalled(cid) from exc
        if announced is not None and len(data) < int(announced):
            raise IpfsUnavailable(f"cat {cid}: stream ended after {len(data)} of {announced} bytes")
        return bytes(data)

    @asynccontextmanager
    async def _post(self, path: str, params: dict[str, str]) -> AsyncIterator[Any]:
        """A streaming POST through aioipfs' session; HTTP errors become aioipfs.APIError."""
        client = self.client
        async with client.session.post(
            client.api_endpoint(path), params=params, auth=client.auth
        ) as resp:
            if resp.status != 200:
                client.core.handle_error(resp, await resp.read())
            yield resp

    async def pin(self, cid: str, timeout_s: float | None = None) -> None:
        """Pin `cid` recursively (fetching it if needed); pinning twice is fine."""
        check_cid(cid)
        await self._call(
            f"pin add {cid}", _drain(self.client.pin.add(cid, progress=False)), timeout_s
        )

    async def unpin(self, cid: str) -> None:
        """Remove the recursive pin on `cid`; unpinning something not pinned is fine."""
        check_cid(cid)
        try:
            await self._call(f"pin rm {cid}", self.client.pin.rm(cid))
        except IpfsUnavailable as exc:
            if isinstance(exc.__cause__, aioipfs.NotPinnedError):
                return
            raise

    async def is_pinned(self, cid: str) -> bool:
        """Whether `cid` is pinned recursively on this node."""
        check_cid(cid)
        try:
            reply = await self._call(f"pin ls {cid}", self.client.pin.ls(cid, pintype="recursive"))
        except IpfsUnavailable as exc:
            if "not pinned" in str(getattr(exc.__cause__, "message", "")):
                return False
            raise
        return cid in reply.get("Keys", {})

    async def connect(self, multiaddr: str) -> None:
        """Open a swarm connection to a peer (`/ip4/.../tcp/.../p2p/<id>`), e.g. on a testnet."""
        await self._call(f"swarm connect {multiaddr}", self.client.swarm.connect(multiaddr))

    async def gc(self) -> list[str]:
        """Run `repo/gc`; returns the removed blocks as the node names them (Kubo: CIDv1 raw)."""
        entries = await self._call("repo gc", _collect(self.client.repo.gc()))
        return [str(e["Key"]["/"]) for e in entries if isinstance(e.get("Key"), dict)]

    async def node_id(self) -> dict[str, Any]:
        """The node's `id` reply (ID, Addresses, AgentVersion)."""
        reply: dict[str, Any] = await self._call("id", self.client.core.id())
        return reply


def _check_get_args(digest: bytes, max_bytes: int, timeout_s: float) -> None:
    if len(digest) != 32:
        raise ValueError(f"digest must be 32 raw sha256 bytes, got {len(digest)}")
    _check_read_args(max_bytes, timeout_s)


def _check_read_args(max_bytes: int, timeout_s: float) -> None:
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")


def _too_large(cid: str, max_bytes: int) -> ContentRejected:
    return ContentRejected("too_large", f"{cid} is larger than {max_bytes} bytes", cid=cid)


async def _drain(gen: AsyncIterator[Any]) -> bool:
    async for _ in gen:
        pass
    return True


async def _collect(gen: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry async for entry in gen]
