"""Identifiers the emulator hands out: blob IDs, Sui object IDs and transaction digests.

**Blob IDs are fake.** A real Walrus blob ID is a Blake2b-256 over the RS2 encoding's Merkle root
(notes §5), which needs the RedStuff encoder. The emulator derives a stand-in with the same shape
(32 bytes, URL-safe base64 without padding, always 43 characters) and the same property that
matters to clients — same bytes, same ID — from a plain hash::

    blob_id = base64url_nopad(blake2b256(0x01 || len(data) as u64 LE || sha256(data)))

So an ID from the emulator is never the ID Walrus would give the same bytes. Clients must never
recompute blob IDs themselves.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

__all__ = [
    "fake_blob_id",
    "is_blob_id",
    "is_object_id",
    "is_sui_address",
    "new_object_id",
    "new_tx_digest",
]

_BLOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_OBJECT_ID_RE = re.compile(r"^0x[0-9a-f]{64}$")
_SUI_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{1,64}$")
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
#: Encoding type byte of RS2, the only encoding Walrus accepts over HTTP.
RS2 = 0x01


def fake_blob_id(data: bytes) -> str:
    """Deterministic, **fake** 43-character blob ID of ``data`` (see the module docstring)."""
    inner = hashlib.sha256(data).digest()
    material = bytes([RS2]) + len(data).to_bytes(8, "little") + inner
    digest = hashlib.blake2b(material, digest_size=32).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def is_blob_id(text: str) -> bool:
    """True if ``text`` is a canonical blob ID: 43 URL-safe base64 characters for 32 bytes.

    Like the Rust ``base64`` crate Walrus uses, non-zero trailing bits are rejected, so every
    32-byte ID has exactly one text form.
    """
    if not _BLOB_ID_RE.match(text):
        return False
    raw = base64.urlsafe_b64decode(text + "=")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") == text


def is_object_id(text: str) -> bool:
    """True for a Sui object ID in the form the publisher emits: ``0x`` + 64 lowercase hex."""
    return bool(_OBJECT_ID_RE.match(text))


def is_sui_address(text: str) -> bool:
    """True for a Sui address as accepted in ``send_object_to``: ``0x`` + 1 to 64 hex digits."""
    return bool(_SUI_ADDRESS_RE.match(text))


def new_object_id() -> str:
    """A fresh random Sui object ID (``0x`` + 64 lowercase hex)."""
    return "0x" + secrets.token_hex(32)


def new_tx_digest() -> str:
    """A random base58 transaction digest of 32 bytes, as in ``alreadyCertified.event``."""
    value = int.from_bytes(secrets.token_bytes(32), "big")
    out = []
    while value:
        value, rem = divmod(value, 58)
        out.append(_BASE58[rem])
    return "".join(reversed(out)) or "1"
