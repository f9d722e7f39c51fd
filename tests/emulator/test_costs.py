"""The encoded-size and cost formulas of notes §7 and §2.2, against the documented numbers."""

from __future__ import annotations

import pytest

from walrusds.costs import (
    encoded_length,
    max_blob_size,
    metadata_length,
    source_symbols,
    storage_units,
    store_cost,
    symbol_size,
)
from walrusds.emulator.config import EmulatorConfig

MIB = 1024 * 1024


def test_the_17_byte_example_of_the_walrus_docs() -> None:
    config = EmulatorConfig()
    assert encoded_length(17) == 66_034_000
    assert storage_units(66_034_000) == 63
    assert store_cost(17, 1, config.storage_price, config.write_price) == 132_300


@pytest.mark.parametrize(("size", "encoded", "units"), [
    (0, 66_034_000, 63),
    (445_556, 66_034_000, 63),
    (445_557, 68_036_000, 65),  # symbol size 2 → 4 (even)
    (10 * 1024, 66_034_000, 63),
    (MIB, 70_038_000, 67),
    (10 * MIB, 112_080_000, 107),
    (100 * MIB, 536_504_000, 512),
    (1024 * MIB, 4_888_852_000, 4663),
])
def test_table_of_notes_section_7(size: int, encoded: int, units: int) -> None:
    assert encoded_length(size) == encoded
    assert storage_units(encoded) == units


def test_the_quilt_example_size() -> None:
    # The quilt of the docs: 1 782 224 unencoded bytes (222 778 × 8) → 72 040 000 encoded.
    assert symbol_size(1_782_224) == 8
    assert encoded_length(1_782_224) == 72_040_000


def test_shard_arithmetic_for_1000_shards() -> None:
    assert source_symbols() == (334, 667)
    assert metadata_length() == 64_032
    assert max_blob_size() == 14_599_533_452
    assert symbol_size(max_blob_size()) == 65_534
    with pytest.raises(ValueError, match="larger than Walrus' maximum"):
        symbol_size(max_blob_size() + 1)


def test_cost_grows_with_epochs_and_prices() -> None:
    units = 63
    assert store_cost(17, 53, 1000, 1100) == units * (1000 * 53 + 1100)
    assert store_cost(17, 0, 1000, 1100) == units * 1100
    assert store_cost(MIB, 2, 7, 3) == 67 * (7 * 2 + 3)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        symbol_size(-1)
    with pytest.raises(ValueError, match="negative"):
        storage_units(-1)
    with pytest.raises(ValueError, match="negative"):
        store_cost(1, -1, 1, 1)
    with pytest.raises(ValueError, match="at least 4"):
        source_symbols(3)
