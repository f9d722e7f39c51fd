"""Concurrent Batch streams that share one source of verified blocks.

Each stream is a thread running one ``Batch`` call after another; gRPC pulls a call's requests
from the shared source as it sends them, so this side holds about one block per stream. A batch
ends at ``batch_blocks`` blocks or ``batch_bytes`` bytes (the block that would overflow it opens
the stream's next batch).

Directories. Batches span shard directories, and several are in flight at once, so a directory
is finished only when (a) its "finished" marker came out of the source, meaning every block of
it was handed out and none failed verification, and (b) every batch that carried one of its
blocks was committed. Then, and only then, the progress file gets its line. A batch that fails
or is cancelled leaves its directories unfinished, and the next run rescans them.

Failures. The first error (from the source or a call) stops the copy: the other streams end
their current batch early (committing what it holds, all verified) and take nothing more; the
error is kept in :attr:`Dispatch.error` for the caller to raise.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from walrusds import failpoints
from walrusds.importer.client import ImportService, put
from walrusds.importer.journal import DoneDir, Journal
from walrusds.importer.meter import Meter
from walrusds.v1 import datastore_pb2 as pb


@dataclass
class SendTotals:
    """What the streams committed."""

    batches: int = 0
    blocks: int = 0
    bytes: int = 0


JOIN_POLL = 0.2


@dataclass(frozen=True)
class Block:
    """A verified block to send, and the shard directory it comes from."""

    key: bytes
    data: bytes
    shard: str


@dataclass(frozen=True)
class DirDone:
    """Every block of a directory was handed out, and none failed verification."""

    record: DoneDir


class Dispatch:
    """What the streams share: the work, the per-directory accounting and the journal. Every
    method takes the lock (the work is a generator, which only one thread may advance)."""

    def __init__(self, work: Iterator[Block | DirDone], journal: Journal | None) -> None:
        self.lock = threading.Lock()
        self._work = work
        self._journal = journal
        self.totals = SendTotals()
        self._pending: Counter[str] = Counter()  # blocks handed out, batch not committed yet
        self._sealed: dict[str, DoneDir] = {}  # read to the end, waiting for their batches
        self.stopped = False
        self.error: BaseException | None = None

    def next_block(self) -> Block | None:
        """The next block to send, or ``None`` when there is no more (or the copy stopped)."""
        with self.lock:
            while not self.stopped:
                try:
                    item = next(self._work, None)
                except Exception as exc:
                    self._fail(exc)
                    return None
                if item is None:
                    return None
                if isinstance(item, DirDone):
                    self._seal(item.record)
                    continue
                self._pending[item.shard] += 1
                return item
            return None

    def committed(self, shards: Counter[str], blocks: int, nbytes: int) -> None:
        """A batch carrying ``shards``' blocks was committed by the service."""
        with self.lock:
            self.totals.batches += 1
            self.totals.blocks += blocks
            self.totals.bytes += nbytes
            failpoints.hit(f"import_after_batch_{self.totals.batches}")
            for shard, n in shards.items():
                self._pending[shard] -= n
                if self._pending[shard] == 0 and shard in self._sealed:
                    self._finished(self._sealed.pop(shard))

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None and not self.stopped:
            self.error = exc
        self.stopped = True

    def stop(self) -> None:
        with self.lock:
            self.stopped = True

    def _seal(self, record: DoneDir) -> None:
        if self._pending[record.name] == 0:
            self._finished(record)
        else:
            self._sealed[record.name] = record

    def _finished(self, record: DoneDir) -> None:
        self._pending.pop(record.name, None)
        if self._journal is not None:
            self._journal.mark_done(record)


class Stream:
    """One concurrent sequence of Batch calls."""

    def __init__(self, dispatch: Dispatch, service: ImportService, batch_blocks: int,
                 batch_bytes: int, meter: Meter) -> None:
        self.dispatch = dispatch
        self.service = service
        self.batch_blocks = batch_blocks
        self.batch_bytes = batch_bytes
        self.meter = meter
        self.carry: Block | None = None  # taken for this stream, did not fit its last batch

    def run(self) -> None:
        try:
            while True:
                self.carry = self.carry or self.dispatch.next_block()
                if self.carry is None:
                    return
                shards: Counter[str] = Counter()
                sizes = [0, 0]
                self.service.batch(self._requests(shards, sizes))
                self.dispatch.committed(shards, sizes[0], sizes[1])
        except BaseException as exc:
            self.dispatch.fail(exc)

    def _requests(self, shards: Counter[str], sizes: list[int]) -> Iterator[pb.BatchRequest]:
        while True:
            block = self.carry or self.dispatch.next_block()
            self.carry = None
            if block is None:
                return
            if sizes[0] and (sizes[0] >= self.batch_blocks
                             or sizes[1] + len(block.data) > self.batch_bytes):
                self.carry = block
                return
            shards[block.shard] += 1
            sizes[0] += 1
            sizes[1] += len(block.data)
            self.meter.add(1, len(block.data))
            yield put(block.key, block.data)


def send(work: Iterator[Block | DirDone], journal: Journal | None, service: ImportService, *,
         streams: int, batch_blocks: int, batch_bytes: int, meter: Meter) -> SendTotals:
    """Send every block of ``work`` on ``streams`` concurrent Batch calls; returns what was
    committed, or raises the first error. On Ctrl-C the calls in flight are cancelled (none of
    them is stored) before the interrupt goes on."""
    dispatch = Dispatch(work, journal)
    threads = [threading.Thread(target=Stream(dispatch, service, batch_blocks, batch_bytes,
                                              meter).run,
                                name=f"import-stream-{i}", daemon=True)
               for i in range(streams)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(JOIN_POLL)  # a timeout keeps Ctrl-C responsive
    except BaseException:
        dispatch.stop()
        service.close()
        raise
    if dispatch.error is not None:
        raise dispatch.error
    return dispatch.totals
