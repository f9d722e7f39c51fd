"""Block verification against the multihash in a Kubo datastore key (walrusds/verify.py).

Keys are built here by hand from hashlib digests and RFC 4648 base32, and cross-checked against
CIDs that Kubo itself prints, so the module is not tested against its own encoder."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walrusds.errors import CorruptData
from walrusds.verify import HASHES, block_key, expected_digest, verify_block

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        number = number * 58 + B58.index(char)
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\x00" * (len(text) - len(text.lstrip("1"))) + body


def dskey(multihash: bytes) -> bytes:
    """What boxo's MultihashToDsKey does: '/' + unpadded upper-case base32."""
    return b"/" + base64.b32encode(multihash).rstrip(b"=")


def sha256_mh(value: bytes) -> bytes:
    return b"\x12\x20" + hashlib.sha256(value).digest()


EMPTY_DIR = b"\x0a\x02\x08\x01"  # the empty UnixFS directory block
EMPTY_DIR_KEY = b"/CIQFTFEEHEDF6KLBT32BFAGLXEZL4UWFNWM4LFTLMXQBCERZ6CMLX3Y"


def test_cidv0_block_key_round_trip() -> None:
    multihash = b58decode("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn")  # CIDv0 = multihash
    assert multihash == sha256_mh(EMPTY_DIR)
    assert dskey(multihash) == EMPTY_DIR_KEY == block_key(EMPTY_DIR)
    found = expected_digest(EMPTY_DIR_KEY)
    assert found is not None
    assert (found.code, found.name, found.digest) == (0x12, "sha2-256",
                                                      hashlib.sha256(EMPTY_DIR).digest())
    verify_block(EMPTY_DIR_KEY, EMPTY_DIR)
    verify_block(b"/blocks" + EMPTY_DIR_KEY, EMPTY_DIR)


def test_cidv1_raw_block_is_keyed_by_its_multihash() -> None:
    cid = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"  # raw block b"hello"
    body = cid[1:].upper()  # multibase 'b' = lower-case base32
    raw = base64.b32decode(body + "=" * (-len(body) % 8))
    assert raw[:2] == b"\x01\x55"  # CIDv1, raw codec
    key = dskey(raw[2:])
    assert key == b"/CIQCZ4SNXJP3BIYOE3UDWKWFXHRJ4GYWDZOB7J2CLZZQIM3CSOFZQJA" == block_key(b"hello")
    verify_block(key, b"hello")
    with pytest.raises(CorruptData, match="does not match the sha2-256 multihash in its key "
                                          "'/CIQCZ4SNX"):
        verify_block(key, b"hellO")
    # A pre-0.12 repository keyed blocks by the whole CID: not a multihash, so not checkable.
    assert expected_digest(dskey(raw)) is None


VARINT = {0x11: b"\x11", 0x12: b"\x12", 0x13: b"\x13", 0x14: b"\x14", 0x15: b"\x15",
          0x16: b"\x16", 0x17: b"\x17", 0x20: b"\x20", 0xB220: b"\xa0\xe4\x02",
          0xB240: b"\xc0\xe4\x02", 0xB260: b"\xe0\xe4\x02"}
REFERENCE = {
    0x11: lambda v: hashlib.sha1(v).digest(),
    0x12: lambda v: hashlib.sha256(v).digest(),
    0x13: lambda v: hashlib.sha512(v).digest(),
    0x14: lambda v: hashlib.sha3_512(v).digest(),
    0x15: lambda v: hashlib.sha3_384(v).digest(),
    0x16: lambda v: hashlib.sha3_256(v).digest(),
    0x17: lambda v: hashlib.sha3_224(v).digest(),
    0x20: lambda v: hashlib.sha384(v).digest(),
    0xB220: lambda v: hashlib.blake2b(v, digest_size=32).digest(),
    0xB240: lambda v: hashlib.blake2b(v, digest_size=64).digest(),
    0xB260: lambda v: hashlib.blake2s(v, digest_size=32).digest(),
}


@pytest.mark.parametrize("code", sorted(REFERENCE))
def test_every_supported_function(code: int) -> None:
    value = b"walrus block " + bytes(range(256))
    digest = REFERENCE[code](value)
    key = dskey(VARINT[code] + bytes([len(digest)]) + digest)
    assert key == block_key(value, code)
    found = expected_digest(key)
    assert found is not None
    assert (found.code, found.digest) == (code, digest)
    verify_block(key, value)
    with pytest.raises(CorruptData, match=found.name):
        verify_block(key, value[:-1])


def test_supported_table_is_what_the_tests_cover() -> None:
    assert set(HASHES) == set(REFERENCE)
    assert len(block_key(b"x", 0xB220)) == 1 + 58  # 3 + 1 + 32 bytes of base32


DIGEST = hashlib.sha256(b"v").digest()


@pytest.mark.parametrize("key", [
    b"", b"/", b"CIQ", dskey(sha256_mh(b"v"))[1:],               # not keys of that shape
    b"/pins/pin/CIQAAAA", b"/local/filesroot", b"/version",      # other Kubo datastores
    b"/x" + dskey(sha256_mh(b"v")),                               # under another prefix
    dskey(sha256_mh(b"v")).lower(),                               # lower case
    base64.b32encode(sha256_mh(b"v")).join([b"/", b""]),          # padded
    b"/AAAAAAAA======", b"/AAAA",                                 # go-datastore test keys
    b"/CIQ" + b"A" * 52 + b"1",                                   # '1' is not base32
    b"/C",                                                        # impossible length
    dskey(b"\x12\x1f" + DIGEST[:31]),                             # truncated digest
    dskey(b"\x12\x20" + DIGEST[:31]),                             # digest shorter than declared
    dskey(b"\x12\x20" + DIGEST + b"\x00"),                        # a byte after the digest
    dskey(b"\x12"),                                               # no length
    dskey(b"\x92"),                                               # truncated varint
    dskey(b"\x92\x80\x00\x20" + DIGEST),                          # non-minimal varint
    dskey(b"\x12\xa0\x00" + DIGEST),                              # non-minimal length
    dskey(b"\xff" * 10 + b"\x20" + DIGEST),                       # varint over 9 bytes
    dskey(b"\x1e\x20" + DIGEST),                                  # blake3: no hashlib twin
    dskey(b"\x00\x02hi"),                                         # identity: never stored
    dskey(b"\x12\x20" + DIGEST) + b"=",                           # trailing junk
    b"/" + b"A" * 3000,                                           # too long to be a multihash
])
def test_not_checkable_keys(key: bytes) -> None:
    assert expected_digest(key) is None
    verify_block(key, b"anything")


def test_non_canonical_trailing_bits_are_not_checkable() -> None:
    key = dskey(sha256_mh(b"v"))  # 34 bytes -> 55 chars, the last one carries 3 unused bits
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    last = alphabet.index(key[-1:])
    assert last & 0b111 == 0
    odd = key[:-1] + alphabet[last | 1:(last | 1) + 1]
    assert base64.b32decode(odd[1:] + b"=") == sha256_mh(b"v")  # decodes, but not canonical
    assert expected_digest(key) is not None
    assert expected_digest(odd) is None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=120),
                 st.builds(lambda b: b"/" + base64.b32encode(b).rstrip(b"="),
                           st.binary(max_size=80)),
                 st.builds(lambda b: dskey(b"\x12\x20" + b), st.binary(min_size=30,
                                                                      max_size=34))),
       st.binary(max_size=64))
def test_any_key_is_acceptable_input(key: bytes, value: bytes) -> None:
    """expected_digest never raises; verify_block raises only CorruptData, and only when the
    key holds a checkable multihash the value does not match."""
    found = expected_digest(key)
    try:
        verify_block(key, value)
    except CorruptData:
        assert found is not None
        assert not found.matches(value)
    else:
        assert found is None or found.matches(value)
