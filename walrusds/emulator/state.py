"""The emulated network: blobs, their Blob objects, the epoch, and the store rules of notes §2.3.

No HTTP here. :meth:`WalrusState.store` decides between ``newlyCreated`` and
``alreadyCertified`` exactly as the publisher does:

* ``alreadyCertified`` (event form) only if ``force`` is false, the request is ``permanent``,
  and a live permanent object already lasts until ``current + epochs`` or later;
* with ``reuse_resources``, an unexpired object the publisher wallet still owns with the same
  deletable flag is reported (object form) or extended (``reuseAndExtend``);
* otherwise a fresh Blob object (new object ID every time, ``registerFromScratch``).

A blob is readable while ``current_epoch < max(end_epoch)`` over its objects. The state also
keeps the attributes tests set on objects (served as headers by ``by-object-id``). Everything but
the per-blob read counters is saved after each change when the emulator has a data directory.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

from walrusds.costs import encoded_length, storage_units, store_cost
from walrusds.emulator import bodies
from walrusds.emulator.clock import EpochClock
from walrusds.emulator.config import EmulatorConfig
from walrusds.emulator.ids import new_object_id, new_tx_digest
from walrusds.emulator.storage import BlobBytes, DirStorage, MemoryStorage

__all__ = ["BlobObject", "BlobRecord", "StoreParams", "WalrusState"]

STATE_VERSION = 1


@dataclass
class BlobObject:
    """One on-chain Blob object (a registration) for a blob ID."""

    object_id: str
    storage_id: str
    registered_epoch: int
    end_epoch: int
    deletable: bool
    #: None: owned by the publisher's wallet; else the ``send_object_to`` address.
    owner: str | None = None
    shared_object_id: str | None = None


@dataclass
class BlobRecord:
    blob_id: str
    size: int
    objects: list[BlobObject] = field(default_factory=list)

    def end_epoch(self) -> int:
        return max((o.end_epoch for o in self.objects), default=0)

    def permanent_end_epoch(self, now: int) -> int | None:
        ends = [o.end_epoch for o in self.objects if not o.deletable and o.end_epoch > now]
        return max(ends) if ends else None


@dataclass(frozen=True)
class StoreParams:
    """The documented ``PUT /v1/blobs`` parameters (notes §2.1), already validated."""

    epochs: int = 1
    permanent: bool = False
    force: bool = False
    reuse_resources: bool = False
    send_object_to: str | None = None
    share: bool = False


class WalrusState:
    """Blobs, objects and the clock of one emulator, persisted through a :class:`BlobBytes`."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = EpochClock(config.start_epoch, config.epoch_seconds)
        self.storage: BlobBytes = (DirStorage(config.data_dir) if config.data_dir is not None
                                   else MemoryStorage())
        self.blobs: dict[str, BlobRecord] = {}
        #: Every object ID the publisher issued (Blob and shared-blob objects) → its blob ID.
        self.objects: dict[str, str] = {}
        #: Attributes set on objects through the control surface: object ID → {key: value}.
        self.attributes: dict[str, dict[str, str]] = {}
        # Reads of each blob since it was last stored (drives the 404-after-store fault).
        self.reads_since_store: dict[str, int] = {}
        self._save_lock = asyncio.Lock()
        saved = self.storage.load_state()
        if saved is not None:
            self._restore(saved)

    # -- queries ---------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self.clock.current

    def live(self, blob_id: str) -> BlobRecord | None:
        """The record of a readable blob: known and ``current epoch < max end epoch``."""
        record = self.blobs.get(blob_id)
        if record is None or self.epoch >= record.end_epoch():
            return None
        return record

    async def data(self, record: BlobRecord) -> bytes:
        data = await self.storage.get(record.blob_id)
        if data is None:
            raise RuntimeError(f"emulator storage lost the bytes of {record.blob_id}")
        return data

    async def data_range(self, record: BlobRecord, start: int, length: int) -> bytes:
        data = await self.storage.get_range(record.blob_id, start, length)
        if data is None:
            raise RuntimeError(f"emulator storage lost the bytes of {record.blob_id}")
        return data

    def note_read(self, blob_id: str) -> int | None:
        """Count a read of ``blob_id``; return how many reads came before it since its store."""
        if blob_id not in self.reads_since_store:
            return None
        count = self.reads_since_store[blob_id]
        self.reads_since_store[blob_id] = count + 1
        return count

    def describe(self, blob_id: str) -> dict[str, Any] | None:
        """The control surface's view of one blob (live or expired), None if unknown."""
        record = self.blobs.get(blob_id)
        if record is None:
            return None
        now = self.epoch
        return {"blob_id": record.blob_id, "size": record.size, "end_epoch": record.end_epoch(),
                "permanent_end_epoch": record.permanent_end_epoch(now),
                "live": now < record.end_epoch(),
                "objects": [dict(asdict(o), attributes=self.attributes.get(o.object_id, {}))
                            for o in record.objects]}

    def snapshot(self) -> dict[str, Any]:
        """The control surface's view: the epoch and every blob, sorted by blob ID."""
        return {
            "epoch": self.epoch,
            "epoch_seconds": self.clock.epoch_seconds,
            "max_epochs_ahead": self.config.max_epochs_ahead,
            "blobs": [self.describe(blob_id) for blob_id in sorted(self.blobs)],
        }

    # -- changes ---------------------------------------------------------------------------

    async def store(self, blob_id: str, data: bytes, params: StoreParams, *,
                    stale: bool = False) -> dict[str, Any]:
        """Store ``data`` under ``blob_id`` and return the publisher's JSON result.

        ``stale`` emulates a publisher with an out-of-date epoch view (MystenLabs/walrus#1077):
        it answers ``alreadyCertified`` with an end epoch earlier than asked.
        """
        await self.storage.put(blob_id, data)
        result = self._register(blob_id, len(data), params, stale=stale)
        self.reads_since_store[blob_id] = 0
        await self.save()
        return result

    def _register(self, blob_id: str, size: int, p: StoreParams, *,
                  stale: bool) -> dict[str, Any]:
        now = self.epoch
        wanted_end = now + p.epochs
        record = self.blobs.setdefault(blob_id, BlobRecord(blob_id, size))
        live = [o for o in record.objects if o.end_epoch > now]
        if stale:
            end = max((o.end_epoch for o in live), default=None)
            if end is None:
                end = now + max(1, p.epochs - 1)
                self._new_object(record, end, p)
            return bodies.already_certified_event(blob_id, end, new_tx_digest())
        if p.permanent and not p.force:
            perm_end = record.permanent_end_epoch(now)
            if perm_end is not None and perm_end >= wanted_end:
                return bodies.already_certified_event(blob_id, perm_end, new_tx_digest())
        if p.reuse_resources:
            owned = [o for o in live if o.owner is None and o.shared_object_id is None
                     and o.deletable == (not p.permanent)]
            if owned:
                best = max(owned, key=lambda o: o.end_epoch)
                if best.end_epoch >= wanted_end:
                    return bodies.already_certified_object(blob_id, best.end_epoch,
                                                           best.object_id)
                return self._extend(record, best, wanted_end)
        obj = self._new_object(record, wanted_end, p)
        encoded = encoded_length(size, self.config.n_shards)
        return bodies.newly_created(
            blob_id=blob_id, size=size, object_id=obj.object_id, storage_id=obj.storage_id,
            registered_epoch=now, start_epoch=now, end_epoch=wanted_end,
            deletable=obj.deletable, encoded_length=encoded,
            cost=store_cost(size, p.epochs, self.config.storage_price, self.config.write_price,
                            self.config.n_shards),
            operation={"registerFromScratch": {"encodedLength": encoded,
                                               "epochsAhead": p.epochs}},
            certified_epoch=None if self.config.certified_epoch_null else now,
            shared_object_id=obj.shared_object_id)

    def _new_object(self, record: BlobRecord, end: int, p: StoreParams) -> BlobObject:
        obj = BlobObject(object_id=new_object_id(), storage_id=new_object_id(),
                         registered_epoch=self.epoch, end_epoch=end,
                         deletable=not p.permanent, owner=p.send_object_to,
                         shared_object_id=new_object_id() if p.share else None)
        record.objects.append(obj)
        self.objects[obj.object_id] = record.blob_id
        if obj.shared_object_id is not None:
            self.objects[obj.shared_object_id] = record.blob_id
        return obj

    def _extend(self, record: BlobRecord, obj: BlobObject, end: int) -> dict[str, Any]:
        extended = end - obj.end_epoch
        obj.end_epoch = end
        encoded = encoded_length(record.size, self.config.n_shards)
        return bodies.newly_created(
            blob_id=record.blob_id, size=record.size, object_id=obj.object_id,
            storage_id=obj.storage_id, registered_epoch=obj.registered_epoch,
            start_epoch=obj.registered_epoch, end_epoch=end, deletable=obj.deletable,
            encoded_length=encoded,
            cost=storage_units(encoded) * self.config.storage_price * extended,
            operation={"reuseAndExtend": {"encodedLength": encoded,
                                          "epochsExtended": extended}},
            certified_epoch=None if self.config.certified_epoch_null else obj.registered_epoch,
            shared_object_id=None)

    async def delete(self, blob_id: str) -> bool:
        """Forget a blob, its objects and its bytes (an on-chain delete, or lost data)."""
        record = self.blobs.pop(blob_id, None)
        if record is None:
            return False
        for obj in record.objects:
            for object_id in (obj.object_id, obj.shared_object_id):
                if object_id is not None:
                    self.objects.pop(object_id, None)
                    self.attributes.pop(object_id, None)
        self.reads_since_store.pop(blob_id, None)
        await self.storage.delete(blob_id)
        await self.save()
        return True

    async def corrupt(self, blob_id: str, offset: int, mask: int = 0x01) -> None:
        """XOR the stored byte at ``offset`` with ``mask``: every later read sees the damage.

        Raises ``KeyError`` for an unknown blob and ``ValueError`` for an offset past its end.
        A later store of the same bytes writes them again and so repairs the damage.
        """
        record = self.blobs.get(blob_id)
        if record is None:
            raise KeyError(blob_id)
        if not 0 <= offset < record.size:
            raise ValueError(f"offset {offset} is outside the blob's {record.size} bytes")
        if not 1 <= mask <= 0xFF:
            raise ValueError("mask must be between 1 and 255")
        data = bytearray(await self.data(record))
        data[offset] ^= mask
        await self.storage.put(blob_id, bytes(data))

    async def set_attributes(self, object_id: str, attributes: dict[str, str]) -> None:
        """Replace the attributes of one object (``KeyError`` if the publisher never issued it)."""
        if object_id not in self.objects:
            raise KeyError(object_id)
        self.attributes[object_id] = dict(attributes)
        await self.save()

    async def set_epoch(self, epoch: int) -> int:
        self.clock.set(epoch)
        await self.save()
        return epoch

    async def advance(self, epochs: int) -> int:
        epoch = self.clock.advance(epochs)
        await self.save()
        return epoch

    async def wipe(self, *, reset_epoch: bool = False) -> None:
        """A Testnet wipe: every blob and object disappears (optionally the epoch restarts)."""
        self.blobs.clear()
        self.objects.clear()
        self.attributes.clear()
        self.reads_since_store.clear()
        if reset_epoch:
            self.clock.set(self.config.start_epoch)
        await self.storage.wipe()
        await self.save()

    # -- persistence -----------------------------------------------------------------------

    async def save(self) -> None:
        async with self._save_lock:  # snapshot inside the lock: the newest state wins
            await self.storage.save_state({
                "version": STATE_VERSION,
                "clock": self.clock.to_json(),
                "blobs": [{"blob_id": r.blob_id, "size": r.size,
                           "objects": [asdict(o) for o in r.objects]}
                          for r in self.blobs.values()],
                "attributes": self.attributes,
            })

    def _restore(self, saved: dict[str, Any]) -> None:
        if saved.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported emulator state version {saved.get('version')!r}")
        self.clock.restore(saved["clock"])
        for item in saved["blobs"]:
            record = BlobRecord(item["blob_id"], int(item["size"]),
                                [BlobObject(**o) for o in item["objects"]])
            self.blobs[record.blob_id] = record
            for o in record.objects:
                self.objects[o.object_id] = record.blob_id
                if o.shared_object_id is not None:
                    self.objects[o.shared_object_id] = record.blob_id
        for object_id, attributes in saved.get("attributes", {}).items():
            if object_id in self.objects:
                self.attributes[object_id] = {str(k): str(v) for k, v in attributes.items()}
