"""``PUT /v1/blobs`` over real HTTP: JSON shapes, parameters, limits and dedup (notes §2, §9)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.emulator.helpers import Starter, error_reason, store, store_id
from walrusds.emulator.ids import fake_blob_id
from walrusds.emulator.runner import RunningEmulator

OBJECT_ID = re.compile(r"^0x[0-9a-f]{64}$")
BASE58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]+$")
DATA = b"hello walrus 17b!"  # 17 bytes, the size of the docs' example


async def test_newly_created_has_exactly_the_camel_case_shape(http: httpx.AsyncClient) -> None:
    response = await http.put("/v1/blobs", content=DATA)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"newlyCreated"}
    created = body["newlyCreated"]
    assert set(created) == {"blobObject", "resourceOperation", "cost"}  # no sharedBlobObject
    blob = created["blobObject"]
    assert set(blob) == {"id", "registeredEpoch", "blobId", "size", "encodingType",
                         "certifiedEpoch", "storage", "deletable"}
    assert OBJECT_ID.match(blob["id"])
    assert blob["blobId"] == fake_blob_id(DATA)
    assert blob["registeredEpoch"] == 1
    assert blob["size"] == 17
    assert blob["encodingType"] == "RS2"
    assert blob["certifiedEpoch"] is None
    assert blob["deletable"] is True
    storage = blob["storage"]
    assert set(storage) == {"id", "startEpoch", "endEpoch", "storageSize"}
    assert OBJECT_ID.match(storage["id"]) and storage["id"] != blob["id"]
    assert (storage["startEpoch"], storage["endEpoch"]) == (1, 2)
    assert storage["storageSize"] == 66_034_000
    assert created["resourceOperation"] == {
        "registerFromScratch": {"encodedLength": 66_034_000, "epochsAhead": 1}}
    assert created["cost"] == 132_300
    assert '"certifiedEpoch":null' in response.text


async def test_blob_ids_are_deterministic_43_character_ids(http: httpx.AsyncClient) -> None:
    first = await store_id(http, DATA)
    again = await store_id(http, DATA)
    other = await store_id(http, DATA + b"?")
    assert first == again != other
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", first)


async def test_empty_body_is_a_valid_blob(http: httpx.AsyncClient) -> None:
    result = await store(http, b"")
    blob = result["newlyCreated"]["blobObject"]
    assert blob["size"] == 0
    assert blob["storage"]["storageSize"] == 66_034_000
    read = await http.get(f"/v1/blobs/{blob['blobId']}")
    assert read.status_code == 200 and read.content == b""


async def test_epochs_set_the_end_epoch_and_the_cost(http: httpx.AsyncClient,
                                                     emulator: RunningEmulator) -> None:
    await emulator.emulator.state.set_epoch(10)
    created = (await store(http, DATA, epochs=53))["newlyCreated"]
    storage = created["blobObject"]["storage"]
    assert (storage["startEpoch"], storage["endEpoch"]) == (10, 63)
    assert created["blobObject"]["registeredEpoch"] == 10
    assert created["resourceOperation"]["registerFromScratch"]["epochsAhead"] == 53
    assert created["cost"] == 63 * (1000 * 53 + 1100)


@pytest.mark.parametrize("epochs", ["0", "54", "1000"])
async def test_epochs_out_of_range_is_an_internal_error(http: httpx.AsyncClient,
                                                        epochs: str) -> None:
    response = await http.put("/v1/blobs", params={"epochs": epochs}, content=DATA)
    assert response.status_code == 500
    assert error_reason(response) == (500, "INTERNAL", "INTERNAL_ERROR")
    error = response.json()["error"]
    assert error["message"] == "an internal error has occurred, please report it"
    assert error["details"][0]["domain"] == "global"
    assert error["details"][1]["@type"] == "DebugInfo"
    assert (await http.get(f"/v1/blobs/{fake_blob_id(DATA)}")).status_code == 404


@pytest.mark.parametrize("query", [
    {"epochs": "abc"},
    {"epochs": "-1"},
    {"epochs": str(2**32)},
    {"permanent": "yes"},
    {"force": "1"},
    {"cb": "123"},
    {"encoding_type": "RS1"},
    {"share": "true", "send_object_to": "0x1"},
    {"send_object_to": "nobody"},
])
async def test_bad_query_is_400_plain_text(http: httpx.AsyncClient,
                                           query: dict[str, str]) -> None:
    response = await http.put("/v1/blobs", params=query, content=DATA)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith("Failed to deserialize query string")


async def test_deletable_and_permanent_is_400_json(http: httpx.AsyncClient) -> None:
    response = await http.put("/v1/blobs", params={"deletable": "true", "permanent": "true"},
                              content=DATA)
    assert error_reason(response) == (400, "INVALID_ARGUMENT", "INVALID_BLOB_PERSISTENCE")
    ok = await store(http, DATA, deletable=True, encoding_type="RS2")
    assert ok["newlyCreated"]["blobObject"]["deletable"] is True  # deletable alone: no effect


@pytest.fixture
async def small(start: Starter) -> AsyncIterator[httpx.AsyncClient]:
    running = await start(max_body_size=1000)
    async with httpx.AsyncClient(base_url=running.url) as client:
        yield client


async def test_413_above_the_configured_body_size(small: httpx.AsyncClient) -> None:
    assert (await small.put("/v1/blobs", content=b"x" * 1000)).status_code == 200
    response = await small.put("/v1/blobs", content=b"x" * 1001)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/plain")
    assert "length limit exceeded" in response.text
    assert (await small.get(f"/v1/blobs/{fake_blob_id(b'x' * 1001)}")).status_code == 404


async def test_413_for_a_chunked_body_without_length(small: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 300

    response = await small.put("/v1/blobs", content=chunks())
    assert response.status_code == 413


async def test_default_limit_is_10_mib(http: httpx.AsyncClient) -> None:
    limit = 10 * 1024 * 1024
    assert (await http.put("/v1/blobs", content=b"\0" * limit)).status_code == 200
    assert (await http.put("/v1/blobs", content=b"\0" * (limit + 1))).status_code == 413


async def test_default_stores_are_newly_created_every_time(http: httpx.AsyncClient) -> None:
    first = (await store(http, DATA))["newlyCreated"]
    second = (await store(http, DATA))["newlyCreated"]
    assert first["blobObject"]["blobId"] == second["blobObject"]["blobId"]
    assert first["blobObject"]["id"] != second["blobObject"]["id"]
    assert first["cost"] == second["cost"] == 132_300  # charged twice


async def test_permanent_long_enough_is_already_certified(http: httpx.AsyncClient) -> None:
    created = (await store(http, DATA, permanent=True, epochs=5))["newlyCreated"]
    assert created["blobObject"]["deletable"] is False
    response = await http.put("/v1/blobs", params={"permanent": "true", "epochs": "3"},
                              content=DATA)
    body = response.json()
    assert set(body) == {"alreadyCertified"}
    certified = body["alreadyCertified"]
    assert set(certified) == {"blobId", "event", "endEpoch"}
    assert certified["blobId"] == created["blobObject"]["blobId"]
    assert certified["endEpoch"] == 6
    assert set(certified["event"]) == {"txDigest", "eventSeq"}
    assert certified["event"]["eventSeq"] == "0"
    assert BASE58.match(certified["event"]["txDigest"])
    # Exactly as long as the existing one is still enough.
    again = await store(http, DATA, permanent=True, epochs=5)
    assert "alreadyCertified" in again


async def test_permanent_too_short_force_or_deletable_register_anew(
        http: httpx.AsyncClient) -> None:
    await store(http, DATA, permanent=True, epochs=2)
    longer = await store(http, DATA, permanent=True, epochs=3)
    assert longer["newlyCreated"]["blobObject"]["storage"]["endEpoch"] == 4
    forced = await store(http, DATA, permanent=True, epochs=1, force=True)
    assert "newlyCreated" in forced
    deletable = await store(http, DATA, epochs=1)  # the check is skipped for deletable stores
    assert "newlyCreated" in deletable
    # A permanent request is not satisfied by deletable objects.
    other = b"only deletable"
    await store(http, other, epochs=10)
    assert "newlyCreated" in await store(http, other, permanent=True, epochs=1)


async def test_expired_permanent_blob_is_registered_again(http: httpx.AsyncClient,
                                                          emulator: RunningEmulator) -> None:
    await store(http, DATA, permanent=True, epochs=1)
    await emulator.emulator.state.advance(1)
    assert "newlyCreated" in await store(http, DATA, permanent=True, epochs=1)


async def test_share_adds_a_shared_blob_object(http: httpx.AsyncClient) -> None:
    created = (await store(http, DATA, share=True, permanent=True))["newlyCreated"]
    assert OBJECT_ID.match(created["sharedBlobObject"])
    sent = (await store(http, DATA, send_object_to="0xABC"))["newlyCreated"]
    assert "sharedBlobObject" not in sent


async def test_reuse_resources_reports_or_extends_the_owned_object(
        http: httpx.AsyncClient) -> None:
    first = (await store(http, DATA, epochs=2))["newlyCreated"]["blobObject"]
    same = (await store(http, DATA, epochs=1, reuse_resources=True))["alreadyCertified"]
    assert same == {"blobId": first["blobId"], "object": first["id"], "endEpoch": 3}
    extended = (await store(http, DATA, epochs=5, reuse_resources=True))["newlyCreated"]
    assert extended["blobObject"]["id"] == first["id"]
    assert extended["blobObject"]["storage"]["endEpoch"] == 6
    assert extended["resourceOperation"] == {
        "reuseAndExtend": {"encodedLength": 66_034_000, "epochsExtended": 3}}
    assert extended["cost"] == 63 * 1000 * 3


async def test_certified_epoch_can_be_reported(start: Starter) -> None:
    running = await start(certified_epoch_null=False, start_epoch=7)
    async with httpx.AsyncClient(base_url=running.url) as client:
        blob = (await store(client, DATA))["newlyCreated"]["blobObject"]
    assert blob["certifiedEpoch"] == 7


async def test_path_prefix_serves_the_same_network(http: httpx.AsyncClient,
                                                   emulator: RunningEmulator) -> None:
    response = await http.put("/secret-key/v1/blobs", content=DATA)
    assert response.status_code == 200
    blob_id = response.json()["newlyCreated"]["blobObject"]["blobId"]
    assert (await http.get(f"/v1/blobs/{blob_id}")).content == DATA
    assert (await http.get(f"/other/v1/blobs/{blob_id}")).content == DATA
    counters = emulator.emulator.counters_json()
    assert counters["prefixes"] == {"secret-key": {"store": 1}, "other": {"read": 1}}
    assert counters["routes"] == {"store": 1, "read": 2}


async def test_any_content_type_is_accepted(http: httpx.AsyncClient) -> None:
    for content_type in ("application/octet-stream", "application/x-www-form-urlencoded",
                         "text/plain"):
        response = await http.put("/v1/blobs", content=DATA,
                                  headers={"Content-Type": content_type})
        assert response.json()["newlyCreated"]["blobObject"]["blobId"] == fake_blob_id(DATA)
