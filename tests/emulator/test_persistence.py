"""``data_dir``: a restarted emulator keeps its blobs, objects, attributes and epoch."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from tests.emulator.helpers import store
from walrusds.emulator.config import EmulatorConfig
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import start_emulator

DATA = b"persistent bytes " * 100


async def test_restart_keeps_blobs_objects_and_the_epoch(tmp_path: Path) -> None:
    config = EmulatorConfig(data_dir=tmp_path / "emu", start_epoch=3)
    first = await start_emulator(config)
    async with first, httpx.AsyncClient(base_url=first.url) as client, \
            EmulatorControl(first.url) as control:
        permanent = (await store(client, DATA, permanent=True, epochs=10))["newlyCreated"]
        short = (await store(client, b"short-lived", epochs=1))["newlyCreated"]
        gone = (await store(client, b"deleted"))["newlyCreated"]
        await control.delete_blob(gone["blobObject"]["blobId"])
        await control.set_attributes(permanent["blobObject"]["id"],
                                     {"content-type": "text/plain"})
        await control.advance_epoch(2)  # epoch 5: the short-lived blob has expired

    async with await start_emulator(EmulatorConfig(data_dir=tmp_path / "emu")) as second:
        assert second.emulator.state.epoch == 5
        async with httpx.AsyncClient(base_url=second.url) as client:
            blob_id = permanent["blobObject"]["blobId"]
            assert (await client.get(f"/v1/blobs/{blob_id}")).content == DATA
            by_object = await client.get(
                f"/v1/blobs/by-object-id/{permanent['blobObject']['id']}")
            assert by_object.content == DATA
            assert by_object.headers["content-type"] == "text/plain"
            short_id = short["blobObject"]["blobId"]
            assert (await client.get(f"/v1/blobs/{short_id}")).status_code == 404
            gone_id = gone["blobObject"]["blobId"]
            assert (await client.get(f"/v1/blobs/{gone_id}")).status_code == 404
            # The dedup rules see the objects registered before the restart.
            again = await store(client, DATA, permanent=True, epochs=5)
            assert again["alreadyCertified"]["endEpoch"] == 13


async def test_data_dir_layout_and_wipe(tmp_path: Path) -> None:
    root = tmp_path / "emu"
    async with await start_emulator(EmulatorConfig(data_dir=root)) as running:
        async with httpx.AsyncClient(base_url=running.url) as client:
            blob_id = (await store(client, DATA))["newlyCreated"]["blobObject"]["blobId"]
        assert (root / "blobs" / blob_id).read_bytes() == DATA
        saved = json.loads((root / "state.json").read_text())
        assert saved["version"] == 1
        assert [b["blob_id"] for b in saved["blobs"]] == [blob_id]
        await running.emulator.state.corrupt(blob_id, 0)
        assert (root / "blobs" / blob_id).read_bytes()[0] == DATA[0] ^ 1
        await running.emulator.state.wipe()
        assert list((root / "blobs").iterdir()) == []
    async with await start_emulator(EmulatorConfig(data_dir=root)) as again:
        assert again.emulator.state.blobs == {}
    assert not [p for p in root.rglob(".tmp-*")]  # no temporary files left behind


async def test_unknown_state_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "blobs").mkdir()
    (tmp_path / "state.json").write_text('{"version": 99}')
    with pytest.raises(ValueError, match="unsupported emulator state version"):
        await start_emulator(EmulatorConfig(data_dir=tmp_path))


async def test_memory_mode_writes_nothing(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    running = await start_emulator(EmulatorConfig())
    async with running, httpx.AsyncClient(base_url=running.url) as client:
        await store(client, DATA)
    assert os.listdir(tmp_path) == []
