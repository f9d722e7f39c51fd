"""Verifying a Kubo block against the multihash in its datastore key.

Key shape. Since go-ipfs v0.12 Kubo keys blocks by multihash alone: boxo's
``dshelp.MultihashToDsKey`` makes ``"/" + base32(multihash)`` with the RFC 4648 alphabet in upper
case (``A``–``Z``, ``2``–``7``) and no ``=`` padding, and the ``/blocks`` mount strips its prefix,
so the datastore walrusds serves sees keys like ``/CIQ...`` (a sha2-256 multihash is 34 bytes,
55 characters). A multihash is ``varint(function code) || varint(digest length) || digest``,
varints being unsigned LEB128 (at most 9 bytes, minimally encoded).

What is checked. :func:`expected_digest` accepts ``/<segment>`` (the mount's view) and
``/blocks/<segment>`` (walrusds mounted at ``/``, which DESIGN.md discourages). The segment must
be canonical unpadded upper-case base32 that decodes to exactly one multihash with no bytes
left over, of a function in :data:`HASHES`, carrying that function's full-length digest. Every
other key is "not checkable" (``None``) and is verified only against the digest stored in the
index: Kubo's other keys (``/pins/...``, ``/local/...``), go-datastore test keys, keys with
padding, truncated digests (``ipfs block put --mhlen``) and unknown functions (blake3 has no
``hashlib`` twin). Identity multihashes are deliberately not checked: Kubo never stores them
(its ``IdStore`` answers them from the CID), and a short key such as ``/AAAA`` decodes as an
identity multihash of an empty value, so checking them would turn ordinary values under such
keys into false DATA_LOSS. The same caution is why a match must be exact, never a prefix.

``verify_block`` raises :class:`CorruptData` on a mismatch; the read path retries another
aggregator and finally answers DATA_LOSS, never the bad bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from walrusds.errors import CorruptData
from walrusds.keys import show_key

SHA2_256 = 0x12
MAX_VARINT_BYTES = 9
# The longest segment we try to decode: a 3-byte code, 1-byte length and a 64-byte digest.
_MAX_SEGMENT = (3 + 1 + 64) * 8 // 5 + 1
_BASE32 = re.compile(rb"[A-Z2-7]+")
_BLOCKS = b"/blocks/"


@dataclass(frozen=True)
class HashFunction:
    """A multihash function walrusds can recompute with ``hashlib``."""

    code: int
    name: str
    size: int
    new: Callable[[bytes], bytes] = field(repr=False, compare=False)


class _Hasher(Protocol):
    def digest(self) -> bytes: ...


def _via(new: Callable[[bytes], _Hasher]) -> Callable[[bytes], bytes]:
    return lambda data: new(data).digest()


HASHES: dict[int, HashFunction] = {h.code: h for h in (
    HashFunction(0x11, "sha1", 20, _via(hashlib.sha1)),
    HashFunction(SHA2_256, "sha2-256", 32, _via(hashlib.sha256)),
    HashFunction(0x13, "sha2-512", 64, _via(hashlib.sha512)),
    HashFunction(0x14, "sha3-512", 64, _via(hashlib.sha3_512)),
    HashFunction(0x15, "sha3-384", 48, _via(hashlib.sha3_384)),
    HashFunction(0x16, "sha3-256", 32, _via(hashlib.sha3_256)),
    HashFunction(0x17, "sha3-224", 28, _via(hashlib.sha3_224)),
    HashFunction(0x20, "sha2-384", 48, _via(hashlib.sha384)),
    HashFunction(0xB220, "blake2b-256", 32, _via(partial(hashlib.blake2b, digest_size=32))),
    HashFunction(0xB240, "blake2b-512", 64, _via(partial(hashlib.blake2b, digest_size=64))),
    HashFunction(0xB260, "blake2s-256", 32, _via(partial(hashlib.blake2s, digest_size=32))),
)}
"""The multihash functions that are checked, by multicodec code."""


@dataclass(frozen=True)
class Multihash:
    """The hash a block key promises: ``function`` applied to the value gives ``digest``."""

    function: HashFunction
    digest: bytes

    @property
    def code(self) -> int:
        return self.function.code

    @property
    def name(self) -> str:
        return self.function.name

    def matches(self, value: bytes) -> bool:
        return self.function.new(value) == self.digest


def expected_digest(key: bytes) -> Multihash | None:
    """The checkable multihash in a block key, or ``None`` if the key promises nothing we can
    check. Never raises: any key is acceptable input."""
    if key.startswith(_BLOCKS):
        segment = key[len(_BLOCKS):]
    elif key.startswith(b"/"):
        segment = key[1:]
    else:
        return None
    raw = _decode_base32(segment)
    if raw is None:
        return None
    code, pos = _uvarint(raw, 0)
    length, pos = _uvarint(raw, pos)
    if code is None or length is None:
        return None
    function = HASHES.get(code)
    if function is None or length != function.size or len(raw) - pos != length:
        return None
    return Multihash(function, raw[pos:])


def verify_block(key: bytes, value: bytes) -> None:
    """Raise :class:`CorruptData` if ``key`` carries a checkable multihash that ``value`` does
    not match; return quietly otherwise (including for keys that are not checkable)."""
    expected = expected_digest(key)
    if expected is not None and not expected.matches(value):
        raise CorruptData(f"value of {len(value)} bytes does not match the {expected.name} "
                          f"multihash in its key {show_key(key)}")


def block_key(value: bytes, code: int = SHA2_256) -> bytes:
    """The datastore key Kubo gives ``value`` hashed with ``code`` (``/`` + base32 multihash),
    as the ``/blocks`` mount sees it. For tools and tests that write Kubo-shaped blocks."""
    function = HASHES[code]
    multihash = _varint(code) + _varint(function.size) + function.new(value)
    return b"/" + base64.b32encode(multihash).rstrip(b"=")


def _decode_base32(segment: bytes) -> bytes | None:
    """Canonical unpadded RFC 4648 base32 (upper case) → bytes; ``None`` for anything else."""
    if not 0 < len(segment) <= _MAX_SEGMENT or len(segment) % 8 in (1, 3, 6):
        return None
    if _BASE32.fullmatch(segment) is None:
        return None
    try:
        raw = base64.b32decode(segment + b"=" * (-len(segment) % 8))
    except binascii.Error:
        return None
    # Unused trailing bits must be zero, as an encoder leaves them: one key, one multihash.
    if base64.b32encode(raw).rstrip(b"=") != segment:
        return None
    return raw


def _uvarint(data: bytes, pos: int) -> tuple[int | None, int]:
    """Decode a minimally encoded unsigned LEB128 varint at ``pos``: (value, next position),
    or (None, pos) if it is truncated, longer than 9 bytes, or padded with zero groups."""
    value = 0
    for i in range(MAX_VARINT_BYTES):
        if pos + i >= len(data):
            return None, pos
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                return None, pos  # a trailing zero group: not the minimal encoding
            return value, pos + i + 1
    return None, pos


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
