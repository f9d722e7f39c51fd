"""Aggregator reads over real HTTP: headers, Range, /byte-range, by-object-id, expiry."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.emulator.helpers import Starter, error_reason, store, store_id
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.ids import fake_blob_id

DATA = bytes(range(256)) * 4  # 1024 bytes, every byte value
CACHE_CONTROL = "public, max-age=86400, stale-while-revalidate=3600"


async def test_whole_read_headers(http: httpx.AsyncClient) -> None:
    blob_id = await store_id(http, DATA)
    response = await http.get(f"/v1/blobs/{blob_id}")
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["etag"] == blob_id  # unquoted
    assert response.headers["cache-control"] == CACHE_CONTROL
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-length"] == "1024"
    assert response.headers["access-control-allow-origin"] == "*"
    assert "content-type" not in response.headers
    assert "content-range" not in response.headers
    assert "accept-ranges" not in response.headers


async def test_content_type_mirrors_accept_or_request_type(http: httpx.AsyncClient) -> None:
    blob_id = await store_id(http, DATA)
    url = f"/v1/blobs/{blob_id}"
    mirrored = await http.get(url, headers={"Accept": "image/png"})
    assert mirrored.headers["content-type"] == "image/png"
    wildcard = await http.get(url, headers={"Accept": "image/*"})
    assert "content-type" not in wildcard.headers
    from_request = await http.get(url, headers={"Content-Type": "text/csv"})
    assert from_request.headers["content-type"] == "text/csv"


async def test_head_has_the_headers_and_no_body(http: httpx.AsyncClient) -> None:
    blob_id = await store_id(http, DATA)
    response = await http.head(f"/v1/blobs/{blob_id}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "1024"
    assert response.headers["etag"] == blob_id
    ranged = await http.head(f"/v1/blobs/{blob_id}", headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == "bytes 10-19/1024"
    assert ranged.headers["content-length"] == "10"
    missing = await http.head(f"/v1/blobs/{fake_blob_id(b'nothing')}")
    assert missing.status_code == 404


async def test_single_range_is_206_with_content_range(http: httpx.AsyncClient) -> None:
    blob_id = await store_id(http, DATA)
    for start, end in ((0, 0), (10, 19), (1000, 1023), (0, 1023)):
        response = await http.get(f"/v1/blobs/{blob_id}",
                                  headers={"Range": f"bytes={start}-{end}"})
        assert response.status_code == 206
        assert response.content == DATA[start:end + 1]
        assert response.headers["content-range"] == f"bytes {start}-{end}/1024"
        assert response.headers["content-length"] == str(end - start + 1)
        assert response.headers["etag"] == blob_id
        assert response.headers["cache-control"] == CACHE_CONTROL


@pytest.mark.parametrize("header", [
    "bytes=500-",          # open-ended
    "bytes=-500",          # suffix
    "bytes=0-1,5-6",       # multiple ranges
    "bytes=20-10",         # start > end
    "bytes=0-1024",        # end == size
    "bytes=1000-5000",     # end past the end
    "items=0-1",           # not bytes
])
async def test_unsupported_ranges_are_416_json(http: httpx.AsyncClient, header: str) -> None:
    blob_id = await store_id(http, DATA)
    response = await http.get(f"/v1/blobs/{blob_id}", headers={"Range": header})
    assert error_reason(response) == (416, "RANGE_NOT_SATISFIABLE", "INVALID_BYTE_RANGE")


async def test_any_range_of_an_empty_blob_is_416(http: httpx.AsyncClient) -> None:
    blob_id = await store_id(http, b"")
    response = await http.get(f"/v1/blobs/{blob_id}", headers={"Range": "bytes=0-0"})
    assert response.status_code == 416


async def test_range_of_unknown_blob_is_404(http: httpx.AsyncClient) -> None:
    response = await http.get(f"/v1/blobs/{fake_blob_id(b'x')}", headers={"Range": "bytes=0-1"})
    assert response.status_code == 404


async def test_unknown_blob_is_404_blob_not_found(http: httpx.AsyncClient) -> None:
    response = await http.get(f"/v1/blobs/{fake_blob_id(b'never stored')}")
    assert error_reason(response) == (404, "NOT_FOUND", "BLOB_NOT_FOUND")
    assert response.json()["error"]["details"][0]["domain"] == "daemon.walrus.space"


@pytest.mark.parametrize("path", ["/v1/blobs/short", "/v1/blobs/" + "!" * 43,
                                  "/v1/blobs/" + "A" * 44, "/v1/blobs/short/byte-range"])
async def test_malformed_blob_id_is_400_plain_text(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path, params={"start": "0", "length": "1"}
                              if path.endswith("byte-range") else None)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")


async def test_read_query_parameters(http: httpx.AsyncClient) -> None:
    blob_id = await store_id(http, DATA)
    url = f"/v1/blobs/{blob_id}"
    for flag in ("strict_consistency_check", "skip_consistency_check"):
        assert (await http.get(url, params={flag: "true"})).status_code == 200
    both = await http.get(url, params={"strict_consistency_check": "true",
                                       "skip_consistency_check": "true"})
    assert error_reason(both) == (400, "INVALID_ARGUMENT", "INVALID_CONSISTENCY_CHECK")
    buster = await http.get(url, params={"cb": "123"})  # unknown keys are refused
    assert buster.status_code == 400
    assert buster.headers["content-type"].startswith("text/plain")


async def test_byte_range_endpoint(http: httpx.AsyncClient) -> None:
    blob_id = await store_id(http, DATA)
    response = await http.get(f"/v1/blobs/{blob_id}/byte-range",
                              params={"start": "100", "length": "24"})
    assert response.status_code == 200  # deliberately not 206
    assert response.content == DATA[100:124]
    assert response.headers["etag"] == f"{blob_id}-100-24"
    assert response.headers["cache-control"] == CACHE_CONTROL
    assert "content-range" not in response.headers
    assert "content-type" not in response.headers
    last = await http.get(f"/v1/blobs/{blob_id}/byte-range",
                          params={"start": "1023", "length": "1"})
    assert last.content == DATA[1023:]


@pytest.mark.parametrize("params", [
    {"start": "0", "length": "0"},
    {"start": "1000", "length": "25"},
    {"start": "1024", "length": "1"},
    {"start": str(2**64 - 1), "length": "1"},
])
async def test_byte_range_refusals_are_400_json(http: httpx.AsyncClient,
                                                params: dict[str, str]) -> None:
    blob_id = await store_id(http, DATA)
    response = await http.get(f"/v1/blobs/{blob_id}/byte-range", params=params)
    assert error_reason(response) == (400, "INVALID_ARGUMENT", "INVALID_BYTE_RANGE")


@pytest.mark.parametrize("params", [
    {"start": "0"},
    {"length": "1"},
    {"start": "x", "length": "1"},
    {"start": "0", "length": "1", "cb": "1"},
    {"start": str(2**64), "length": "1"},
])
async def test_byte_range_bad_query_is_400_plain_text(http: httpx.AsyncClient,
                                                      params: dict[str, str]) -> None:
    blob_id = await store_id(http, DATA)
    response = await http.get(f"/v1/blobs/{blob_id}/byte-range", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")


async def test_byte_range_of_unknown_blob_is_404(http: httpx.AsyncClient) -> None:
    response = await http.get(f"/v1/blobs/{fake_blob_id(b'x')}/byte-range",
                              params={"start": "0", "length": "1"})
    assert error_reason(response)[2] == "BLOB_NOT_FOUND"


async def test_by_object_id(http: httpx.AsyncClient, control: EmulatorControl) -> None:
    first = (await store(http, DATA))["newlyCreated"]["blobObject"]
    second = (await store(http, DATA))["newlyCreated"]["blobObject"]
    for object_id in (first["id"], second["id"], first["id"].upper().replace("0X", "0x")):
        response = await http.get(f"/v1/blobs/by-object-id/{object_id}")
        assert response.status_code == 200
        assert response.content == DATA
        assert response.headers["etag"] == first["blobId"]
    ranged = await http.get(f"/v1/blobs/by-object-id/{first['id']}",
                            headers={"Range": "bytes=1-2"})
    assert ranged.status_code == 206 and ranged.content == DATA[1:3]
    unknown = await http.get("/v1/blobs/by-object-id/0x" + "ab" * 32)
    assert error_reason(unknown)[2] == "BLOB_NOT_FOUND"
    assert (await http.get("/v1/blobs/by-object-id/not-an-id")).status_code == 400


async def test_by_object_id_serves_allowed_attributes_as_headers(
        http: httpx.AsyncClient, control: EmulatorControl) -> None:
    blob = (await store(http, DATA))["newlyCreated"]["blobObject"]
    await control.set_attributes(blob["id"], {"content-type": "image/png",
                                              "content-disposition": "inline",
                                              "x-private": "never"})
    response = await http.get(f"/v1/blobs/by-object-id/{blob['id']}")
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == "inline"
    assert "x-private" not in response.headers
    # Headers already set (here from Accept) are never overwritten by attributes.
    accept = await http.get(f"/v1/blobs/by-object-id/{blob['id']}",
                            headers={"Accept": "text/plain"})
    assert accept.headers["content-type"] == "text/plain"
    # The plain route never adds attribute headers.
    plain = await http.get(f"/v1/blobs/{blob['blobId']}")
    assert "content-disposition" not in plain.headers


async def test_expiry_at_the_epoch_boundary(http: httpx.AsyncClient,
                                            control: EmulatorControl) -> None:
    await control.set_epoch(10)
    created = (await store(http, DATA, epochs=2))["newlyCreated"]["blobObject"]
    blob_id, object_id = created["blobId"], created["id"]
    assert created["storage"]["endEpoch"] == 12
    await control.set_epoch(11)  # the last epoch it lives in
    assert (await http.get(f"/v1/blobs/{blob_id}")).status_code == 200
    await control.set_epoch(12)  # gone at the start of its end epoch
    for path, params in ((f"/v1/blobs/{blob_id}", None),
                         (f"/v1/blobs/{blob_id}/byte-range", {"start": "0", "length": "1"}),
                         (f"/v1/blobs/by-object-id/{object_id}", None)):
        response = await http.get(path, params=params)
        assert error_reason(response) == (404, "NOT_FOUND", "BLOB_NOT_FOUND")
    assert (await http.head(f"/v1/blobs/{blob_id}")).status_code == 404
    # Storing the same bytes again buys a new lifetime for the same blob ID.
    assert await store_id(http, DATA, epochs=1) == blob_id
    assert (await http.get(f"/v1/blobs/{blob_id}")).content == DATA
    info = await control.blob(blob_id)
    assert info is not None and info["end_epoch"] == 13 and len(info["objects"]) == 2


async def test_lifetime_is_the_longest_object(http: httpx.AsyncClient,
                                              control: EmulatorControl) -> None:
    blob_id = await store_id(http, DATA, epochs=5)
    await store_id(http, DATA, epochs=1)
    await control.advance_epoch(4)
    assert (await http.get(f"/v1/blobs/{blob_id}")).status_code == 200
    await control.advance_epoch(1)
    assert (await http.get(f"/v1/blobs/{blob_id}")).status_code == 404


async def test_wall_clock_epochs_expire_blobs(start: Starter) -> None:
    running = await start(epoch_seconds=0.3)
    state = running.emulator.state
    async with httpx.AsyncClient(base_url=running.url) as client:
        first = state.epoch
        blob = (await store(client, DATA))["newlyCreated"]["blobObject"]
        assert blob["storage"]["endEpoch"] == blob["registeredEpoch"] + 1
        end = blob["storage"]["endEpoch"]
        for _ in range(100):  # an epoch is 0.3 s; give up after 5 s
            status = (await client.get(f"/v1/blobs/{blob['blobId']}")).status_code
            if state.epoch >= end:
                break
            assert status == 200  # the server answered before the end epoch began
            await asyncio.sleep(0.05)
        assert state.epoch > first
        assert (await client.get(f"/v1/blobs/{blob['blobId']}")).status_code == 404


async def test_status_api_cors_and_unknown_routes(http: httpx.AsyncClient) -> None:
    status = await http.get("/status")
    assert status.status_code == 200 and status.text == "OK"
    api = await http.get("/v1/api")
    assert api.status_code == 200 and api.headers["content-type"].startswith("text/html")
    preflight = await http.request("OPTIONS", "/v1/blobs", headers={
        "Origin": "https://example.org", "Access-Control-Request-Method": "PUT"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert (await http.get("/v1/nothing/here/at/all")).status_code == 404
    assert (await http.delete("/v1/blobs")).status_code in (404, 405)  # no DELETE route
    assert (await http.get("/prefix/status")).text == "OK"
