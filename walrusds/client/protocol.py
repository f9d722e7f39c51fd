"""The BlobStore protocol: the three things walrusds asks of Walrus."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What a publisher reported for one store.

    ``start_epoch`` is the epoch the blob was registered in (the current epoch of the write
    committee), unknown (None) when the publisher answered ``alreadyCertified``. ``end_epoch`` is
    exclusive: the blob is unreadable from the start of that epoch. ``cost`` is in FROST,
    None when nothing was charged or reported.
    """

    blob_id: str
    size: int
    encoded_length: int
    start_epoch: int | None
    end_epoch: int
    cost: int | None
    object_id: str | None
    already_certified: bool


class BlobStore(Protocol):
    """Store and read Walrus blobs. Errors are :class:`walrusds.errors.WalrusError` subclasses."""

    async def store(self, data: bytes, *, epochs: int) -> StoreResult:
        """Store ``data`` for ``epochs`` epochs ahead of the current one."""
        ...

    async def read_range(self, blob_id: str, offset: int, length: int, *,
                         rotate: int = 0) -> bytes:
        """Exactly ``length`` bytes of the blob from ``offset`` (never fewer, never more).

        ``rotate`` starts with the n-th best aggregator instead of the best: a caller whose
        bytes failed verification asks another aggregator this way.
        """
        ...

    async def read_blob(self, blob_id: str) -> bytes:
        """The whole blob."""
        ...

    def forget(self, blob_id: str) -> None:
        """Drop any cached bytes of the blob (they failed verification)."""
        ...

    async def aclose(self) -> None:
        ...
