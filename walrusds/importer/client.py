"""The import's side of the walrusds gRPC API: who the service is, which blocks it has already,
and Batch calls that store many blocks at once.

Connection settings (addresses, token, TLS) are ``walrusds kubo-init``'s :class:`Target`, and
the first contact is its :func:`service_info` (every address must serve the same dataset), so
both commands accept and refuse the same services with the same messages. Blocks go to the
first address. A Batch is one transaction in the service: either all of its blocks are stored,
or (when the stream is cancelled or fails) none; storing a block that is already there with the
same bytes changes nothing, which is what makes re-running an import safe.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc

from walrusds.cli.cmd_kubo_init import (
    Target,
    rpc_failure,
    service_info,
    target_channel,
    target_metadata,
)
from walrusds.errors import ConfigError, ReadOnlyError, Unavailable, WalrusdsError
from walrusds.rpc import stub
from walrusds.v1 import datastore_pb2 as pb

LOOKUP_CHUNK = 1024
LOOKUP_TIMEOUT = 60.0
BATCH_TIMEOUT = 900.0


class ImportService:
    """A connection to the service blocks are imported into."""

    def __init__(self, target: Target, info: pb.InfoResponse) -> None:
        self.target = target
        self.info = info
        self.addr = target.addresses[0]
        self._channel = target_channel(self.addr, target)
        self._stub = stub(self._channel)
        self._metadata = target_metadata(target)
        self._closed = False
        self._lookup_chunk = LOOKUP_CHUNK

    @classmethod
    def connect(cls, target: Target, dataset: str | None, *, writable: bool) -> ImportService:
        """Ask every address who it is (one-line errors when one cannot be reached), check the
        dataset, and refuse a read-only service when blocks are to be written."""
        info = service_info(target)
        if dataset and dataset != info.dataset:
            raise ConfigError(f"the service serves dataset {info.dataset!r}, not {dataset!r}")
        if writable and info.read_only:
            raise ReadOnlyError(f"{target.addresses[0]} is a read-only walrusds service (a "
                                "retrieval node): import through a service that accepts "
                                "writes")
        return cls(target, info)

    @property
    def max_value(self) -> int:
        return int(self.info.max_value_size) or (16 << 20)

    def present(self, keys: list[bytes]) -> set[bytes]:
        """The keys among ``keys`` the dataset already holds (Lookup in HAS mode)."""
        found: set[bytes] = set()
        start = 0
        while start < len(keys):
            chunk = keys[start:start + self._lookup_chunk]
            try:
                answer = self._stub.Lookup(
                    pb.LookupRequest(mode=pb.LOOKUP_MODE_HAS, keys=chunk),
                    timeout=LOOKUP_TIMEOUT, metadata=self._metadata)
            except grpc.RpcError as exc:
                # A service configured with fewer lookup keys (limits.max_lookup_keys) than
                # this chunk refuses it as a whole: ask for fewer at a time.
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT and len(chunk) > 1:
                    self._lookup_chunk = max(1, len(chunk) // 2)
                    continue
                raise self._failure(exc, "Lookup") from None
            found.update(key for key, result in zip(chunk, answer.results, strict=True)
                         if result.status == pb.LOOKUP_STATUS_FOUND)
            start += len(chunk)
        return found

    def batch(self, requests: Iterable[pb.BatchRequest]) -> int:
        """Send one Batch; returns once the service committed it (the operations applied)."""
        try:
            response = self._stub.Batch(iter(requests), timeout=BATCH_TIMEOUT,
                                        metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._failure(exc, "Batch") from None
        return int(response.applied)

    def _failure(self, exc: grpc.RpcError, call: str) -> WalrusdsError:
        code, details = exc.code(), exc.details()
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            return ReadOnlyError(f"{self.addr} refused the blocks: {details}")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return Unavailable(f"lost walrusds at {self.addr} during {call}: {code.name}: "
                               f"{details}; run the import again to resume")
        failure = rpc_failure(self.addr, exc)
        if code == grpc.StatusCode.UNAUTHENTICATED and isinstance(failure, WalrusdsError):
            return failure
        return WalrusdsError(f"{call} to walrusds at {self.addr} failed: {code.name}: "
                             f"{details}")

    def close(self) -> None:
        """Close the channel, cancelling any call in flight (idempotent)."""
        if not self._closed:
            self._closed = True
            self._channel.close()

    def __enter__(self) -> ImportService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def put(key: bytes, value: bytes) -> pb.BatchRequest:
    """One put operation of a Batch stream."""
    return pb.BatchRequest(put=pb.BatchPut(key=key, value=value))


__all__ = ["ImportService", "put"]
