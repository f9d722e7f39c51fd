"""Fault injection: what can go wrong on a route, when, and how often.

A :class:`FaultSpec` names a route — ``store`` (the publisher's ``PUT /v1/blobs``), ``read``
(``GET``/``HEAD /v1/blobs/{id}``), ``byte_range`` (``/v1/blobs/{id}/byte-range``),
``by_object_id`` (``/v1/blobs/by-object-id/{id}``), or ``aggregator`` (any of the three reads) —
a :class:`FaultKind`, and when it fires: for the next ``count`` matching calls (None: until
cleared), each with ``probability`` (drawn from the rule's own ``seed`` when given, so a test is
reproducible), optionally only under a URL path ``prefix``, for one ``blob_id``, or for bodies
(store) / blobs (read) larger than ``min_size``. The :class:`FaultBook` holds the active rules;
the first rule that matches a call and wins its draw is applied to it.

This module has no HTTP in it: the specs travel as JSON between :mod:`walrusds.emulator.control`
(the test side) and the control routes (the server side).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from walrusds.emulator.sleeps import Sleeps

__all__ = [
    "READ_KINDS",
    "READ_ROUTES",
    "ROUTES",
    "STORE_KINDS",
    "FaultBook",
    "FaultKind",
    "FaultSpec",
]


class FaultKind(StrEnum):
    """What an injected fault does."""

    #: Answer ``status`` with the body the real service sends for it on that route
    #: (504 INSUFFICIENT_CONFIRMATIONS, 500 INTERNAL_ERROR, 503 BLOB_UNAVAILABLE, 404, 403
    #: BLOB_TOO_LARGE, 451 FORBIDDEN_BLOB, 429/413 plain text, other codes plain text).
    STATUS = "status"
    #: Wait ``delay`` seconds (cut short when faults are cleared), then behave normally.
    DELAY = "delay"
    #: Reset the connection before any response (a store stores nothing).
    RESET = "reset"
    #: Store the blob, then reset the connection: the response is lost, the blob exists.
    RESET_AFTER_STORE = "reset_after_store"
    #: Store the blob, then wait ``delay`` seconds before answering (success after a timeout).
    DELAY_AFTER_STORE = "delay_after_store"
    #: Answer 200 with ``{"error": {...}}`` (nothing stored).
    ERROR_200 = "error_200"
    #: Answer 200 with a body that is not JSON (nothing stored).
    BAD_JSON = "bad_json"
    #: ``alreadyCertified`` with an end epoch earlier than asked (MystenLabs/walrus#1077).
    STALE_CERTIFIED = "stale_certified"
    #: Headers announce the full length; the connection is reset after ``keep`` bytes of the
    #: body (default: half of it).
    TRUNCATE = "truncate"
    #: A complete, well-framed response whose body is only its first ``keep`` bytes (default:
    #: one byte short); ``Content-Length`` matches the short body, ``Content-Range`` does not.
    SHORT_BODY = "short_body"
    #: Flip the lowest bit of the body's byte at index ``at`` (default: the middle byte).
    BITFLIP = "bitflip"
    #: Ignore ``Range``: 200 with the whole blob.
    IGNORE_RANGE = "ignore_range"
    #: Right headers and length, bytes of a neighbouring window.
    WRONG_SLICE = "wrong_slice"
    #: 206 with the right bytes but a ``Content-Range`` one byte further (ranged reads only).
    BAD_CONTENT_RANGE = "bad_content_range"
    #: The bytes of another stored blob (same window of it, zero-padded), same length.
    OTHER_BLOB = "other_blob"
    #: 404 BLOB_NOT_FOUND for the first ``reads`` reads after each store (CDN-cached 404).
    NOT_FOUND_AFTER_STORE = "not_found_after_store"


STORE_KINDS = frozenset({
    FaultKind.STATUS, FaultKind.DELAY, FaultKind.RESET, FaultKind.RESET_AFTER_STORE,
    FaultKind.DELAY_AFTER_STORE, FaultKind.ERROR_200, FaultKind.BAD_JSON,
    FaultKind.STALE_CERTIFIED,
})
READ_KINDS = frozenset({
    FaultKind.STATUS, FaultKind.DELAY, FaultKind.RESET, FaultKind.TRUNCATE,
    FaultKind.SHORT_BODY, FaultKind.BITFLIP, FaultKind.IGNORE_RANGE, FaultKind.WRONG_SLICE,
    FaultKind.BAD_CONTENT_RANGE, FaultKind.OTHER_BLOB, FaultKind.NOT_FOUND_AFTER_STORE,
})
#: Read faults that change the bytes of an existing blob; they never fire on a missing blob.
DATA_KINDS = READ_KINDS - {FaultKind.STATUS, FaultKind.DELAY, FaultKind.RESET,
                           FaultKind.NOT_FOUND_AFTER_STORE}
#: Read faults that only change a body; a HEAD request has none, so they never fire on it.
BODY_KINDS = DATA_KINDS - {FaultKind.IGNORE_RANGE}
#: The aggregator's routes; ``aggregator`` in a rule matches any of them.
READ_ROUTES = ("read", "byte_range", "by_object_id")
ROUTES = ("store", *READ_ROUTES, "aggregator")


@dataclass(frozen=True, kw_only=True)
class FaultSpec:
    """One fault rule; see the module docstring. Validated on construction."""

    route: str
    kind: FaultKind
    status: int | None = None
    count: int | None = None
    probability: float = 1.0
    delay: float = 0.0
    min_size: int | None = None
    reads: int = 1
    keep: int | None = None
    at: int | None = None
    prefix: str | None = None
    blob_id: str | None = None
    #: Seed of this rule's own random draws (None: the book's generator).
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FaultKind(self.kind))
        if self.route not in ROUTES:
            raise ValueError(f"route must be one of {ROUTES}, not {self.route!r}")
        allowed = STORE_KINDS if self.route == "store" else READ_KINDS
        if self.kind not in allowed:
            raise ValueError(f"fault {self.kind.value!r} does not apply to route {self.route!r}")
        if self.kind is FaultKind.STATUS:
            if self.status is None or not 400 <= self.status <= 599:
                raise ValueError("a status fault needs an HTTP error status (400-599)")
        elif self.status is not None:
            raise ValueError("status is only for status faults")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be positive (or null for 'until cleared')")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if self.delay < 0 or self.reads < 1:
            raise ValueError("delay must not be negative; reads must be positive")
        if (self.keep is not None and self.keep < 0) or (self.at is not None and self.at < 0):
            raise ValueError("keep and at must not be negative")
        if self.min_size is not None and self.min_size < 0:
            raise ValueError("min_size must not be negative")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = self.kind.value
        return out

    @classmethod
    def from_json(cls, value: Any) -> FaultSpec:
        if not isinstance(value, dict):
            raise ValueError("a fault is a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        missing = {"route", "kind"} - set(value)
        if missing:
            raise ValueError(f"a fault needs {sorted(missing)}")
        for name, item in value.items():
            if name in ("route", "kind"):
                if not isinstance(item, str):
                    raise ValueError(f"fault field {name!r} must be a string")
                continue
            if item is None:
                continue
            expected = _FIELD_TYPES[name]
            if isinstance(item, bool) or not isinstance(item, expected):
                raise ValueError(f"fault field {name!r} has the wrong type")
        return cls(**value)

    def matches_route(self, route: str) -> bool:
        return self.route == route or (self.route == "aggregator" and route in READ_ROUTES)


#: JSON types accepted for the optional fields of a fault (``None`` is always accepted).
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "status": int, "count": int, "probability": (int, float), "delay": (int, float),
    "min_size": int, "reads": int, "keep": int, "at": int, "prefix": str, "blob_id": str,
    "seed": int,
}


@dataclass
class _Rule:
    id: int
    spec: FaultSpec
    remaining: int | None
    rng: random.Random
    fired: int = 0


class FaultBook:
    """The active fault rules of one emulator, and the event that cuts pending delays short."""

    def __init__(self, seed: int | None = None) -> None:
        self._rules: list[_Rule] = []
        self._next_id = 1
        self._rng = random.Random(seed)
        self._delays = Sleeps()

    @property
    def rng(self) -> random.Random:
        return self._rng

    def add(self, spec: FaultSpec) -> int:
        rng = random.Random(spec.seed) if spec.seed is not None else self._rng
        rule = _Rule(self._next_id, spec, spec.count, rng)
        self._next_id += 1
        self._rules.append(rule)
        return rule.id

    def remove(self, rule_id: int) -> bool:
        """Drop one rule; False if there is no rule with that id."""
        before = len(self._rules)
        self._rules = [r for r in self._rules if r.id != rule_id]
        return len(self._rules) < before

    def clear(self) -> None:
        """Drop every rule and release every pending delay at once."""
        self._rules.clear()
        self.release_delays()

    def release_delays(self) -> None:
        """End every pending :meth:`wait` now (used by ``clear`` and at shutdown)."""
        self._delays.release()

    def describe(self) -> list[dict[str, Any]]:
        return [{"id": r.id, "spec": r.spec.to_json(), "remaining": r.remaining,
                 "fired": r.fired} for r in self._rules]

    def take(self, route: str, *, prefix: str | None, blob_id: str | None, size: int | None,
             has_blob: bool = True, head: bool = False,
             reads_before: int | None = None) -> FaultSpec | None:
        """The fault to apply to this call, if any (consumes one of its ``count``).

        ``has_blob`` is False when the blob is unknown or expired (faults that alter bytes
        cannot apply); ``head`` marks a HEAD request (no body to alter); ``reads_before`` is the
        number of reads of this blob since it was last stored (None: not stored by this run).
        """
        for rule in self._rules:
            spec = rule.spec
            if not spec.matches_route(route) or rule.remaining == 0:
                continue
            if spec.prefix is not None and spec.prefix != prefix:
                continue
            if spec.blob_id is not None and spec.blob_id != blob_id:
                continue
            if spec.min_size is not None and (size is None or size <= spec.min_size):
                continue
            if spec.kind in DATA_KINDS and not has_blob:
                continue
            if spec.kind in BODY_KINDS and head:
                continue
            if spec.kind is FaultKind.NOT_FOUND_AFTER_STORE and (
                    reads_before is None or reads_before >= spec.reads):
                continue
            if spec.probability < 1.0 and rule.rng.random() >= spec.probability:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
            rule.fired += 1
            return spec
        return None

    async def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``; return early when the faults are cleared."""
        await self._delays.sleep(seconds)
