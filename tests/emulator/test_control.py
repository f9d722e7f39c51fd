"""The ``/_emulator/`` control surface through EmulatorControl, over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.emulator.helpers import store, store_id
from walrusds.emulator.control import ControlError, EmulatorControl
from walrusds.emulator.ids import fake_blob_id
from walrusds.emulator.runner import RunningEmulator

DATA = b"control surface test bytes"


async def test_counters_count_calls_per_route_and_status(http: httpx.AsyncClient,
                                                         control: EmulatorControl) -> None:
    blob_id = await store_id(http, DATA)
    await http.get(f"/v1/blobs/{blob_id}")
    await http.get(f"/v1/blobs/{blob_id}", headers={"Range": "bytes=0-1"})
    await http.head(f"/v1/blobs/{blob_id}")
    await http.get(f"/v1/blobs/{fake_blob_id(b'missing')}")
    await http.get(f"/v1/blobs/{blob_id}/byte-range", params={"start": 0, "length": 2})
    await http.get("/status")
    counters = await control.counters()
    assert counters["routes"] == {"store": 1, "read": 4, "byte_range": 1, "status": 1}
    assert counters["statuses"]["read"] == {"200": 2, "206": 1, "404": 1}
    assert counters["in_flight"] == {"publisher": 0, "aggregator": 0}
    await control.reset_counters()
    assert (await control.counters())["routes"] == {}
    await control.state()  # control calls are never counted
    assert (await control.counters())["routes"] == {}


async def test_epoch_advance_and_set(control: EmulatorControl) -> None:
    assert await control.epoch() == 1
    assert await control.advance_epoch() == 2
    assert await control.advance_epoch(5) == 7
    assert await control.set_epoch(3) == 3
    assert await control.epoch() == 3
    with pytest.raises(ControlError, match="negative"):
        await control.set_epoch(-1)
    with pytest.raises(ControlError, match="backwards"):
        await control.advance_epoch(-1)


async def test_corrupt_damages_every_later_read_until_stored_again(
        http: httpx.AsyncClient, control: EmulatorControl) -> None:
    blob_id = await store_id(http, DATA)
    await control.corrupt(blob_id, 3)
    await control.corrupt(blob_id, 5, mask=0xFF)
    expected = bytearray(DATA)
    expected[3] ^= 0x01
    expected[5] ^= 0xFF
    for _ in range(2):
        assert (await http.get(f"/v1/blobs/{blob_id}")).content == bytes(expected)
    ranged = await http.get(f"/v1/blobs/{blob_id}", headers={"Range": "bytes=3-3"})
    assert ranged.content == bytes([DATA[3] ^ 1])
    await store_id(http, DATA)  # a store of the same bytes writes them again
    assert (await http.get(f"/v1/blobs/{blob_id}")).content == DATA
    with pytest.raises(ControlError, match="outside"):
        await control.corrupt(blob_id, len(DATA))
    with pytest.raises(ControlError, match="404"):
        await control.corrupt(fake_blob_id(b"nothing"), 0)


async def test_delete_blob(http: httpx.AsyncClient, control: EmulatorControl) -> None:
    created = (await store(http, DATA))["newlyCreated"]["blobObject"]
    await control.delete_blob(created["blobId"])
    assert (await http.get(f"/v1/blobs/{created['blobId']}")).status_code == 404
    assert (await http.get(f"/v1/blobs/by-object-id/{created['id']}")).status_code == 404
    assert await control.blob(created["blobId"]) is None
    with pytest.raises(ControlError, match="404"):
        await control.delete_blob(created["blobId"])


async def test_wipe_drops_everything(http: httpx.AsyncClient,
                                     control: EmulatorControl) -> None:
    ids = [await store_id(http, DATA + bytes([i])) for i in range(3)]
    await control.advance_epoch(4)
    await control.wipe()
    assert await control.epoch() == 5
    for blob_id in ids:
        assert (await http.get(f"/v1/blobs/{blob_id}")).status_code == 404
    assert (await control.state())["blobs"] == []
    await control.wipe(reset_epoch=True)
    assert await control.epoch() == 1


async def test_max_body_size_can_be_changed(http: httpx.AsyncClient,
                                            control: EmulatorControl) -> None:
    assert await control.max_body_size() == 10 * 1024 * 1024
    await control.set_max_body_size(10)
    assert (await http.put("/v1/blobs", content=b"x" * 10)).status_code == 200
    assert (await http.put("/v1/blobs", content=b"x" * 11)).status_code == 413
    with pytest.raises(ControlError, match="positive"):
        await control.set_max_body_size(0)


async def test_state_and_blob_views(http: httpx.AsyncClient, control: EmulatorControl,
                                    emulator: RunningEmulator) -> None:
    created = (await store(http, DATA, permanent=True, epochs=4))["newlyCreated"]
    blob_id = created["blobObject"]["blobId"]
    info = await control.blob(blob_id)
    assert info is not None
    assert info["size"] == len(DATA)
    assert info["end_epoch"] == info["permanent_end_epoch"] == 5
    assert info["live"] is True
    assert [o["object_id"] for o in info["objects"]] == [created["blobObject"]["id"]]
    state = await control.state()
    assert state["epoch"] == 1 and state["max_body_size"] == 10 * 1024 * 1024
    assert [b["blob_id"] for b in state["blobs"]] == [blob_id]
    assert state == await control.state()
    assert emulator.emulator.state.describe(blob_id) == info


async def test_attributes_need_a_known_object(control: EmulatorControl) -> None:
    with pytest.raises(ControlError, match="404"):
        await control.set_attributes("0x" + "00" * 32, {"content-type": "text/plain"})


async def test_malformed_control_requests_are_400(emulator: RunningEmulator) -> None:
    async with httpx.AsyncClient(base_url=emulator.url + "/_emulator") as client:
        for method, path, body in (("POST", "/epoch", b"not json"),
                                   ("POST", "/epoch", b"[1]"),
                                   ("POST", "/epoch", b'{"advance": 1, "set": 2}'),
                                   ("POST", "/epoch", b'{"advance": "1"}'),
                                   ("POST", "/faults", b'{"route": "read"}'),
                                   ("PUT", "/limits", b'{"max": 1}'),
                                   ("POST", "/wipe", b'{"reset_epoch": 1}'),
                                   ("DELETE", "/faults/abc", b"")):
            response = await client.request(method, path, content=body)
            assert response.status_code == 400, (method, path, body)
            assert set(response.json()) == {"error"}
