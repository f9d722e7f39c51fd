"""Runs a :class:`QuerySpec` over the index and streams entries in pages.

Key-ordered queries (the only kind Kubo sends) stream with keyset pagination: memory is bounded
by one page. Offsets are consumed by scanning keys only; value filters are applied as values are
read; limits stop the scan early. A query ordered by value must see every candidate before the
first result, so it sorts in memory, bounded by ``limits.max_value_sort_entries``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from walrusds.errors import ResourceExhausted
from walrusds.index.entries import Index, Located
from walrusds.index.scan import Scanner
from walrusds.query.spec import Entry, QuerySpec, sort_entries

# Reads the verified bytes of located entries (staged or packed); keys absent from the result
# were deleted meanwhile.
ValueReader = Callable[[Sequence[Located]], Awaitable[dict[bytes, bytes]]]

KEYS_PAGE = 5000
VALUES_PAGE = 1000
# Bytes of values fetched per round trip while streaming a query with values.
VALUE_CHUNK_BYTES = 8 * 1024 * 1024


class QueryEngine:
    def __init__(self, index: Index, scanner: Scanner, read_values: ValueReader,
                 max_value_sort_entries: int) -> None:
        self.index = index
        self.scanner = scanner
        self.read_values = read_values
        self.max_value_sort_entries = max_value_sort_entries

    async def run(self, spec: QuerySpec) -> AsyncIterator[list[Entry]]:
        """Yield pages of entries: the exact result of go-datastore's NaiveQueryApply."""
        if spec.key_range.empty:
            return
        if spec.sorts_by_value:
            async for page in self._sorted_by_value(spec):
                yield page
            return
        async for page in self._streamed(spec):
            yield page

    async def _streamed(self, spec: QuerySpec) -> AsyncIterator[list[Entry]]:
        after: bytes | None = None
        to_skip = spec.offset
        remaining = spec.limit or -1
        if to_skip and not spec.value_filters:
            after, exhausted = await self._skip_keys(spec, to_skip)
            if exhausted:
                return
            to_skip = 0
        page_rows = VALUES_PAGE if spec.needs_values else KEYS_PAGE
        # An unlimited keys-only scan (what Kubo's `refs local` and GC send) asks for the next
        # page before handing this one on, so PostgreSQL reads it while this process encodes
        # and sends the current one: on two cores the two overlap instead of taking turns.
        prefetch = not spec.needs_values and remaining < 0 and not to_skip
        ahead: asyncio.Task[list[tuple[bytes, int]]] | None = None
        try:
            while remaining != 0:
                want = page_rows if remaining < 0 or to_skip else min(page_rows, remaining)
                if ahead is not None:
                    rows, ahead = await ahead, None
                else:
                    rows = await self.scanner.page(spec.key_range, spec.key_filters, after,
                                                   spec.descending, want)
                if not rows:
                    return
                after = rows[-1][0]
                if prefetch and len(rows) == want:
                    ahead = asyncio.ensure_future(self.scanner.page(
                        spec.key_range, spec.key_filters, after, spec.descending, want))
                if spec.needs_values:
                    entries = await self._with_values(rows, spec)
                else:
                    entries = [Entry(k, s) for k, s in rows]
                if to_skip:
                    dropped = min(to_skip, len(entries))
                    entries = entries[dropped:]
                    to_skip -= dropped
                if remaining >= 0:
                    entries = entries[:remaining]
                    remaining -= len(entries)
                if entries:
                    yield entries
                if len(rows) < want:
                    return
        finally:
            if ahead is not None:  # the consumer stopped early: drop the page read ahead
                ahead.cancel()
                ahead.add_done_callback(_retrieve)

    async def _skip_keys(self, spec: QuerySpec, count: int) -> tuple[bytes | None, bool]:
        """Advance past ``count`` matching keys without reading values."""
        after: bytes | None = None
        while count > 0:
            want = min(KEYS_PAGE * 4, count)
            rows = await self.scanner.page(spec.key_range, spec.key_filters, after,
                                           spec.descending, want)
            if not rows:
                return after, True
            after = rows[-1][0]
            count -= len(rows)
            if len(rows) < want:
                return after, count >= 0
        return after, False

    async def _with_values(self, rows: list[tuple[bytes, int]],
                           spec: QuerySpec) -> list[Entry]:
        out: list[Entry] = []
        for chunk in _by_bytes(rows, VALUE_CHUNK_BYTES):
            located = await self.index.locate([k for k, _ in chunk])
            values = await self.read_values([located[k] for k, _ in chunk if k in located])
            for key, _ in chunk:
                value = values.get(key)
                if value is None or not spec.matches_value(value):
                    continue
                out.append(Entry(key, len(value), None if spec.keys_only else value))
        return out

    async def _sorted_by_value(self, spec: QuerySpec) -> AsyncIterator[list[Entry]]:
        collected: list[Entry] = []
        after: bytes | None = None
        while True:
            rows = await self.scanner.page(spec.key_range, spec.key_filters, after, False,
                                           VALUES_PAGE)
            if not rows:
                break
            after = rows[-1][0]
            for chunk in _by_bytes(rows, VALUE_CHUNK_BYTES):
                located = await self.index.locate([k for k, _ in chunk])
                values = await self.read_values([located[k] for k, _ in chunk
                                                 if k in located])
                for key, _ in chunk:
                    value = values.get(key)
                    if value is not None and spec.matches_value(value):
                        collected.append(Entry(key, len(value), value))
            if len(collected) > self.max_value_sort_entries:
                raise ResourceExhausted(
                    f"a query ordered by value sorts in memory and is limited to "
                    f"{self.max_value_sort_entries} entries; narrow it with a prefix or filter")
            if len(rows) < VALUES_PAGE:
                break
        sort_entries(collected, spec.effective_orders)
        end = spec.offset + spec.limit if spec.limit else None
        selected = collected[spec.offset:end]
        for i in range(0, len(selected), VALUES_PAGE):
            page = selected[i:i + VALUES_PAGE]
            if spec.keys_only:
                page = [Entry(e.key, e.size) for e in page]
            yield page


def _by_bytes(rows: list[tuple[bytes, int]], budget: int) -> list[list[tuple[bytes, int]]]:
    chunks: list[list[tuple[bytes, int]]] = []
    current: list[tuple[bytes, int]] = []
    size = 0
    for row in rows:
        if current and size + row[1] > budget:
            chunks.append(current)
            current, size = [], 0
        current.append(row)
        size += row[1]
    if current:
        chunks.append(current)
    return chunks


def _retrieve(task: asyncio.Task[list[tuple[bytes, int]]]) -> None:
    """Mark a dropped read-ahead's outcome as seen, so asyncio logs no unretrieved error."""
    if not task.cancelled():
        task.exception()
