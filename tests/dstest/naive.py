"""Reference semantics: a direct port of go-datastore's NaiveQueryApply and query.Sort.

Deliberately independent of walrusds.query, so the suite checks the service against
go-datastore's definition rather than against itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

OPS: dict[str, Callable[[bytes, bytes], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


@dataclass(frozen=True)
class KeyCompare:
    op: str
    key: bytes


@dataclass(frozen=True)
class KeyPrefix:
    prefix: bytes


@dataclass(frozen=True)
class ValueCompare:
    op: str
    value: bytes


@dataclass(frozen=True)
class CustomFilter:
    """Arbitrary Go code in a Filter: the client must apply it itself."""

    fn: Callable[[Entry], bool]


# Orders: "key", "key-desc", "value", "value-desc", or a comparison function (OrderByFunction).
OrderT = str | Callable[["Entry", "Entry"], int]


@dataclass
class Entry:
    key: bytes
    value: bytes | None = None
    size: int = -1


@dataclass
class Query:
    prefix: bytes = b""
    filters: list[Any] = field(default_factory=list)
    orders: list[OrderT] = field(default_factory=list)
    limit: int = 0
    offset: int = 0
    keys_only: bool = False
    returns_sizes: bool = False


def go_path_clean(p: bytes) -> bytes:
    out: list[bytes] = []
    for part in p.split(b"/"):
        if part in (b"", b"."):
            continue
        if part == b"..":
            if out:
                out.pop()
            continue
        out.append(part)
    return b"/" + b"/".join(out)


def filter_matches(f: Any, e: Entry) -> bool:
    if isinstance(f, KeyCompare):
        return OPS[f.op](e.key, f.key)
    if isinstance(f, KeyPrefix):
        return e.key.startswith(f.prefix)
    if isinstance(f, ValueCompare):
        return OPS[f.op](e.value or b"", f.value)
    if isinstance(f, CustomFilter):
        return f.fn(e)
    raise TypeError(f)


def _cmp(a: bytes, b: bytes) -> int:
    return (a > b) - (a < b)


def compare_by(order: OrderT, a: Entry, b: Entry) -> int:
    if callable(order):
        return order(a, b)
    if order == "key":
        return _cmp(a.key, b.key)
    if order == "key-desc":
        return -_cmp(a.key, b.key)
    if order == "value":
        return _cmp(a.value or b"", b.value or b"")
    if order == "value-desc":
        return -_cmp(a.value or b"", b.value or b"")
    raise ValueError(order)


def sort(orders: list[OrderT], entries: list[Entry]) -> None:
    """query.Sort: orders in turn, then key ascending."""
    def less(a: Entry, b: Entry) -> int:
        for o in orders:
            c = compare_by(o, a, b)
            if c:
                return c
        return _cmp(a.key, b.key)

    entries.sort(key=functools.cmp_to_key(less))


def naive_query_apply(q: Query, entries: list[Entry]) -> list[Entry]:
    res = list(entries)
    if q.prefix:
        prefix = q.prefix if q.prefix.startswith(b"/") else b"/" + q.prefix
        prefix = go_path_clean(prefix)
        if prefix != b"/":
            res = [e for e in res if e.key.startswith(prefix + b"/")]
    for f in q.filters:
        res = [e for e in res if filter_matches(f, e)]
    if q.orders:
        sort(q.orders, res)
    if q.offset:
        res = res[q.offset:]
    if q.limit:
        res = res[:q.limit]
    return res
