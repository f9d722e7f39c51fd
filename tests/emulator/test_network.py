"""The distant-network profile: latency, per-connection and link bandwidth, over real HTTP.

Sizes and rates are small (1 MB bodies at 2 MB/s) to keep the tests fast; the bounds are
tolerant (0.8x to 3x the expected time) yet fail when a delay or a cap is missing.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable
from typing import TypeVar

import httpx
import pytest

from tests.emulator.helpers import Starter, store_id
from walrusds.cli.cmd_emulator import parse_network
from walrusds.cli.main import build_parser, main
from walrusds.client.http import HttpBlobStore
from walrusds.emulator.config import EmulatorConfig
from walrusds.emulator.control import ControlError, EmulatorControl
from walrusds.emulator.ids import fake_blob_id
from walrusds.emulator.network import (
    NetworkProfile,
    format_bandwidth,
    parse_bandwidth,
    parse_latency,
)

T = TypeVar("T")

MB = 1_000_000
RATE = 2 * MB
BODY = os.urandom(MB)
#: Seconds a BODY takes at RATE.
BODY_TIME = len(BODY) / RATE
LATENCY = 0.3
OFF = {"latency": 0.0, "bandwidth": None, "connection_bandwidth": None}


async def timed(call: Awaitable[T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = await call
    return result, time.perf_counter() - started


def about(elapsed: float, expected: float) -> bool:
    return 0.8 * expected <= elapsed <= 3 * expected


async def test_latency_delays_every_answer_but_the_control_surface(start: Starter) -> None:
    running = await start(latency=LATENCY)
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
        blob_id = await store_id(http, b"far away")
        calls = {
            "status": http.get("/status"),
            "store": http.put("/v1/blobs", content=b"stored from afar"),
            "read": http.get(f"/v1/blobs/{blob_id}"),
            "head": http.head(f"/v1/blobs/{blob_id}"),
            "range": http.get(f"/v1/blobs/{blob_id}", headers={"Range": "bytes=0-2"}),
            "missing": http.get(f"/v1/blobs/{fake_blob_id(b'none')}"),
            "bad path": http.get("/v1/blobs/not-an-id"),
            "no route": http.get("/v2/nothing"),
            "prefixed": http.get(f"/key/v1/blobs/{blob_id}"),
        }
        results = await asyncio.gather(*(timed(call) for call in calls.values()))
        for name, (response, elapsed) in zip(calls, results, strict=True):
            assert response.status_code in (200, 206, 400, 404), name
            assert LATENCY <= elapsed <= 3 * LATENCY, (name, elapsed)
        for path in ("/_emulator/state", "/_emulator/network", "/_emulator/counters"):
            _, elapsed = await timed(http.get(path))
            assert elapsed < LATENCY, path


async def test_latency_comes_before_fault_answers_and_adds_to_a_delay(start: Starter) -> None:
    running = await start(latency=LATENCY)
    ids = {kind: fake_blob_id(kind.encode()) for kind in ("delay", "status", "reset")}
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as http, \
            EmulatorControl(running.url) as control:
        stored = await asyncio.gather(*(store_id(http, kind.encode()) for kind in ids))
        assert stored == list(ids.values())
        await control.add_fault("read", "delay", delay=LATENCY, blob_id=ids["delay"])
        await control.add_fault("read", "status", status=503, blob_id=ids["status"])
        await control.add_fault("read", "reset", blob_id=ids["reset"])

        async def reset_read() -> float:
            started = time.perf_counter()
            with pytest.raises(httpx.TransportError):
                await http.get(f"/v1/blobs/{ids['reset']}")
            return time.perf_counter() - started

        (delayed, delay_time), (failed, status_time), reset_time = await asyncio.gather(
            timed(http.get(f"/v1/blobs/{ids['delay']}")),
            timed(http.get(f"/v1/blobs/{ids['status']}")),
            reset_read())
    assert delayed.content == b"delay" and 2 * LATENCY <= delay_time <= 6 * LATENCY
    assert failed.status_code == 503 and LATENCY <= status_time <= 3 * LATENCY
    assert LATENCY <= reset_time <= 3 * LATENCY


async def test_bodies_take_their_size_over_the_connection_bandwidth(start: Starter) -> None:
    running = await start(connection_bandwidth=RATE)
    store = HttpBlobStore([running.url], [running.url])
    try:
        stored, upload_time = await timed(store.store(BODY, epochs=1))
        assert about(upload_time, BODY_TIME), upload_time
        whole, read_time = await timed(store.read_blob(stored.blob_id))
        assert whole == BODY and about(read_time, BODY_TIME), read_time
        half = len(BODY) // 2
        part, range_time = await timed(store.read_range(stored.blob_id, half, half))
        assert part == BODY[half:] and about(range_time, BODY_TIME / 2), range_time
    finally:
        await store.aclose()


async def test_concurrent_readers_share_the_link_fairly(start: Starter) -> None:
    running = await start()
    async with httpx.AsyncClient(base_url=running.url, timeout=30) as http, \
            EmulatorControl(running.url) as control:
        blob_id = await store_id(http, BODY)
        await control.set_network(bandwidth=2 * RATE, connection_bandwidth=RATE)

        async def read() -> float:
            response, elapsed = await timed(http.get(f"/v1/blobs/{blob_id}"))
            assert response.content == BODY
            return elapsed

        # Two readers fit in the link: each goes at its connection's rate.
        for elapsed in await asyncio.gather(read(), read()):
            assert about(elapsed, BODY_TIME), elapsed
        # Four do not: together they get the link (4 MB in 1 s), each a fair quarter of it,
        # not the 8 MB/s that four unlimited connections would take.
        times = await asyncio.gather(*(read() for _ in range(4)))
        for elapsed in times:
            assert about(elapsed, 4 * len(BODY) / (2 * RATE)), times


async def test_the_control_surface_changes_the_profile_for_new_answers(
        start: Starter) -> None:
    running = await start()
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as http, \
            EmulatorControl(running.url) as control:
        blob_id = await store_id(http, BODY)
        assert await control.network() == OFF
        _, elapsed = await timed(http.get(f"/v1/blobs/{blob_id}"))
        assert elapsed < 0.8 * BODY_TIME

        profile = {"latency": 0.1, "bandwidth": None, "connection_bandwidth": RATE}
        assert await control.set_network(latency=0.1, connection_bandwidth=RATE) == profile
        assert await control.network() == profile
        assert (await control.state())["network"] == profile
        _, elapsed = await timed(http.get(f"/v1/blobs/{blob_id}"))
        assert about(elapsed, 0.1 + BODY_TIME), elapsed

        # Fields not named stay as they are; None lifts a cap.
        await control.set_network(connection_bandwidth=None)
        assert await control.network() == dict(profile, connection_bandwidth=None)
        _, elapsed = await timed(http.get(f"/v1/blobs/{blob_id}"))
        assert 0.1 <= elapsed < 0.1 + 0.8 * BODY_TIME
        assert await control.set_network(latency=0) == OFF


async def test_invalid_profiles_are_refused_and_change_nothing(start: Starter) -> None:
    running = await start(latency=0.01)
    before = {"latency": 0.01, "bandwidth": None, "connection_bandwidth": None}
    async with httpx.AsyncClient(base_url=running.url + "/_emulator", timeout=10) as http:
        for body, message in ((b'{"latency": -1}', "latency must be between"),
                              (b'{"latency": 61}', "latency must be between"),
                              (b'{"latency": "100ms"}', "latency must be a finite number"),
                              (b'{"latency": null}', "not null"),
                              (b'{"latency": true}', "latency must be a finite number"),
                              (b'{"bandwidth": 0}', "at least 1 byte/s"),
                              (b'{"connection_bandwidth": -5}', "at least 1 byte/s"),
                              (b'{"bandwidth": Infinity}', "finite number"),
                              (b'{"bandwidth": 1e6, "latency": -1}', "latency"),
                              (b'{"jitter": 0.1}', "unknown network fields"),
                              (b"[0.1]", "JSON object"),
                              (b"not json", "not JSON")):
            response = await http.post("/network", content=body)
            assert response.status_code == 400, body
            assert message in response.json()["error"], (body, response.json())
        assert (await http.get("/network")).json() == before
    async with EmulatorControl(running.url) as control:
        with pytest.raises(ControlError, match="400 bandwidth must be at least"):
            await control.set_network(bandwidth=0.5)
    for fields in ({"latency": -0.1}, {"latency": float("nan")}, {"bandwidth": 0},
                   {"connection_bandwidth": float("inf")}):
        with pytest.raises(ValueError, match=r"latency|bandwidth"):
            EmulatorConfig(**fields)


async def test_faults_keep_working_under_a_profile(start: Starter) -> None:
    running = await start()
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as http, \
            EmulatorControl(running.url) as control:
        blob_id = await store_id(http, BODY)
        await control.set_network(latency=0.05, connection_bandwidth=RATE)
        await control.add_fault("read", "truncate", count=1)
        started = time.perf_counter()
        with pytest.raises(httpx.TransportError):
            await http.get(f"/v1/blobs/{blob_id}")
        # The half that was sent crossed the network at its pace before the reset.
        assert about(time.perf_counter() - started, 0.05 + BODY_TIME / 2)
        await control.add_fault("read", "bitflip", count=1)
        span = {"Range": "bytes=0-9999"}
        flipped = await http.get(f"/v1/blobs/{blob_id}", headers=span)
        assert len(flipped.content) == 10_000 and flipped.content != BODY[:10_000]
        assert (await http.get(f"/v1/blobs/{blob_id}", headers=span)).content == BODY[:10_000]


async def test_stopping_the_emulator_ends_latencies_and_pacing_at_once(start: Starter) -> None:
    running = await start()
    async with httpx.AsyncClient(base_url=running.url, timeout=30) as http:
        blob_id = await store_id(http, BODY)
        # Without the release, the read would take 10 s and the status call 30 s.
        running.emulator.network.set(NetworkProfile(connection_bandwidth=100_000))
        read = asyncio.create_task(http.get(f"/v1/blobs/{blob_id}"))
        await asyncio.sleep(0.3)
        running.emulator.network.set(NetworkProfile(latency=30))
        status = asyncio.create_task(http.get("/status"))
        await asyncio.sleep(0.3)
        _, elapsed = await timed(running.stop())
        assert elapsed < 1.5
        assert (await read).content == BODY
        assert (await status).text == "OK"


@pytest.mark.parametrize(("text", "seconds"), [
    ("100ms", 0.1), ("0.1s", 0.1), ("1.5 s", 1.5), (".5ms", 0.0005), ("0", 0.0), ("60s", 60.0),
])
def test_latency_units(text: str, seconds: float) -> None:
    assert parse_latency(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "rate"), [
    ("200MB/s", 200e6), ("50MB/s", 50e6), ("1.5GB/s", 1.5e9), ("500kB/s", 500e3),
    ("10B/s", 10), ("64MiB/s", 64 << 20), ("512 KiB/s", 512 << 10), ("1GiB/s", 1 << 30),
])
def test_bandwidth_units(text: str, rate: float) -> None:
    assert parse_bandwidth(text) == rate


@pytest.mark.parametrize("text", ["100", "100us", "-1s", "61s", "0.1 sec", "fast"])
def test_bad_latencies_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="latency"):
        parse_latency(text)


@pytest.mark.parametrize("text", ["200Mb/s", "200mb/s", "200KB/s", "200MB", "0MB/s", "1e3MB/s",
                                  "200 MBps", ""])
def test_bad_bandwidths_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bandwidth"):
        parse_bandwidth(text)


def test_profile_descriptions() -> None:
    assert format_bandwidth(200e6) == "200 MB/s"
    assert format_bandwidth(64 << 20) == "64 MiB/s"
    assert format_bandwidth(123) == "123 B/s"
    profile = NetworkProfile(latency=0.1, bandwidth=200e6, connection_bandwidth=50e6)
    assert profile.describe() == "100 ms, link 200 MB/s, 50 MB/s per connection"


def test_cli_options_build_the_profile() -> None:
    args = build_parser().parse_args(["emulator", "--latency", "100ms", "--bandwidth",
                                      "200MB/s", "--connection-bandwidth", "50MB/s"])
    assert parse_network(args) == NetworkProfile(latency=0.1, bandwidth=200e6,
                                                 connection_bandwidth=50e6)
    assert parse_network(build_parser().parse_args(["emulator"])) == NetworkProfile()


@pytest.mark.parametrize(("option", "value"), [
    ("--latency", "100"), ("--bandwidth", "200Mb/s"), ("--connection-bandwidth", "0B/s"),
])
def test_cli_refuses_a_bad_profile_in_one_line(option: str, value: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulator", "--listen", "127.0.0.1:0", option, value]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"walrusds emulator: {option}: " in err
