"""Datastore keys: validation, go-datastore prefix cleaning, and bytewise key ranges.

Rules (documented in docs/api.md and enforced here, before anything touches Postgres):

* a key is bytes that start with ``/``;
* it does not end with ``/`` (so ``/`` alone is not a key);
* it is at most ``max_key_size`` bytes (default 2048: Postgres btree entries are capped near
  2.7 KB for incompressible keys);
* any other bytes are allowed, including NUL, ``%``, ``_``, ``\\`` and invalid UTF-8. Keys are
  stored as ``bytea`` and compared bytewise, exactly like Go's ``strings.Compare``.

Keys are not cleaned: ``/a//b`` and ``/a/./b`` are distinct keys, as go-datastore's ``RawKey``
treats them. Query prefixes, on the other hand, are cleaned the way go-datastore's
``NaiveQueryApply`` cleans them (``path.Clean("/" + prefix)``).
"""

from __future__ import annotations

from dataclasses import dataclass

from walrusds.errors import InvalidArgument

DEFAULT_MAX_KEY_SIZE = 2048


def check_key(key: bytes, max_key_size: int = DEFAULT_MAX_KEY_SIZE) -> bytes:
    """Return ``key`` if it is a valid datastore key, else raise :class:`InvalidArgument`."""
    if not key:
        raise InvalidArgument("key is empty: keys start with '/' (for example /blocks/CIQ...)")
    if key[0] != 0x2F:  # '/'
        raise InvalidArgument(f"key {show_key(key)} does not start with '/'")
    if key[-1] == 0x2F:
        raise InvalidArgument(f"key {show_key(key)} ends with '/'")
    if len(key) > max_key_size:
        raise InvalidArgument(
            f"key of {len(key)} bytes is longer than the maximum of {max_key_size} bytes"
        )
    return key


def show_key(key: bytes, limit: int = 80) -> str:
    """A printable, bounded rendering of a key for error messages and logs."""
    text = key[:limit].decode("utf-8", errors="backslashreplace")
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return repr(text + ("..." if len(key) > limit else ""))


def clean_path(path: bytes) -> bytes:
    """Go's ``path.Clean`` on bytes, for a path that starts with ``/``.

    Collapses repeated slashes, drops ``.`` elements and resolves ``..`` lexically; ``..`` at
    the root stays at the root. The result has no trailing slash unless it is ``/``.
    """
    parts: list[bytes] = []
    for part in path.split(b"/"):
        if part in (b"", b"."):
            continue
        if part == b"..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return b"/" + b"/".join(parts)


def clean_prefix(prefix: bytes) -> bytes:
    """The prefix as go-datastore's ``NaiveQueryApply`` uses it: ``path.Clean("/" + prefix)``."""
    return clean_path(b"/" + prefix)


@dataclass(frozen=True)
class KeyRange:
    """A half-open bytewise range ``low <= key < high``; ``None`` means unbounded."""

    low: bytes | None = None
    high: bytes | None = None

    def contains(self, key: bytes) -> bool:
        if self.low is not None and key < self.low:
            return False
        return not (self.high is not None and key >= self.high)

    def intersect(self, other: KeyRange) -> KeyRange:
        low = self.low if other.low is None else (
            other.low if self.low is None else max(self.low, other.low)
        )
        high = self.high if other.high is None else (
            other.high if self.high is None else min(self.high, other.high)
        )
        return KeyRange(low, high)

    @property
    def empty(self) -> bool:
        return self.low is not None and self.high is not None and self.low >= self.high


def prefix_range(prefix: bytes) -> KeyRange:
    """The range of keys that are strict descendants of the cleaned ``prefix``.

    ``/foo`` selects ``/foo/bar`` and ``/foo/bar/baz`` but neither ``/foo`` nor ``/foobar``:
    that is ``/foo/ <= key < /foo0`` (``'0'`` is the byte after ``'/'``). ``/`` selects all.
    """
    cleaned = clean_prefix(prefix)
    if cleaned == b"/":
        return KeyRange()
    return KeyRange(cleaned + b"/", cleaned + b"0")


def raw_prefix_range(prefix: bytes) -> KeyRange:
    """The range of keys that start with ``prefix`` byte for byte (go-datastore's
    ``FilterKeyPrefix``, which is not path-aware)."""
    if not prefix:
        return KeyRange()
    return KeyRange(prefix, prefix_successor(prefix))


def prefix_successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with ``prefix``.

    ``None`` when there is none (the prefix is all ``0xff``).
    """
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
