"""``PUT /v1/blobs``: the publisher route (notes §2.1-§2.4, §9 items 1-4).

Checks run in the order the real daemon runs them: query string (400 plain text), body size
(413 plain text), persistence flags (400 JSON ``INVALID_BLOB_PERSISTENCE``), then the "chain"
(``epochs`` of 0 or above the maximum → 500 ``INTERNAL_ERROR``), then the store itself. Injected
faults are drawn after validation, so a malformed request never consumes one; some replace the
store, others (``reset_after_store``, ``delay_after_store``, ``stale_certified``) follow it.
"""

from __future__ import annotations

from aiohttp import web

from walrusds.emulator import bodies
from walrusds.emulator.core import EMULATOR, Emulator
from walrusds.emulator.faults import FaultKind, FaultSpec
from walrusds.emulator.httputil import (
    QueryError,
    drop_connection,
    parse_bool,
    parse_u64,
    respond,
    strict_query,
)
from walrusds.emulator.ids import fake_blob_id, is_sui_address
from walrusds.emulator.shaping import CHUNK, Direction, Network
from walrusds.emulator.state import StoreParams

__all__ = ["STORE_QUERY_KEYS", "put_blob"]

STORE_QUERY_KEYS = frozenset({
    "epochs", "permanent", "deletable", "force", "reuse_resources", "send_object_to", "share",
    "encoding_type",
    # Quilt-only, but part of the same flattened query struct; accepted and ignored here.
    "quilt_version",
})


def parse_store_query(request: web.Request) -> tuple[StoreParams, bool]:
    """Return the parameters and the deprecated ``deletable`` flag, or raise QueryError."""
    query = strict_query(request, STORE_QUERY_KEYS)
    epochs = parse_u64("epochs", query.get("epochs"), bits=32)
    send_to = query.get("send_object_to")
    if send_to is not None and not is_sui_address(send_to):
        raise QueryError("send_object_to: invalid Sui address")
    share = query.get("share")
    if share is not None and send_to is not None:
        raise QueryError("`share` and `send_object_to` cannot be used together")
    encoding = query.get("encoding_type")
    if encoding is not None and encoding != "RS2":
        raise QueryError(f"encoding_type: unknown variant `{encoding}`, expected `RS2`")
    params = StoreParams(
        epochs=1 if epochs is None else epochs,
        permanent=parse_bool("permanent", query.get("permanent")),
        force=parse_bool("force", query.get("force")),
        reuse_resources=parse_bool("reuse_resources", query.get("reuse_resources")),
        send_object_to=send_to.lower() if send_to else None,
        share=parse_bool("share", share),
    )
    return params, parse_bool("deletable", query.get("deletable"))


async def read_body(request: web.Request, limit: int, network: Network) -> bytes | None:
    """The request body, or None when it is longer than ``limit`` bytes.

    An oversized body is still read to its end (and dropped) before the 413 goes out: a client
    that is still sending when the server closes would see a broken pipe instead of the 413,
    and the 413 is what a client must learn from (it says "split the upload"). Every chunk
    is taken at the network's pace when a bandwidth cap applies.
    """
    chunks: list[bytes] = []
    total = 0
    too_large = request.content_length is not None and request.content_length > limit
    transfer = network.transfer(Direction.UP)
    size = CHUNK if transfer is None else transfer.chunk_size
    async for chunk in request.content.iter_chunked(size):
        if transfer is not None:
            await transfer.pace(len(chunk))
        total += len(chunk)
        if total > limit:
            too_large = True
            chunks.clear()
        if not too_large:
            chunks.append(chunk)
    return None if too_large else b"".join(chunks)


async def put_blob(request: web.Request) -> web.StreamResponse:
    emu = request.app[EMULATOR]
    try:
        params, deletable = parse_store_query(request)
    except QueryError as exc:
        return exc.response()
    data = await read_body(request, emu.max_body_size, emu.network)
    if data is None:
        return respond(bodies.body_too_large())
    if deletable and params.permanent:
        return respond(bodies.status_error("INVALID_BLOB_PERSISTENCE"))
    if not 1 <= params.epochs <= emu.config.max_epochs_ahead:
        # A Move abort (EInvalidEpochsAhead) on chain surfaces as a hidden internal error.
        return respond(bodies.status_error("INTERNAL_ERROR"))
    blob_id = fake_blob_id(data)
    fault = emu.faults.take("store", prefix=request.match_info.get("prefix"), blob_id=blob_id,
                            size=len(data))
    if fault is not None:
        early = await _apply_fault_before_store(request, emu, fault, blob_id)
        if early is not None:
            return early
    stale = fault is not None and fault.kind is FaultKind.STALE_CERTIFIED
    result = await emu.state.store(blob_id, data, params, stale=stale)
    if fault is not None and fault.kind is FaultKind.RESET_AFTER_STORE:
        await emu.network.first_byte()
        return drop_connection(request)
    if fault is not None and fault.kind is FaultKind.DELAY_AFTER_STORE:
        await emu.faults.wait(fault.delay)
    return respond(bodies.json_body(200, result))


async def _apply_fault_before_store(request: web.Request, emu: Emulator, fault: FaultSpec,
                                    blob_id: str) -> web.StreamResponse | None:
    """Answer for a fault that replaces the store; None when the store goes ahead."""
    kind = fault.kind
    if kind is FaultKind.STATUS:
        assert fault.status is not None
        return respond(bodies.fault_body("store", fault.status))
    if kind is FaultKind.DELAY:
        await emu.faults.wait(fault.delay)
        return None
    if kind is FaultKind.RESET:
        await emu.network.first_byte()
        return drop_connection(request)
    if kind is FaultKind.ERROR_200:
        return respond(bodies.json_body(200, bodies.store_error(
            blob_id, "with_certify_and_extend_result",
            "emulated failure: the blob could not be certified")))
    if kind is FaultKind.BAD_JSON:
        return web.Response(status=200, body=b'{"newlyCreated": {"blobObject": ',
                            content_type="application/json")
    return None
