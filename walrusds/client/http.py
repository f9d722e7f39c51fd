"""HttpBlobStore: the Walrus HTTP API over ``httpx``, with failover between endpoints.

One call walks the endpoints best first (:class:`EndpointPool`): a failing endpoint is demoted
and the next one tried, so a dead aggregator costs one failed attempt, not one per read.
Retrying a whole call with backoff is :class:`walrusds.client.retry.RetryingBlobStore`'s job.

Reads ask for exactly ``(offset, length)`` with a single-range ``Range`` header and check the
``206``'s ``Content-Range`` and length. An aggregator that ignores ``Range`` answers ``200`` with
the whole blob: it is sliced, and kept in the byte-bounded cache so the pack's other entries
cost nothing more. Whole blobs read on purpose (``read_blob``: the reader's pack prefetch) land
in the same cache. A ranged read of a blob whose whole download is in progress does not wait
for it: on the emulator, waiting made 32 concurrent random readers a quarter slower. Nothing
here trusts the bytes: the reader verifies every entry.

Each attempt at one endpoint is reported to an optional :class:`HttpObserver` as (operation,
outcome, seconds), so metrics can count requests without this module knowing about them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import httpx

from walrusds import __version__
from walrusds.client.cache import BlobCache
from walrusds.client.endpoints import Endpoint, EndpointPool
from walrusds.client.protocol import StoreResult
from walrusds.client.responses import BLOB_ID_RE, error_for, parse_store_result
from walrusds.errors import (
    BlobNotFound,
    PayloadTooLarge,
    StoreFailed,
    WalrusError,
    WalrusProtocolError,
    WalrusRequestError,
    WalrusUnavailable,
)

__all__ = ["OUTCOMES", "HttpBlobStore", "HttpObserver", "HttpStats", "Timeouts", "outcome_of"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")

# Which error to report when every endpoint failed: the most hopeful first, so a transient
# failure anywhere keeps the call retryable.
_PRIORITY: tuple[type[WalrusError], ...] = (
    WalrusUnavailable, StoreFailed, WalrusProtocolError, WalrusRequestError, BlobNotFound,
    PayloadTooLarge)

#: What one request to one endpoint came to (the ``outcome`` an observer is told).
OUTCOMES = ("ok", "not_found", "too_large", "unavailable", "store_failed", "request_error",
            "protocol_error")
_OUTCOME_OF: tuple[tuple[type[WalrusError], str], ...] = (
    (BlobNotFound, "not_found"), (PayloadTooLarge, "too_large"),
    (WalrusUnavailable, "unavailable"), (StoreFailed, "store_failed"),
    (WalrusRequestError, "request_error"), (WalrusProtocolError, "protocol_error"))


def outcome_of(exc: WalrusError | None) -> str:
    """The outcome name of a request that raised ``exc`` (None: it succeeded)."""
    if exc is None:
        return "ok"
    for cls, name in _OUTCOME_OF:
        if isinstance(exc, cls):
            return name
    return "protocol_error"


class HttpObserver(Protocol):
    """Told about every request to one endpoint; must be cheap and must not raise."""

    def request_done(self, operation: str, outcome: str, seconds: float) -> None:
        """``operation`` is "store" or "read"; ``outcome`` one of :data:`OUTCOMES`."""
        ...


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float = 60.0
    store: float = 600.0


@dataclass
class HttpStats:
    """Counters for tests, ``walrusds stats`` and benchmarks."""

    stores: int = 0
    stored_bytes: int = 0
    range_reads: int = 0
    whole_reads: int = 0
    range_ignored: int = 0
    failovers: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class HttpBlobStore:
    def __init__(self, publishers: Sequence[str], aggregators: Sequence[str], *,
                 token: str | None = None, timeouts: Timeouts | None = None,
                 cache_bytes: int = 0, max_connections: int = 64,
                 observer: HttpObserver | None = None) -> None:
        self.publishers = EndpointPool(publishers)
        self.aggregators = EndpointPool(aggregators)
        self.timeouts = timeouts or Timeouts()
        self.cache = BlobCache(cache_bytes)
        self.stats = HttpStats()
        self.observer = observer
        self._token = token
        t = self.timeouts
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(t.read, connect=t.connect),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
            headers={"User-Agent": f"walrusds/{__version__}"},
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def forget(self, blob_id: str) -> None:
        self.cache.forget(blob_id)

    # -- store ---------------------------------------------------------------------------------

    async def store(self, data: bytes, *, epochs: int) -> StoreResult:
        if not self.publishers:
            raise WalrusRequestError("store: no Walrus publisher is configured "
                                     "(walrus.publishers)")

        async def at(endpoint: Endpoint) -> StoreResult:
            return await self._store_at(endpoint, data, epochs)

        result = await self._walk(self.publishers, at, operation="store",
                                  demote_on_too_large=False)
        self.stats.stores += 1
        self.stats.stored_bytes += len(data)
        return result

    async def _store_at(self, endpoint: Endpoint, data: bytes, epochs: int) -> StoreResult:
        headers = {"Content-Type": "application/octet-stream"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        t = self.timeouts
        response = await self._request(
            "store", endpoint, "PUT", "/v1/blobs", params={"epochs": str(epochs)},
            content=data, headers=headers,
            timeout=httpx.Timeout(t.store, connect=t.connect))
        if response.status_code != 200:
            raise error_for(response, endpoint.name, what="store", size=len(data))
        return parse_store_result(response.content, len(data), endpoint.name)

    # -- reads ---------------------------------------------------------------------------------

    async def read_range(self, blob_id: str, offset: int, length: int, *,
                         rotate: int = 0) -> bytes:
        _check_blob_id(blob_id)
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        if length == 0:
            return b""
        cached = self.cache.get(blob_id)
        if cached is not None:
            return _slice(cached, offset, length, "a cached blob")
        async def at(endpoint: Endpoint) -> bytes:
            return await self._range_at(endpoint, blob_id, offset, length)

        return await self._walk(self.aggregators, at, operation="read", rotate=rotate)

    async def read_blob(self, blob_id: str) -> bytes:
        _check_blob_id(blob_id)

        async def fetch() -> bytes:
            async def at(endpoint: Endpoint) -> bytes:
                return await self._whole_at(endpoint, blob_id)
            return await self._walk(self.aggregators, at, operation="read")

        return await self.cache.get_or_fetch(blob_id, fetch)

    async def _range_at(self, endpoint: Endpoint, blob_id: str, offset: int,
                        length: int) -> bytes:
        end = offset + length - 1
        self.stats.range_reads += 1
        response = await self._request("read", endpoint, "GET", f"/v1/blobs/{blob_id}",
                                       headers={"Range": f"bytes={offset}-{end}"})
        status = response.status_code
        if status == 206:
            body = response.content
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if (match is None or int(match[1]) != offset or int(match[2]) != end
                    or len(body) != length):
                raise WalrusProtocolError(
                    f"read: {endpoint.name} answered 206 with a different range or length "
                    f"than bytes {offset}-{end}", status=206, endpoint=endpoint.name)
            return body
        if status == 200:
            # The aggregator ignored Range: this is the whole blob.
            self.stats.range_ignored += 1
            body = response.content
            self.cache.put(blob_id, body)
            return _slice(body, offset, length, f"the blob from {endpoint.name}")
        if status == 416:
            # Some aggregators refuse ranges they cannot serve; the whole blob decides.
            whole = await self._whole_at(endpoint, blob_id)
            self.cache.put(blob_id, whole)
            return _slice(whole, offset, length, f"the blob from {endpoint.name}")
        raise error_for(response, endpoint.name, what="read")

    async def _whole_at(self, endpoint: Endpoint, blob_id: str) -> bytes:
        self.stats.whole_reads += 1
        response = await self._request("read", endpoint, "GET", f"/v1/blobs/{blob_id}")
        if response.status_code != 200:
            raise error_for(response, endpoint.name, what="read")
        return response.content

    # -- plumbing ------------------------------------------------------------------------------

    async def _request(self, what: str, endpoint: Endpoint, method: str, path: str,
                       **kwargs: object) -> httpx.Response:
        try:
            return await self._client.request(method, endpoint.base + path,
                                              **kwargs)  # type: ignore[arg-type]
        except httpx.TimeoutException:
            raise WalrusUnavailable(f"{what}: {endpoint.name} timed out",
                                    endpoint=endpoint.name) from None
        except httpx.HTTPError as exc:
            # Connection refused or reset, a body cut short, a broken HTTP message.
            raise WalrusUnavailable(f"{what}: {endpoint.name} failed: "
                                    f"{type(exc).__name__}", endpoint=endpoint.name) from None

    async def _walk(self, pool: EndpointPool, call: Callable[[Endpoint], Awaitable[T]], *,
                    operation: str, demote_on_too_large: bool = True, rotate: int = 0) -> T:
        """Try ``call`` on each endpoint, best first, until one succeeds."""
        if not pool:
            raise WalrusRequestError("no Walrus aggregator is configured (walrus.aggregators)")
        failures: list[WalrusError] = []
        order = pool.ordered()
        shift = rotate % len(order)
        for endpoint in order[shift:] + order[:shift]:
            started = time.perf_counter()
            try:
                result = await call(endpoint)
            except WalrusError as exc:
                self._observe(operation, exc, started)
                failures.append(exc)
                name = type(exc).__name__
                self.stats.errors[name] = self.stats.errors.get(name, 0) + 1
                # A 404 is about the blob and a 413 about the size, not the endpoint's health.
                if not isinstance(exc, BlobNotFound) and (
                        demote_on_too_large or not isinstance(exc, PayloadTooLarge)):
                    pool.failed(endpoint)
                log.debug("%s", exc)
                self.stats.failovers += 1
                continue
            self._observe(operation, None, started)
            pool.succeeded(endpoint)
            return result
        self.stats.failovers -= 1  # the last failure had nowhere to go
        raise _most_hopeful(failures)

    def _observe(self, operation: str, exc: WalrusError | None, started: float) -> None:
        if self.observer is not None:
            self.observer.request_done(operation, outcome_of(exc),
                                       time.perf_counter() - started)


def _most_hopeful(failures: list[WalrusError]) -> WalrusError:
    for kind in _PRIORITY:
        for exc in failures:
            if isinstance(exc, kind):
                return exc
    return failures[-1]


def _check_blob_id(blob_id: str) -> None:
    if not BLOB_ID_RE.match(blob_id):
        raise WalrusRequestError(f"{blob_id[:60]!r} is not a Walrus blob ID")


def _slice(blob: bytes, offset: int, length: int, what: str) -> bytes:
    if offset + length > len(blob):
        raise WalrusProtocolError(f"read: {what} has {len(blob)} bytes, too short for bytes "
                                  f"{offset}-{offset + length - 1}")
    return blob[offset:offset + length]
