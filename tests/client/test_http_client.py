"""The Walrus client against the emulator over real HTTP: every status class and fault."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.client.conftest import FAST
from walrusds.client import HttpBlobStore, RetryingBlobStore, RetryPolicy
from walrusds.client.http import Timeouts
from walrusds.costs import encoded_length
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator
from walrusds.errors import (
    BlobNotFound,
    PayloadTooLarge,
    StoreFailed,
    WalrusProtocolError,
    WalrusRequestError,
    WalrusUnavailable,
)

DATA = os.urandom(200_000)


async def calls(control: EmulatorControl, route: str) -> int:
    counters = await control.counters()
    return int(counters["routes"].get(route, 0))


async def prefix_calls(control: EmulatorControl, prefix: str, route: str) -> int:
    counters = await control.counters()
    return int(counters["prefixes"].get(prefix, {}).get(route, 0))


# -- store ---------------------------------------------------------------------------------------

async def test_store_then_read_back(walrus: RetryingBlobStore,
                                    control: EmulatorControl) -> None:
    epoch = await control.epoch()
    result = await walrus.store(DATA, epochs=3)
    assert len(result.blob_id) == 43
    assert result.size == len(DATA)
    assert (result.start_epoch, result.end_epoch) == (epoch, epoch + 3)
    assert result.encoded_length == encoded_length(len(DATA))
    assert result.cost and result.cost > 0
    assert result.object_id and result.object_id.startswith("0x")
    assert not result.already_certified
    assert await walrus.read_range(result.blob_id, 0, 10) == DATA[:10]
    assert await walrus.read_range(result.blob_id, 12345, 50_000) == DATA[12345:62345]
    assert await walrus.read_range(result.blob_id, len(DATA) - 1, 1) == DATA[-1:]
    assert await walrus.read_blob(result.blob_id) == DATA


async def test_the_same_bytes_give_the_same_blob_id(walrus: RetryingBlobStore) -> None:
    first = await walrus.store(DATA, epochs=1)
    second = await walrus.store(DATA, epochs=2)
    assert first.blob_id == second.blob_id
    assert first.object_id != second.object_id
    assert second.end_epoch == first.end_epoch + 1


async def test_empty_blob_and_empty_range(walrus: RetryingBlobStore,
                                          control: EmulatorControl) -> None:
    result = await walrus.store(b"", epochs=1)
    assert result.size == 0
    before = await calls(control, "read")
    assert await walrus.read_range(result.blob_id, 0, 0) == b""
    assert await calls(control, "read") == before


async def test_413_is_payload_too_large_and_never_retried(
        walrus: RetryingBlobStore, control: EmulatorControl) -> None:
    await control.set_max_body_size(100_000)
    with pytest.raises(PayloadTooLarge) as info:
        await walrus.store(DATA, epochs=1)
    assert info.value.status == 413
    assert await calls(control, "store") == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_transient_store_failures_are_retried(
        walrus: RetryingBlobStore, control: EmulatorControl, status: int) -> None:
    await control.add_fault("store", "status", status=status, count=2)
    result = await walrus.store(DATA, epochs=1)
    assert await walrus.read_blob(result.blob_id) == DATA
    assert await calls(control, "store") == 3


async def test_transient_failures_give_up_after_the_attempts(
        walrus: RetryingBlobStore, control: EmulatorControl) -> None:
    await control.add_fault("store", "status", status=503)
    with pytest.raises(WalrusUnavailable, match="503"):
        await walrus.store(DATA, epochs=1)
    assert await calls(control, "store") == FAST.attempts


@pytest.mark.parametrize("status", [400, 401, 403, 451])
async def test_request_errors_are_not_retried(
        walrus: RetryingBlobStore, control: EmulatorControl, status: int) -> None:
    await control.add_fault("store", "status", status=status)
    with pytest.raises(WalrusRequestError, match=str(status)):
        await walrus.store(DATA, epochs=1)
    assert await calls(control, "store") == 1


async def test_an_error_inside_a_200_is_a_failure(
        http: HttpBlobStore, control: EmulatorControl) -> None:
    await control.add_fault("store", "error_200", count=1)
    with pytest.raises(StoreFailed, match="with_certify_and_extend_result"):
        await http.store(DATA, epochs=1)
    # nothing was stored; retried, it succeeds
    result = await RetryingBlobStore(http, FAST).store(DATA, epochs=1)
    assert await http.read_blob(result.blob_id) == DATA


async def test_a_body_that_is_not_json_is_a_protocol_error(
        http: HttpBlobStore, control: EmulatorControl) -> None:
    await control.add_fault("store", "bad_json", count=1)
    with pytest.raises(WalrusProtocolError, match="not JSON"):
        await http.store(DATA, epochs=1)


async def test_reset_before_and_after_store(walrus: RetryingBlobStore, http: HttpBlobStore,
                                            control: EmulatorControl) -> None:
    await control.add_fault("store", "reset", count=1)
    with pytest.raises(WalrusUnavailable):
        await http.store(DATA, epochs=1)
    # The blob was stored but the answer lost: the retry stores it again, same blob ID.
    await control.add_fault("store", "reset_after_store", count=1)
    result = await walrus.store(DATA, epochs=1)
    assert await calls(control, "store") == 3
    assert await walrus.read_blob(result.blob_id) == DATA


async def test_stale_already_certified_reports_the_real_end_epoch(
        emulator: RunningEmulator, control: EmulatorControl) -> None:
    store = HttpBlobStore([emulator.url], [emulator.url])
    try:
        await control.add_fault("store", "stale_certified", count=1)
        result = await store.store(DATA, epochs=5)
        assert result.already_certified
        assert result.start_epoch is None
        assert result.end_epoch < await control.epoch() + 5
    finally:
        await store.aclose()


async def test_the_deadline_bounds_a_call(http: HttpBlobStore,
                                          control: EmulatorControl) -> None:
    await control.add_fault("store", "delay", delay=30.0)
    walrus = RetryingBlobStore(http, RetryPolicy(attempts=10, initial=0.01, deadline=0.5))
    with pytest.raises(WalrusUnavailable, match="deadline"):
        await walrus.store(DATA, epochs=1)
    await control.clear_faults()


async def test_an_upload_timeout_is_unavailable(emulator: RunningEmulator,
                                                control: EmulatorControl) -> None:
    store = HttpBlobStore([emulator.url], [emulator.url],
                          timeouts=Timeouts(connect=1.0, read=0.3, store=0.3))
    try:
        await control.add_fault("store", "delay", delay=5.0, count=1)
        with pytest.raises(WalrusUnavailable, match="timed out"):
            await store.store(DATA, epochs=1)
    finally:
        await control.clear_faults()
        await store.aclose()


# -- failover ------------------------------------------------------------------------------------

async def test_publisher_failover_and_demotion(emulator: RunningEmulator,
                                               control: EmulatorControl) -> None:
    bad, good = f"{emulator.url}/bad", f"{emulator.url}/good"
    store = HttpBlobStore([bad, good], [emulator.url])
    try:
        await control.add_fault("store", "status", status=500, prefix="bad")
        first = await store.store(DATA, epochs=1)
        second = await store.store(DATA[:1000], epochs=1)
        assert await store.read_blob(first.blob_id) == DATA
        assert await store.read_blob(second.blob_id) == DATA[:1000]
        # the failing publisher was tried once, then demoted behind the healthy one
        assert await prefix_calls(control, "bad", "store") == 1
        assert await prefix_calls(control, "good", "store") == 2
    finally:
        await store.aclose()


async def test_aggregator_failover_and_rotation(emulator: RunningEmulator,
                                                control: EmulatorControl) -> None:
    one, two = f"{emulator.url}/one", f"{emulator.url}/two"
    store = HttpBlobStore([emulator.url], [one, two])
    try:
        blob = (await store.store(DATA, epochs=1)).blob_id
        await control.add_fault("read", "status", status=503, prefix="one", count=1)
        assert await store.read_range(blob, 5, 10) == DATA[5:15]
        assert await prefix_calls(control, "one", "read") == 1
        assert await prefix_calls(control, "two", "read") == 1
        # rotate=1 starts with the second-best aggregator (now "one", demoted: "two" is best)
        assert await store.read_range(blob, 5, 10, rotate=1) == DATA[5:15]
        assert await prefix_calls(control, "one", "read") == 2
    finally:
        await store.aclose()


async def test_404_from_every_aggregator_is_blob_not_found(
        walrus: RetryingBlobStore, control: EmulatorControl) -> None:
    with pytest.raises(BlobNotFound, match="404"):
        await walrus.read_range("A" * 43, 0, 10)
    assert await calls(control, "read") == FAST.not_found_attempts


async def test_a_404_right_after_a_store_is_retried(
        walrus: RetryingBlobStore, control: EmulatorControl) -> None:
    await control.add_fault("read", "not_found_after_store", reads=1)
    blob = (await walrus.store(DATA, epochs=1)).blob_id
    assert await walrus.read_range(blob, 0, 100) == DATA[:100]


async def test_expired_blob_is_not_found(walrus: RetryingBlobStore,
                                         control: EmulatorControl) -> None:
    blob = (await walrus.store(DATA, epochs=2)).blob_id
    await control.advance_epoch(1)
    assert await walrus.read_range(blob, 0, 3) == DATA[:3]
    await control.advance_epoch(1)
    with pytest.raises(BlobNotFound):
        await walrus.read_range(blob, 0, 3)


# -- read faults ---------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [500, 503])
async def test_transient_read_failures_are_retried(
        walrus: RetryingBlobStore, control: EmulatorControl, status: int) -> None:
    blob = (await walrus.store(DATA, epochs=1)).blob_id
    await control.add_fault("read", "status", status=status, count=2)
    assert await walrus.read_range(blob, 100, 1000) == DATA[100:1100]


async def test_an_aggregator_that_ignores_range_is_sliced_and_cached(
        walrus: RetryingBlobStore, http: HttpBlobStore, control: EmulatorControl) -> None:
    blob = (await walrus.store(DATA, epochs=1)).blob_id
    await control.add_fault("read", "ignore_range")
    assert await walrus.read_range(blob, 1000, 500) == DATA[1000:1500]
    assert http.stats.range_ignored == 1
    reads = await calls(control, "read")
    assert await walrus.read_range(blob, 90_000, 7) == DATA[90_000:90_007]
    assert await calls(control, "read") == reads  # served from the cache
    http.forget(blob)
    assert await walrus.read_range(blob, 90_000, 7) == DATA[90_000:90_007]
    assert await calls(control, "read") == reads + 1


async def test_a_range_past_the_end_is_refused_then_checked_whole(
        walrus: RetryingBlobStore, control: EmulatorControl) -> None:
    blob = (await walrus.store(DATA, epochs=1)).blob_id
    with pytest.raises(WalrusProtocolError, match="too short"):
        await walrus.read_range(blob, len(DATA) - 10, 20)


@pytest.mark.parametrize(("kind", "spec", "error"), [
    ("truncate", {}, WalrusUnavailable),
    ("short_body", {}, WalrusProtocolError),
    ("bad_content_range", {}, WalrusProtocolError),
    ("reset", {}, WalrusUnavailable),
])
async def test_broken_read_answers_are_detected_and_retried(
        walrus: RetryingBlobStore, http: HttpBlobStore, control: EmulatorControl,
        kind: str, spec: dict[str, Any], error: type[Exception]) -> None:
    blob = (await walrus.store(DATA, epochs=1)).blob_id
    await control.add_fault("read", kind, count=1, **spec)
    with pytest.raises(error):
        await http.read_range(blob, 10_000, 50_000)
    await control.add_fault("read", kind, count=1, **spec)
    assert await walrus.read_range(blob, 10_000, 50_000) == DATA[10_000:60_000]


async def test_the_client_passes_flipped_bits_through_for_the_reader_to_catch(
        walrus: RetryingBlobStore, control: EmulatorControl) -> None:
    """The client checks framing, not content: content is the verifying reader's job."""
    blob = (await walrus.store(DATA, epochs=1)).blob_id
    await control.add_fault("read", "bitflip", count=1)
    got = await walrus.read_range(blob, 0, 1000)
    assert len(got) == 1000
    assert got != DATA[:1000]


async def test_invalid_blob_id_is_refused_without_a_request(
        walrus: RetryingBlobStore, control: EmulatorControl) -> None:
    with pytest.raises(WalrusRequestError, match="not a Walrus blob ID"):
        await walrus.read_range("../../etc/passwd", 0, 1)
    assert await calls(control, "read") == 0


async def test_no_endpoints_configured() -> None:
    store = HttpBlobStore([], [])
    try:
        with pytest.raises(WalrusRequestError, match="no Walrus publisher"):
            await store.store(b"x", epochs=1)
        with pytest.raises(WalrusRequestError, match="no Walrus aggregator"):
            await store.read_range("A" * 43, 0, 1)
    finally:
        await store.aclose()
