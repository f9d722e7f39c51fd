"""The query model, with go-datastore's semantics.

``NaiveQueryApply`` is the reference: prefix (path-aware, cleaned), then filters in order, then
orders (hierarchical, ties broken by key ascending), then offset, then limit (0 = none).
Comparisons are bytewise, like Go's ``strings.Compare`` and ``bytes.Compare``.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from walrusds.errors import InvalidArgument
from walrusds.keys import KeyRange, prefix_range, raw_prefix_range


class CompareOp(enum.Enum):
    EQUAL = "=="
    NOT_EQUAL = "!="
    GREATER = ">"
    GREATER_OR_EQUAL = ">="
    LESS = "<"
    LESS_OR_EQUAL = "<="

    @property
    def func(self) -> Callable[[bytes, bytes], bool]:
        return _OPS[self]


_OPS: dict[CompareOp, Callable[[bytes, bytes], bool]] = {
    CompareOp.EQUAL: operator.eq,
    CompareOp.NOT_EQUAL: operator.ne,
    CompareOp.GREATER: operator.gt,
    CompareOp.GREATER_OR_EQUAL: operator.ge,
    CompareOp.LESS: operator.lt,
    CompareOp.LESS_OR_EQUAL: operator.le,
}


@dataclass(frozen=True)
class KeyCompare:
    """go-datastore ``FilterKeyCompare``: keep keys for which ``key <op> self.key``."""

    op: CompareOp
    key: bytes


@dataclass(frozen=True)
class KeyPrefix:
    """go-datastore ``FilterKeyPrefix``: a raw byte prefix (not path-aware)."""

    prefix: bytes


@dataclass(frozen=True)
class ValueCompare:
    """go-datastore ``FilterValueCompare``: keep entries for which ``value <op> self.value``."""

    op: CompareOp
    value: bytes


Filter = KeyCompare | KeyPrefix | ValueCompare


class Order(enum.Enum):
    KEY = "key"
    KEY_DESCENDING = "key-desc"
    VALUE = "value"
    VALUE_DESCENDING = "value-desc"


class Entry(NamedTuple):
    """One query result. A NamedTuple, not a frozen dataclass: a keys-only Query builds one per
    key, and a frozen dataclass's ``__init__`` (``object.__setattr__`` per field) cost a sixth
    of the service's time streaming 1M keys (bench/analysis.md)."""

    key: bytes
    size: int
    value: bytes | None = None


@dataclass(frozen=True)
class QuerySpec:
    prefix: bytes = b""
    filters: tuple[Filter, ...] = ()
    orders: tuple[Order, ...] = ()
    limit: int = 0
    offset: int = 0
    keys_only: bool = False
    key_range: KeyRange = field(init=False)

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise InvalidArgument(f"query limit {self.limit} is negative (0 means no limit)")
        if self.offset < 0:
            raise InvalidArgument(f"query offset {self.offset} is negative")
        rng = prefix_range(self.prefix)
        for f in self.filters:
            if isinstance(f, KeyPrefix):
                rng = rng.intersect(raw_prefix_range(f.prefix))
        object.__setattr__(self, "key_range", rng)

    @property
    def key_filters(self) -> tuple[KeyCompare, ...]:
        return tuple(f for f in self.filters if isinstance(f, KeyCompare))

    @property
    def value_filters(self) -> tuple[ValueCompare, ...]:
        return tuple(f for f in self.filters if isinstance(f, ValueCompare))

    @property
    def effective_orders(self) -> tuple[Order, ...]:
        """The orders that matter: everything after the first key order is a no-op (keys are
        unique), and no order at all means key ascending."""
        out: list[Order] = []
        for o in self.orders:
            out.append(o)
            if o in (Order.KEY, Order.KEY_DESCENDING):
                return tuple(out)
        out.append(Order.KEY)
        return tuple(out)

    @property
    def sorts_by_value(self) -> bool:
        return self.effective_orders[0] in (Order.VALUE, Order.VALUE_DESCENDING)

    @property
    def descending(self) -> bool:
        return self.effective_orders[0] == Order.KEY_DESCENDING

    @property
    def needs_values(self) -> bool:
        """Values must be read for filtering/sorting or returning."""
        return not self.keys_only or bool(self.value_filters) or self.sorts_by_value

    def matches_value(self, value: bytes) -> bool:
        return all(f.op.func(value, f.value) for f in self.value_filters)


def sort_entries(entries: list[Entry], orders: tuple[Order, ...]) -> None:
    """Sort in place by ``orders`` hierarchically; ties broken by key ascending (go-datastore's
    ``query.Sort``). Stable sorts are applied from the last criterion to the first."""
    entries.sort(key=lambda e: e.key)
    for order in reversed(orders):
        if order is Order.KEY:
            entries.sort(key=lambda e: e.key)
        elif order is Order.KEY_DESCENDING:
            entries.sort(key=lambda e: e.key, reverse=True)
        elif order is Order.VALUE:
            entries.sort(key=lambda e: e.value or b"")
        else:
            entries.sort(key=lambda e: e.value or b"", reverse=True)
