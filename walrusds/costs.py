"""Walrus encoded sizes and storage costs, as pure functions.

Every Walrus blob is erasure-coded (RedStuff, ``RS2``) over the network's shards before it is
stored; what is paid for is the *encoded* length, not the bytes uploaded. The formulas below
follow ``walrus-core/src/encoding/config.rs`` and ``walrus-sui/src/utils.rs``, as summarised in
``/work/shared/notes/walrus-http-api.md`` §7 (sizes) and §2.2 (cost). Mainnet and Testnet both
run 1000 shards, so ``n_shards`` defaults to 1000.

For ``n`` shards the code tolerates ``f = (n - 1) // 3`` faulty shards; a blob is cut into
``(n - 2f) × (n - f)`` source symbols (334 × 667 = 222 778 for 1000 shards), each symbol is
``symbol_size`` bytes, and every shard keeps a primary and a secondary sliver plus the hashes of
all slivers (the per-blob metadata, 64 032 000 B for 1000 shards, paid on every blob however
small — the reason walrusds packs many blocks into one blob).

Prices are in FROST (1 WAL = 10⁹ FROST) per storage unit of 1 MiB: ``storage_price`` per epoch,
``write_price`` once. Current prices come from ``walrus info``; never hard-code them.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_N_SHARDS",
    "DIGEST_LEN",
    "MAX_SYMBOL_SIZE",
    "STORAGE_UNIT",
    "encoded_length",
    "max_blob_size",
    "metadata_length",
    "source_symbols",
    "storage_units",
    "store_cost",
    "symbol_size",
]

DEFAULT_N_SHARDS = 1000
#: Bytes of one storage unit: prices are per MiB of encoded length.
STORAGE_UNIT = 1024 * 1024
#: Blake2b-256 digest length used for sliver hashes.
DIGEST_LEN = 32
#: Symbols are indexed with a u16 and RS2 needs an even size, so 65 534 B is the largest.
MAX_SYMBOL_SIZE = 65_534


def _max_faulty(n_shards: int) -> int:
    if n_shards < 4:
        raise ValueError(f"n_shards must be at least 4, got {n_shards}")
    return (n_shards - 1) // 3


def source_symbols(n_shards: int = DEFAULT_N_SHARDS) -> tuple[int, int]:
    """Return ``(primary, secondary)`` source symbols per sliver: ``(n - 2f, n - f)``.

    For 1000 shards: ``(334, 667)``; their product, 222 778, is the number of source symbols of
    a blob.
    """
    f = _max_faulty(n_shards)
    return n_shards - 2 * f, n_shards - f


def symbol_size(size: int, n_shards: int = DEFAULT_N_SHARDS) -> int:
    """Symbol size in bytes for a blob of ``size`` unencoded bytes.

    ``symbol_size = roundup_even(ceil(max(size, 1) / (primary · secondary)))`` (§7). An empty blob
    still has one symbol of 2 bytes. Raises ``ValueError`` above the protocol maximum.
    """
    if size < 0:
        raise ValueError(f"size must not be negative, got {size}")
    primary, secondary = source_symbols(n_shards)
    count = primary * secondary
    raw = -(-max(size, 1) // count)
    even = raw + (raw % 2)
    if even > MAX_SYMBOL_SIZE:
        raise ValueError(f"a blob of {size} bytes is larger than Walrus' maximum "
                         f"({max_blob_size(n_shards)} bytes with {n_shards} shards)")
    return even


def metadata_length(n_shards: int = DEFAULT_N_SHARDS) -> int:
    """Per-shard metadata bytes: one primary and one secondary hash per shard plus the blob hash.

    ``n · 2 · 32 + 32`` (64 032 for 1000 shards); every shard stores it, so a blob pays
    ``n`` times that (64 032 000 B) whatever its size.
    """
    _max_faulty(n_shards)
    return n_shards * 2 * DIGEST_LEN + DIGEST_LEN


def encoded_length(size: int, n_shards: int = DEFAULT_N_SHARDS) -> int:
    """Encoded length (``storageSize``/``encodedLength`` in store responses) of ``size`` bytes.

    ``encoded_length = n · (primary + secondary) · symbol_size + n · metadata_length``; for 1000
    shards ``1000 · 1001 · symbol_size + 64 032 000`` (§7). Examples: 0 B to 445 556 B →
    66 034 000; 1 MiB → 70 038 000; 10 MiB → 112 080 000.
    """
    primary, secondary = source_symbols(n_shards)
    slivers = n_shards * (primary + secondary) * symbol_size(size, n_shards)
    return slivers + n_shards * metadata_length(n_shards)


def storage_units(encoded: int) -> int:
    """Storage units charged for an encoded length: ``ceil(encoded / 1 MiB)`` (§7)."""
    if encoded < 0:
        raise ValueError(f"encoded length must not be negative, got {encoded}")
    return -(-encoded // STORAGE_UNIT)


def store_cost(size: int, epochs: int, storage_price: int, write_price: int,
               n_shards: int = DEFAULT_N_SHARDS) -> int:
    """FROST charged by a ``registerFromScratch`` store of ``size`` bytes for ``epochs`` epochs.

    ``units · (storage_price · epochs + write_price)`` with
    ``units = storage_units(encoded_length(size))`` (§2.2, ``PriceComputation::operation_cost``).
    SUI gas is not included.
    """
    if epochs < 0 or storage_price < 0 or write_price < 0:
        raise ValueError("epochs and prices must not be negative")
    units = storage_units(encoded_length(size, n_shards))
    return units * (storage_price * epochs + write_price)


def max_blob_size(n_shards: int = DEFAULT_N_SHARDS) -> int:
    """Largest unencoded blob: ``primary · secondary · 65 534`` (14 599 533 452 B for 1000)."""
    primary, secondary = source_symbols(n_shards)
    return primary * secondary * MAX_SYMBOL_SIZE
