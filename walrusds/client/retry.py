"""RetryingBlobStore: bounded retries with exponential backoff, jitter and a deadline.

Built on tenacity. Retried: transient failures (:class:`WalrusUnavailable`: 429, 5xx, timeouts,
resets), a 200 whose body reports an ``error`` (:class:`StoreFailed`) and answers that break the
protocol (:class:`WalrusProtocolError`: a truncated or mis-sized body). A read's 404 is retried
only briefly (CDN-fronted aggregators cache a 404 for a few seconds right after a store).
Never retried: 413 (:class:`PayloadTooLarge` — the flusher splits instead) and other 4xx.
Every call is bounded by an overall deadline, whatever the number of attempts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from walrusds.client.protocol import BlobStore, StoreResult
from walrusds.errors import (
    BlobNotFound,
    StoreFailed,
    WalrusProtocolError,
    WalrusUnavailable,
)

__all__ = ["RetryPolicy", "RetryingBlobStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE = (WalrusUnavailable, StoreFailed, WalrusProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    initial: float = 0.25
    max_wait: float = 10.0
    jitter: float = 0.5
    #: Overall seconds for one call, every attempt and wait included.
    deadline: float = 900.0
    #: Attempts for a read answered 404 (a CDN's cached "not found" right after a store).
    not_found_attempts: int = 2


class RetryingBlobStore:
    """Wraps any :class:`BlobStore`; itself a BlobStore."""

    def __init__(self, inner: BlobStore, policy: RetryPolicy | None = None) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()

    async def store(self, data: bytes, *, epochs: int) -> StoreResult:
        return await self._call("store", lambda: self.inner.store(data, epochs=epochs),
                                read=False)

    async def read_range(self, blob_id: str, offset: int, length: int, *,
                         rotate: int = 0) -> bytes:
        return await self._call(
            "read", lambda: self.inner.read_range(blob_id, offset, length, rotate=rotate),
            read=True)

    async def read_blob(self, blob_id: str) -> bytes:
        return await self._call("read", lambda: self.inner.read_blob(blob_id), read=True)

    def forget(self, blob_id: str) -> None:
        self.inner.forget(blob_id)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]], *, read: bool) -> T:
        policy = self.policy

        def should_retry(state: RetryCallState) -> bool:
            outcome = state.outcome
            if outcome is None or not outcome.failed:
                return False
            exc = outcome.exception()
            if isinstance(exc, RETRYABLE):
                return True
            return (read and isinstance(exc, BlobNotFound)
                    and state.attempt_number < policy.not_found_attempts)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.info("Walrus %s failed (attempt %d), retrying in %.2f s: %s", what,
                     state.attempt_number, wait, exc)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.deadline),
            wait=wait_exponential_jitter(multiplier=policy.initial, max=policy.max_wait,
                                         jitter=policy.jitter),
            retry=should_retry,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async with asyncio.timeout(policy.deadline):
                async for attempt in retrying:
                    with attempt:
                        return await fn()
        except TimeoutError:
            raise WalrusUnavailable(f"Walrus {what}: no success within the "
                                    f"{policy.deadline:g} s deadline") from None
        raise AssertionError("unreachable: tenacity re-raises the last failure")
