"""The datastore: go-datastore's operations over the index, independent of gRPC.

The gRPC servicer (``walrusds.server.service``) only translates messages to and from these
calls; tests and tools can drive a :class:`Datastore` directly.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from walrusds import __version__
from walrusds.coalesce import Coalescer
from walrusds.config import Config
from walrusds.errors import (
    IndexUnavailable,
    InvalidArgument,
    NotFound,
    ReadOnlyError,
    ResourceExhausted,
    Unavailable,
    WalrusdsError,
)
from walrusds.index.entries import Index, Located, PutRow
from walrusds.index.migrate import DatasetIdentity
from walrusds.index.scan import Scanner
from walrusds.keys import check_key, show_key
from walrusds.query.engine import QueryEngine
from walrusds.query.spec import Entry, QuerySpec
from walrusds.verify import SHA2_256, expected_digest

FEATURES = ("batching", "persistent", "lookup", "query-pushdown", "batch-puts",
            "lookup-stream")
# Hash values larger than this off the event loop (hashlib releases the GIL).
HASH_IN_THREAD_BYTES = 1024 * 1024


class PackedReader(Protocol):
    """Reads and verifies the bytes of packed entries (implemented over Walrus)."""

    async def read_packed(self, entries: Sequence[Located]) -> dict[bytes, bytes]: ...


class ReadRouting(Protocol):
    """Where reads go when the node has a replica (``walrusds.index.replica.ReplicaReads``):
    lookups replica-first, Query on the index :meth:`query_index` names (None: the primary)."""

    async def sizes(self, keys: Sequence[bytes]) -> dict[bytes, int]: ...

    async def locate(self, keys: Sequence[bytes]) -> dict[bytes, Located]: ...

    def query_index(self) -> Index | None: ...

    def replica_failed(self, exc: BaseException) -> None: ...


@dataclass(frozen=True, slots=True)
class LookupResult:
    found: bool = False
    size: int = -1
    value: bytes | None = None
    error: WalrusdsError | None = None
    deferred: bool = False


@dataclass
class BatchBuilder:
    """Collects a Batch's operations as they stream in; the last op per key wins."""

    config: Config
    #: The largest value a key may hold (the pack capacity can be below limits.max_value_size).
    value_limit: Callable[[bytes], int] | None = None
    ops: dict[bytes, bytes | None] = field(default_factory=dict)
    received_bytes: int = 0
    received_ops: int = 0

    def put(self, key: bytes, value: bytes) -> None:
        self._count(key, len(value))
        _check_value(key, value, self.config.limits.max_value_size, self.value_limit)
        self.ops.pop(key, None)  # keep insertion order = order of the last op
        self.ops[key] = value

    def delete(self, key: bytes) -> None:
        self._count(key, 0)
        self.ops.pop(key, None)
        self.ops[key] = None

    def _count(self, key: bytes, nbytes: int) -> None:
        check_key(key, self.config.limits.max_key_size)
        self.received_ops += 1
        self.received_bytes += nbytes + len(key)
        lim = self.config.limits
        if self.received_ops > lim.max_batch_ops:
            raise ResourceExhausted(
                f"batch has more than {lim.max_batch_ops} operations; commit it in parts")
        if self.received_bytes > lim.max_batch_bytes:
            raise ResourceExhausted(
                f"batch holds more than {lim.max_batch_bytes} bytes; commit it in parts")


class Datastore:
    def __init__(self, *, index: Index, config: Config, identity: DatasetIdentity,
                 packed_reader: PackedReader | None = None,
                 on_write: Callable[[], None] | None = None,
                 value_limit: Callable[[bytes], int] | None = None,
                 routing: ReadRouting | None = None) -> None:
        self.index = index
        self.routing = routing
        reads: Index | ReadRouting = index if routing is None else routing
        self.config = config
        self.identity = identity
        self.packed_reader = packed_reader
        self.on_write = on_write
        self.value_limit = value_limit
        self._reads = reads
        self._sizes: Coalescer[bytes, int] = Coalescer(reads.sizes)
        self._locate: Coalescer[bytes, Located] = Coalescer(reads.locate)
        self.engine = self._engine_on(index)
        self._replica_engine: QueryEngine | None = None

    # -- writes --------------------------------------------------------------------------------

    async def put(self, key: bytes, value: bytes) -> None:
        self._writable()
        check_key(key, self.config.limits.max_key_size)
        _check_value(key, value, self.config.limits.max_value_size, self.value_limit)
        digest = await _digests([value])
        _check_block(key, value, digest[0])
        await self.index.put(PutRow(key, value, digest[0]))
        self._wrote()

    async def delete(self, key: bytes) -> None:
        self._writable()
        check_key(key, self.config.limits.max_key_size)
        await self.index.delete(key)

    def new_batch(self) -> BatchBuilder:
        self._writable()
        return BatchBuilder(self.config, self.value_limit)

    async def commit(self, batch: BatchBuilder) -> int:
        """Apply a batch in one transaction; returns the number of operations applied."""
        self._writable()
        puts = [(k, v) for k, v in batch.ops.items() if v is not None]
        deletes = [k for k, v in batch.ops.items() if v is None]
        digests = await _digests([v for _, v in puts])
        for (k, v), d in zip(puts, digests, strict=True):
            _check_block(k, v, d)
        await self.index.apply_batch([PutRow(k, v, d) for (k, v), d in zip(puts, digests,
                                                                              strict=True)],
                                     deletes)
        if puts:
            self._wrote()
        return len(batch.ops)

    # -- reads ---------------------------------------------------------------------------------

    async def has(self, key: bytes) -> bool:
        check_key(key, self.config.limits.max_key_size)
        return await self._sizes.get(key) is not None

    async def get_size(self, key: bytes) -> int:
        check_key(key, self.config.limits.max_key_size)
        size = await self._sizes.get(key)
        if size is None:
            raise NotFound(f"key {show_key(key)} not found")
        return size

    async def get(self, key: bytes) -> bytes:
        check_key(key, self.config.limits.max_key_size)
        located = await self._locate.get(key)
        if located is None:
            raise NotFound(f"key {show_key(key)} not found")
        values = await self.read_values([located])
        if key not in values:
            raise NotFound(f"key {show_key(key)} not found")
        return values[key]

    async def lookup_sizes(self, keys: Sequence[bytes]) -> list[LookupResult]:
        """Has/GetSize for many keys in one index query."""
        valid, results = self._check_lookup_keys(keys)
        sizes = await self._reads.sizes(valid) if valid else {}
        for i, key in enumerate(keys):
            if results[i] is None:
                size = sizes.get(key)
                results[i] = LookupResult(found=size is not None,
                                          size=-1 if size is None else size)
        return [r for r in results if r is not None]

    async def lookup_values(self, keys: Sequence[bytes]) -> list[LookupResult]:
        """Get for many keys: one index query, then the bytes, within a response budget."""
        valid, results = self._check_lookup_keys(keys)
        located = await self._reads.locate(valid) if valid else {}
        budget = self.config.limits.max_lookup_bytes
        wanted: dict[bytes, Located] = {}
        for i, key in enumerate(keys):
            if results[i] is not None:
                continue
            loc = located.get(key)
            if loc is None:
                results[i] = LookupResult(found=False)
            elif key in wanted:
                continue
            elif loc.size > budget:
                results[i] = LookupResult(found=True, size=loc.size, deferred=True)
            else:
                budget -= loc.size
                wanted[key] = loc
        values, errors = await self._read_each(list(wanted.values()))
        for i, key in enumerate(keys):
            if results[i] is not None:
                continue
            if key in errors:
                results[i] = LookupResult(found=True, size=wanted[key].size, error=errors[key])
            elif key in values:
                results[i] = LookupResult(found=True, size=len(values[key]), value=values[key])
            else:  # deleted between the index query and the read
                results[i] = LookupResult(found=False)
        return [r for r in results if r is not None]

    def query(self, spec: QuerySpec) -> AsyncIterator[list[Entry]]:
        target = self.routing.query_index() if self.routing is not None else None
        if target is None:
            return self.engine.run(spec)
        return self._query_replica(target, spec)

    async def _query_replica(self, target: Index, spec: QuerySpec) -> AsyncIterator[list[Entry]]:
        """A Query on the replica; one that fails there before its first page runs on the
        primary instead."""
        engine = self._replica_engine
        if engine is None or engine.index is not target:
            engine = self._replica_engine = self._engine_on(target)
        sent = False
        try:
            async for page in engine.run(spec):
                sent = True
                yield page
            return
        except IndexUnavailable as exc:
            if sent or self.routing is None:
                raise
            self.routing.replica_failed(exc)
        async for page in self.engine.run(spec):
            yield page

    def _engine_on(self, index: Index) -> QueryEngine:
        return QueryEngine(index, Scanner(index.pool, index.schema), self.read_values,
                           self.config.limits.max_value_sort_entries)

    async def read_values(self, entries: Sequence[Located]) -> dict[bytes, bytes]:
        """The verified bytes of located entries: staged from Postgres, packed from Walrus."""
        out: dict[bytes, bytes] = {}
        packed: list[Located] = []
        for loc in entries:
            if loc.value is not None:
                out[loc.key] = loc.value
            else:
                packed.append(loc)
        if packed:
            if self.packed_reader is None:
                raise Unavailable("an entry is packed on Walrus but no Walrus aggregator is "
                                  "configured")
            out.update(await self.packed_reader.read_packed(packed))
        return out

    async def _read_each(self, entries: list[Located]
                         ) -> tuple[dict[bytes, bytes], dict[bytes, WalrusdsError]]:
        """Like read_values, but one failing entry does not fail the others."""
        try:
            return await self.read_values(entries), {}
        except WalrusdsError:
            if len(entries) == 1:
                raise
        values: dict[bytes, bytes] = {}
        errors: dict[bytes, WalrusdsError] = {}
        outcomes = await asyncio.gather(*(self.read_values([e]) for e in entries),
                                        return_exceptions=True)
        for loc, outcome in zip(entries, outcomes, strict=True):
            if isinstance(outcome, WalrusdsError):
                errors[loc.key] = outcome
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                values.update(outcome)
        return values, errors

    # -- the rest ------------------------------------------------------------------------------

    async def sync(self, prefix: bytes) -> None:
        """Every acknowledged write already committed with synchronous_commit=on; Sync only
        checks that the index is reachable, so a caller learns about an outage."""
        await self.index.ping()

    async def disk_usage(self) -> int:
        return await self.index.disk_usage()

    def _check_lookup_keys(self, keys: Sequence[bytes]
                           ) -> tuple[list[bytes], list[LookupResult | None]]:
        if len(keys) > self.config.limits.max_lookup_keys:
            raise InvalidArgument(f"lookup of {len(keys)} keys is over the limit of "
                                  f"{self.config.limits.max_lookup_keys}")
        results: list[LookupResult | None] = [None] * len(keys)
        valid: list[bytes] = []
        for i, key in enumerate(keys):
            try:
                check_key(key, self.config.limits.max_key_size)
            except InvalidArgument as exc:
                results[i] = LookupResult(error=exc)
            else:
                valid.append(key)
        return list(dict.fromkeys(valid)), results

    def _writable(self) -> None:
        if self.config.read_only:
            raise ReadOnlyError("this walrusds node is read-only: send writes to an upload node")

    def _wrote(self) -> None:
        if self.on_write is not None:
            self.on_write()


def _check_value(key: bytes, value: bytes, limit: int,
                 pack_limit: Callable[[bytes], int] | None = None) -> None:
    if len(value) > limit:
        raise InvalidArgument(f"value of {len(value)} bytes for key {show_key(key)} is over "
                              f"the maximum of {limit} bytes")
    if pack_limit is not None and len(value) > (room := pack_limit(key)):
        raise InvalidArgument(
            f"value of {len(value)} bytes for key {show_key(key)} can never be stored on "
            f"Walrus: the largest pack the publisher accepts holds values of at most {room} "
            "bytes")


def _check_block(key: bytes, value: bytes, sha256: bytes) -> None:
    """A Kubo block key names the multihash of its value: refuse bytes that do not match."""
    promised = expected_digest(key)
    if promised is None:
        return
    ok = (promised.digest == sha256 if promised.code == SHA2_256
          else promised.matches(value))
    if not ok:
        raise InvalidArgument(
            f"value for key {show_key(key)} does not match the {promised.name} multihash the "
            "key names (a Kubo block key must be the hash of its bytes)")


async def _digests(values: Sequence[bytes]) -> list[bytes]:
    if sum(len(v) for v in values) > HASH_IN_THREAD_BYTES:
        return await asyncio.to_thread(lambda: [hashlib.sha256(v).digest() for v in values])
    return [hashlib.sha256(v).digest() for v in values]


__all__ = ["FEATURES", "BatchBuilder", "Datastore", "LookupResult", "PackedReader",
           "ReadRouting", "__version__"]
