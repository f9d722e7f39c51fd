"""Where the emulator keeps blob bytes and its state: memory, or a data directory.

Layout of a data directory::

    DIR/blobs/<blob id>      the bytes of one blob (blob IDs are URL-safe base64: file-name safe)
    DIR/state.json           epoch clock, blobs and their objects (written atomically)

Both are written with write-to-temporary, fsync, rename, so a crash leaves the old or the new
version, never a torn file. Bytes are written before the state that names them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

__all__ = ["BlobBytes", "DirStorage", "MemoryStorage", "atomic_write"]


class BlobBytes(Protocol):
    """Bytes of blobs by ID, plus the saved state document."""

    async def put(self, blob_id: str, data: bytes) -> None: ...
    async def get(self, blob_id: str) -> bytes | None: ...
    async def get_range(self, blob_id: str, start: int, length: int) -> bytes | None: ...
    async def delete(self, blob_id: str) -> None: ...
    async def wipe(self) -> None: ...
    async def save_state(self, state: dict[str, Any]) -> None: ...
    def load_state(self) -> dict[str, Any] | None: ...


class MemoryStorage:
    """Everything in a dict; gone when the process exits."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    async def put(self, blob_id: str, data: bytes) -> None:
        self._blobs[blob_id] = bytes(data)

    async def get(self, blob_id: str) -> bytes | None:
        return self._blobs.get(blob_id)

    async def get_range(self, blob_id: str, start: int, length: int) -> bytes | None:
        data = self._blobs.get(blob_id)
        return None if data is None else data[start:start + length]

    async def delete(self, blob_id: str) -> None:
        self._blobs.pop(blob_id, None)

    async def wipe(self) -> None:
        self._blobs.clear()

    async def save_state(self, state: dict[str, Any]) -> None:
        return None

    def load_state(self) -> dict[str, Any] | None:
        return None


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temporary file, fsync, rename, fsync of the directory."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class DirStorage:
    """Blob files and ``state.json`` under one directory, so a restart keeps everything."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blob_dir = root / "blobs"
        self.state_path = root / "state.json"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        # State saves are serialised so an older snapshot never overwrites a newer one.
        self._lock = asyncio.Lock()

    async def put(self, blob_id: str, data: bytes) -> None:
        # Always rewritten, even when the file exists: a store must repair corrupted bytes.
        await asyncio.to_thread(atomic_write, self.blob_dir / blob_id, data)

    async def get(self, blob_id: str) -> bytes | None:
        path = self.blob_dir / blob_id
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def get_range(self, blob_id: str, start: int, length: int) -> bytes | None:
        """Only the bytes asked for: a ranged read of a 64 MiB pack must not read it all."""
        def read() -> bytes:
            with open(self.blob_dir / blob_id, "rb") as f:
                f.seek(start)
                return f.read(length)

        try:
            return await asyncio.to_thread(read)
        except FileNotFoundError:
            return None

    async def delete(self, blob_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread((self.blob_dir / blob_id).unlink)

    async def wipe(self) -> None:
        async with self._lock:
            await asyncio.to_thread(shutil.rmtree, self.blob_dir, True)
            self.blob_dir.mkdir(parents=True, exist_ok=True)

    async def save_state(self, state: dict[str, Any]) -> None:
        data = json.dumps(state, indent=1, sort_keys=True).encode()
        async with self._lock:
            await asyncio.to_thread(atomic_write, self.state_path, data)

    def load_state(self) -> dict[str, Any] | None:
        try:
            loaded = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None
        if not isinstance(loaded, dict):
            raise ValueError(f"{self.state_path} is not an emulator state file")
        return loaded
