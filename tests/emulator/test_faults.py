"""Every fault kind, over real HTTP, injected through the control surface (EmulatorControl)."""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import pytest

from tests.emulator.helpers import Starter, error_reason, store, store_id
from walrusds.emulator.control import ControlError, EmulatorControl
from walrusds.emulator.ids import fake_blob_id
from walrusds.emulator.runner import RunningEmulator

DATA = bytes(range(256)) * 4
OTHER = b"z" * 2048


async def assert_not_stored(http: httpx.AsyncClient, data: bytes) -> None:
    assert (await http.get(f"/v1/blobs/{fake_blob_id(data)}")).status_code == 404


# -- publisher faults ------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "reason", "aip"), [
    (500, "INTERNAL_ERROR", "INTERNAL"),
    (504, "INSUFFICIENT_CONFIRMATIONS", "DEADLINE_EXCEEDED"),
    (451, "FORBIDDEN_BLOB", "UNAVAILABLE_FOR_LEGAL_REASONS"),
])
async def test_store_status_faults_have_json_bodies(
        http: httpx.AsyncClient, control: EmulatorControl,
        status: int, reason: str, aip: str) -> None:
    await control.add_fault("store", "status", status=status, count=1)
    response = await http.put("/v1/blobs", content=DATA)
    assert error_reason(response) == (status, aip, reason)
    await assert_not_stored(http, DATA)
    assert (await http.put("/v1/blobs", content=DATA)).status_code == 200  # count was 1


@pytest.mark.parametrize(("status", "text"), [
    (429, "the publisher is receiving too many requests; please try again later"),
    (413, "Failed to buffer the request body: length limit exceeded"),
])
async def test_store_status_faults_with_plain_text(
        http: httpx.AsyncClient, control: EmulatorControl, status: int, text: str) -> None:
    await control.add_fault("store", "status", status=status)
    response = await http.put("/v1/blobs", content=DATA)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == text


async def test_store_delay(http: httpx.AsyncClient, control: EmulatorControl) -> None:
    await control.add_fault("store", "delay", delay=0.3, count=1)
    began = time.monotonic()
    assert (await http.put("/v1/blobs", content=DATA)).status_code == 200
    assert time.monotonic() - began >= 0.3


async def test_clearing_faults_ends_pending_delays(http: httpx.AsyncClient,
                                                   control: EmulatorControl) -> None:
    await control.add_fault("store", "delay", delay=600)
    began = time.monotonic()
    pending = asyncio.ensure_future(http.put("/v1/blobs", content=DATA))
    await asyncio.sleep(0.2)
    assert not pending.done()
    await control.clear_faults()
    assert (await pending).status_code == 200
    assert time.monotonic() - began < 10
    assert await control.faults() == []


async def test_store_reset_before_store(http: httpx.AsyncClient,
                                        control: EmulatorControl) -> None:
    await control.add_fault("store", "reset", count=1)
    with pytest.raises(httpx.TransportError):
        await http.put("/v1/blobs", content=DATA)
    await assert_not_stored(http, DATA)
    counters = await control.counters()
    assert counters["statuses"]["store"] == {"444": 1}


async def test_store_reset_after_the_blob_was_stored(http: httpx.AsyncClient,
                                                     control: EmulatorControl) -> None:
    await control.add_fault("store", "reset_after_store", count=1)
    with pytest.raises(httpx.TransportError):
        await http.put("/v1/blobs", content=DATA)
    read = await http.get(f"/v1/blobs/{fake_blob_id(DATA)}")
    assert read.status_code == 200 and read.content == DATA


async def test_store_success_after_the_client_timed_out(http: httpx.AsyncClient,
                                                        control: EmulatorControl) -> None:
    await control.add_fault("store", "delay_after_store", delay=600, count=1)
    with pytest.raises(httpx.TimeoutException):
        await http.put("/v1/blobs", content=DATA, timeout=0.3)
    assert (await http.get(f"/v1/blobs/{fake_blob_id(DATA)}")).content == DATA
    await control.clear_faults()


async def test_store_error_inside_a_200(http: httpx.AsyncClient,
                                        control: EmulatorControl) -> None:
    await control.add_fault("store", "error_200", count=1)
    response = await http.put("/v1/blobs", content=DATA)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"blobId", "failurePhase", "errorMsg"}
    assert body["error"]["blobId"] == fake_blob_id(DATA)
    await assert_not_stored(http, DATA)


async def test_store_bad_json(http: httpx.AsyncClient, control: EmulatorControl) -> None:
    await control.add_fault("store", "bad_json", count=1)
    response = await http.put("/v1/blobs", content=DATA)
    assert response.status_code == 200
    with pytest.raises(ValueError):  # noqa: PT011 - json's own error type
        response.json()


async def test_store_stale_already_certified(http: httpx.AsyncClient,
                                             control: EmulatorControl) -> None:
    await control.add_fault("store", "stale_certified", count=1)
    body = await store(http, DATA, epochs=5)
    certified = body["alreadyCertified"]
    assert certified["blobId"] == fake_blob_id(DATA)
    assert certified["endEpoch"] < 1 + 5  # shorter than asked (MystenLabs/walrus#1077)
    assert (await http.get(f"/v1/blobs/{certified['blobId']}")).status_code == 200


async def test_store_faults_filtered_by_min_size_and_prefix(
        http: httpx.AsyncClient, control: EmulatorControl) -> None:
    await control.add_fault("store", "status", status=413, min_size=1000)
    await control.add_fault("store", "status", status=504, prefix="slow")
    assert (await http.put("/v1/blobs", content=b"s" * 1000)).status_code == 200
    assert (await http.put("/v1/blobs", content=b"s" * 1001)).status_code == 413
    assert (await http.put("/slow/v1/blobs", content=b"tiny")).status_code == 504
    assert (await http.put("/fast/v1/blobs", content=b"tiny")).status_code == 200


# -- aggregator faults -----------------------------------------------------------------------

@pytest.mark.parametrize(("route", "status", "reason"), [
    ("read", 503, "BLOB_UNAVAILABLE"),
    ("read", 500, "INTERNAL_ERROR"),
    ("read", 404, "BLOB_NOT_FOUND"),
    ("aggregator", 451, "FORBIDDEN_BLOB"),
])
async def test_read_status_faults(http: httpx.AsyncClient, control: EmulatorControl,
                                  route: str, status: int, reason: str) -> None:
    blob_id = await store_id(http, DATA)
    await control.add_fault(route, "status", status=status, count=1)
    response = await http.get(f"/v1/blobs/{blob_id}")
    assert response.status_code == status
    assert error_reason(response)[2] == reason
    assert (await http.get(f"/v1/blobs/{blob_id}")).status_code == 200


async def test_blob_too_large_above_a_size(http: httpx.AsyncClient,
                                           control: EmulatorControl) -> None:
    small, big = await store_id(http, b"s" * 100), await store_id(http, DATA)
    await control.add_fault("aggregator", "status", status=403, min_size=500)
    assert (await http.get(f"/v1/blobs/{small}")).status_code == 200
    response = await http.get(f"/v1/blobs/{big}/byte-range", params={"start": 0, "length": 1})
    assert error_reason(response) == (403, "SIZE_EXCEEDED", "BLOB_TOO_LARGE")


async def test_read_status_fault_fires_for_unknown_blobs_too(
        http: httpx.AsyncClient, control: EmulatorControl) -> None:
    await control.add_fault("read", "status", status=503)
    response = await http.get(f"/v1/blobs/{fake_blob_id(b'unknown')}")
    assert response.status_code == 503


async def test_slow_first_byte(http: httpx.AsyncClient, control: EmulatorControl) -> None:
    blob_id = await store_id(http, DATA)
    await control.add_fault("read", "delay", delay=0.3, count=1)
    began = time.monotonic()
    assert (await http.get(f"/v1/blobs/{blob_id}")).content == DATA
    assert time.monotonic() - began >= 0.3


async def test_read_reset(http: httpx.AsyncClient, control: EmulatorControl) -> None:
    blob_id = await store_id(http, DATA)
    await control.add_fault("read", "reset", count=1)
    with pytest.raises(httpx.TransportError):
        await http.get(f"/v1/blobs/{blob_id}")
    assert (await http.get(f"/v1/blobs/{blob_id}")).content == DATA


async def test_truncated_body_keeps_the_full_length_headers(
        http: httpx.AsyncClient, control: EmulatorControl) -> None:
    blob_id = await store_id(http, DATA)
    await control.add_fault("read", "truncate", keep=100, count=1)
    received = bytearray()
    async with http.stream("GET", f"/v1/blobs/{blob_id}",
                           headers={"Range": "bytes=0-999"}) as response:
        assert response.status_code == 206
        assert response.headers["content-length"] == "1000"
        assert response.headers["content-range"] == "bytes 0-999/1024"
        with pytest.raises(httpx.TransportError):
            await _drain(response, received)
    assert bytes(received) == DATA[:100]


async def _drain(response: httpx.Response, into: bytearray) -> None:
    async for chunk in response.aiter_raw():
        into += chunk


async def test_short_body(http: httpx.AsyncClient, control: EmulatorControl) -> None:
    blob_id = await store_id(http, DATA)
    await control.add_fault("read", "short_body", count=1)
    response = await http.get(f"/v1/blobs/{blob_id}", headers={"Range": "bytes=10-109"})
    assert response.status_code == 206
    assert response.headers["content-range"] == "bytes 10-109/1024"
    assert response.content == DATA[10:109]  # one byte short, well framed


async def test_bitflip(http: httpx.AsyncClient, control: EmulatorControl) -> None:
    blob_id = await store_id(http, DATA)
    await control.add_fault("read", "bitflip", at=7, count=1)
    response = await http.get(f"/v1/blobs/{blob_id}")
    assert response.status_code == 200 and len(response.content) == len(DATA)
    diff = [i for i, (a, b) in enumerate(zip(response.content, DATA, strict=True)) if a != b]
    assert diff == [7]
    assert response.content[7] ^ DATA[7] == 1
    assert (await http.get(f"/v1/blobs/{blob_id}")).content == DATA  # first read only


async def test_ignore_range(http: httpx.AsyncClient, control: EmulatorControl) -> None:
    blob_id = await store_id(http, DATA)
    await control.add_fault("read", "ignore_range")
    response = await http.get(f"/v1/blobs/{blob_id}", headers={"Range": "bytes=5-9"})
    assert response.status_code == 200
    assert response.content == DATA
    assert "content-range" not in response.headers
    beyond = await http.get(f"/v1/blobs/{blob_id}", headers={"Range": "bytes=5-99999"})
    assert beyond.status_code == 200  # an old aggregator never looked at Range


async def test_wrong_slice(http: httpx.AsyncClient, control: EmulatorControl) -> None:
    blob_id = await store_id(http, DATA)
    await control.add_fault("read", "wrong_slice", count=1)
    response = await http.get(f"/v1/blobs/{blob_id}", headers={"Range": "bytes=10-19"})
    assert response.status_code == 206
    assert response.headers["content-range"] == "bytes 10-19/1024"
    assert response.content == DATA[11:21]


async def test_bad_content_range(http: httpx.AsyncClient, control: EmulatorControl) -> None:
    blob_id = await store_id(http, DATA)
    await control.add_fault("read", "bad_content_range", count=1)
    response = await http.get(f"/v1/blobs/{blob_id}", headers={"Range": "bytes=10-19"})
    assert response.status_code == 206
    assert response.content == DATA[10:20]
    assert response.headers["content-range"] == "bytes 11-20/1024"


async def test_other_blob(http: httpx.AsyncClient, control: EmulatorControl) -> None:
    blob_id = await store_id(http, DATA)
    await store_id(http, OTHER)
    await control.add_fault("byte_range", "other_blob", count=1)
    response = await http.get(f"/v1/blobs/{blob_id}/byte-range",
                              params={"start": 0, "length": 16})
    assert response.status_code == 200
    assert response.content == OTHER[:16]


async def test_not_found_for_the_first_reads_after_a_store(
        http: httpx.AsyncClient, control: EmulatorControl) -> None:
    await control.add_fault("aggregator", "not_found_after_store", reads=2)
    blob_id = await store_id(http, DATA)
    first = await http.get(f"/v1/blobs/{blob_id}")
    assert error_reason(first)[2] == "BLOB_NOT_FOUND"
    second = await http.get(f"/v1/blobs/{blob_id}/byte-range", params={"start": 0, "length": 1})
    assert second.status_code == 404
    assert (await http.get(f"/v1/blobs/{blob_id}")).status_code == 200
    await store_id(http, DATA)  # a new store opens a new window
    assert (await http.get(f"/v1/blobs/{blob_id}")).status_code == 404


async def test_faults_filtered_by_blob_and_head(http: httpx.AsyncClient,
                                                control: EmulatorControl) -> None:
    target, other = await store_id(http, DATA), await store_id(http, OTHER)
    await control.add_fault("read", "bitflip", blob_id=target)
    assert (await http.get(f"/v1/blobs/{other}")).content == OTHER
    assert (await http.head(f"/v1/blobs/{target}")).status_code == 200
    assert (await http.get(f"/v1/blobs/{target}")).content != DATA
    faults = await control.faults()
    assert faults[0]["fired"] == 1 and faults[0]["remaining"] is None


# -- counts, probabilities, removal ----------------------------------------------------------

async def test_count_then_normal_again(http: httpx.AsyncClient,
                                       control: EmulatorControl) -> None:
    blob_id = await store_id(http, DATA)
    fault_id = await control.add_fault("read", "status", status=503, count=2)
    codes = [(await http.get(f"/v1/blobs/{blob_id}")).status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    faults = await control.faults()
    assert faults == [{"id": fault_id, "spec": faults[0]["spec"], "remaining": 0, "fired": 2}]
    await control.remove_fault(fault_id)
    assert await control.faults() == []


async def _pattern(running: RunningEmulator, seed: int, calls: int) -> list[int]:
    async with httpx.AsyncClient(base_url=running.url) as client, \
            EmulatorControl(running.url) as ctl:
        blob_id = await store_id(client, DATA)
        await ctl.add_fault("read", "status", status=503, probability=0.5, seed=seed)
        return [(await client.get(f"/v1/blobs/{blob_id}")).status_code for _ in range(calls)]


async def test_probability_with_a_seed_is_reproducible(start: Starter) -> None:
    first = await _pattern(await start(), seed=42, calls=40)
    second = await _pattern(await start(), seed=42, calls=40)
    rng = random.Random(42)
    expected = [503 if rng.random() < 0.5 else 200 for _ in range(40)]
    assert first == second == expected
    assert 5 < first.count(503) < 35


async def test_load_shedding_above_concurrency_plus_buffer(start: Starter) -> None:
    running = await start(store_concurrency=1, store_buffer=1)
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as client, \
            EmulatorControl(running.url) as ctl:
        await ctl.add_fault("store", "delay", delay=600)
        calls = [asyncio.ensure_future(client.put("/v1/blobs", content=bytes([i])))
                 for i in range(3)]
        done, _ = await asyncio.wait(calls, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        shed = done.pop().result()
        assert shed.status_code == 429
        assert shed.text == ("the publisher is receiving too many requests; "
                             "please try again later")
        assert (await ctl.counters())["in_flight"]["publisher"] == 2
        # Reads have their own gate: they still flow while the publisher is busy.
        assert (await client.get(f"/v1/blobs/{fake_blob_id(b'x')}")).status_code == 404
        await ctl.clear_faults()
        responses = await asyncio.gather(*calls)
        assert sorted(r.status_code for r in responses) == [200, 200, 429]


async def test_aggregator_load_shedding(start: Starter) -> None:
    running = await start(read_concurrency=2, read_buffer=0)
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as client, \
            EmulatorControl(running.url) as ctl:
        blob_id = await store_id(client, DATA)
        await ctl.add_fault("read", "delay", delay=600)
        slow = [asyncio.ensure_future(client.get(f"/v1/blobs/{blob_id}")) for _ in range(2)]
        for _ in range(500):  # wait (up to 5 s) until both reads hold the gate
            if (await ctl.counters())["in_flight"]["aggregator"] == 2:
                break
            await asyncio.sleep(0.01)
        shed = await client.get(f"/v1/blobs/{blob_id}/byte-range",
                                params={"start": 0, "length": 1})
        assert shed.status_code == 429
        assert shed.text.startswith("the aggregator is receiving too many requests")
        await ctl.clear_faults()
        assert [r.status_code for r in await asyncio.gather(*slow)] == [200, 200]


async def test_aggregator_429_fault_is_plain_text(http: httpx.AsyncClient,
                                                  control: EmulatorControl) -> None:
    await control.add_fault("aggregator", "status", status=429, count=1)
    response = await http.get(f"/v1/blobs/{fake_blob_id(b'x')}")
    assert response.status_code == 429
    assert response.headers["content-type"].startswith("text/plain")
    assert "aggregator" in response.text


async def test_bad_fault_specs_are_refused(control: EmulatorControl) -> None:
    with pytest.raises(ControlError, match="does not apply") as caught:
        await control.add_fault("store", "truncate")
    assert caught.value.status == 400
    with pytest.raises(ControlError, match="unknown fault fields"):
        await control.add_fault("read", "delay", seconds=3)
    with pytest.raises(ControlError, match="404"):
        await control.remove_fault(999)
