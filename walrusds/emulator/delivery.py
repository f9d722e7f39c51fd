"""Answering a blob read: liveness, bounds, headers, and the read faults (notes §4.1, §9).

The three read routes validate their own path and query, then call :func:`serve_blob` with the
window they want: the whole blob, an inclusive ``Range`` span (206), or a ``/byte-range`` window
(200). Faults are drawn here, after validation, so a malformed request never consumes one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from walrusds.emulator import bodies
from walrusds.emulator.core import EMULATOR, Emulator
from walrusds.emulator.faults import FaultKind, FaultSpec
from walrusds.emulator.httputil import NO_CONTENT_TYPE, abort_connection, drop_connection, respond
from walrusds.emulator.ranges import RangeError, check_byte_range, check_span
from walrusds.emulator.state import BlobRecord

__all__ = ["CACHE_CONTROL", "Window", "serve_blob"]

CACHE_CONTROL = "public, max-age=86400, stale-while-revalidate=3600"


@dataclass(frozen=True)
class Window:
    """What part of the blob was asked for, and how (``kind``: whole, span or window)."""

    kind: str = "whole"
    start: int = 0
    #: Inclusive end for a span; length for a ``/byte-range`` window.
    value: int = 0

    @staticmethod
    def span(start: int, end: int) -> Window:
        return Window("span", start, end)

    @staticmethod
    def byte_range(start: int, length: int) -> Window:
        return Window("window", start, length)


@dataclass
class _Answer:
    status: int
    start: int
    length: int
    etag: str
    content_range: str | None = None


async def serve_blob(request: web.Request, route: str, blob_id: str | None, window: Window,
                     extra_headers: Mapping[str, str] | None = None) -> web.StreamResponse:
    """Answer a read of ``blob_id`` (None: an object that names no blob) on ``route``."""
    emu = request.app[EMULATOR]
    head = request.method == "HEAD"
    record = emu.state.live(blob_id) if blob_id is not None else None
    reads_before = emu.state.note_read(record.blob_id) if record is not None else None
    fault = emu.faults.take(route, prefix=request.match_info.get("prefix"), blob_id=blob_id,
                            size=record.size if record is not None else None,
                            has_blob=record is not None, head=head, reads_before=reads_before)
    if fault is not None:
        early = await _early_fault(request, emu, route, fault)
        if early is not None:
            return early
    if record is None:
        return respond(bodies.status_error("BLOB_NOT_FOUND"))
    if fault is not None and fault.kind is FaultKind.IGNORE_RANGE:
        answer = _Answer(200, 0, record.size, record.blob_id)  # as before Range support
    else:
        try:
            answer = _answer(record, window)
        except RangeError as exc:
            code = 400 if window.kind == "window" else 416
            return respond(bodies.invalid_byte_range(str(exc), code=code))
    headers = _headers(request, answer, extra_headers)
    if head:
        return _head_response(answer, headers)
    body = await emu.state.data_range(record, answer.start, answer.length)
    if fault is not None:
        if fault.kind is FaultKind.TRUNCATE:
            return await _truncated(request, answer, headers, body, fault)
        body = await _altered_body(emu, record, answer, body, fault, headers)
    return web.Response(status=answer.status, body=body, headers=headers)


async def _early_fault(request: web.Request, emu: Emulator, route: str,
                       fault: FaultSpec) -> web.StreamResponse | None:
    """Answer for a fault that replaces the read; None when the read goes ahead."""
    if fault.kind is FaultKind.STATUS:
        assert fault.status is not None
        return respond(bodies.fault_body(route, fault.status))
    if fault.kind is FaultKind.NOT_FOUND_AFTER_STORE:
        return respond(bodies.status_error("BLOB_NOT_FOUND"))
    if fault.kind is FaultKind.DELAY:
        await emu.faults.wait(fault.delay)
    elif fault.kind is FaultKind.RESET:
        await emu.network.first_byte()
        return drop_connection(request)
    return None


def _answer(record: BlobRecord, window: Window) -> _Answer:
    if window.kind == "window":
        check_byte_range(window.start, window.value, record.size)
        return _Answer(200, window.start, window.value,
                       f"{record.blob_id}-{window.start}-{window.value}")
    if window.kind == "span":
        start, end = window.start, window.value
        check_span(start, end, record.size)
        return _Answer(206, start, end - start + 1, record.blob_id,
                       f"bytes {start}-{end}/{record.size}")
    return _Answer(200, 0, record.size, record.blob_id)


def _headers(request: web.Request, answer: _Answer,
             extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"ETag": answer.etag, "Cache-Control": CACHE_CONTROL,
               "X-Content-Type-Options": "nosniff"}
    if answer.content_range is not None:
        headers["Content-Range"] = answer.content_range
    # The aggregator mirrors an Accept without wildcards, else (GET only) a request
    # Content-Type, and otherwise sends no Content-Type at all (notes §4.1).
    accept = request.headers.get("Accept")
    if accept is not None and "*" not in accept:
        headers["Content-Type"] = accept
    elif request.method == "GET" and "Content-Type" in request.headers:
        headers["Content-Type"] = request.headers["Content-Type"]
    else:
        headers[NO_CONTENT_TYPE] = "1"
    for name, value in (extra or {}).items():
        # Attribute headers never overwrite headers the aggregator already set.
        if name.lower() not in {h.lower() for h in headers if h != NO_CONTENT_TYPE}:
            if name.lower() == "content-type":
                headers.pop(NO_CONTENT_TYPE, None)
            headers[name] = value
    return headers


def _head_response(answer: _Answer, headers: dict[str, str]) -> web.Response:
    headers = dict(headers, **{"Content-Length": str(answer.length)})
    return web.Response(status=answer.status, headers=headers)


async def _truncated(request: web.Request, answer: _Answer, headers: dict[str, str],
                     body: bytes, fault: FaultSpec) -> web.StreamResponse:
    """Announce the full length, send the first ``keep`` bytes, then reset the connection."""
    keep = len(body) // 2 if fault.keep is None else min(fault.keep, max(len(body) - 1, 0))
    response = web.StreamResponse(status=answer.status, headers=headers)
    response.content_length = len(body)
    await response.prepare(request)
    if keep:
        await request.app[EMULATOR].network.deliver(body[:keep], response.write)
    abort_connection(request)
    return response


async def _altered_body(emu: Emulator, record: BlobRecord, answer: _Answer, body: bytes,
                        fault: FaultSpec, headers: dict[str, str]) -> bytes:
    """Apply a fault that changes the bytes (or headers) of an otherwise normal answer."""
    kind = fault.kind
    if kind is FaultKind.SHORT_BODY:
        keep = len(body) - 1 if fault.keep is None else fault.keep
        return body[:max(0, min(keep, len(body) - 1))]
    if kind is FaultKind.BITFLIP:
        return _flip(body, len(body) // 2 if fault.at is None else fault.at)
    if kind is FaultKind.BAD_CONTENT_RANGE:
        if answer.content_range is not None:
            end = answer.start + answer.length - 1
            headers["Content-Range"] = f"bytes {answer.start + 1}-{end + 1}/{record.size}"
        return body
    if kind is FaultKind.WRONG_SLICE:
        data = await emu.state.data(record)
        shift = 1 if answer.start + answer.length < len(data) else -1
        if answer.start + shift < 0:
            wrong = data[1:] + data[:1]  # the whole blob: rotate it by one byte
        else:
            wrong = data[answer.start + shift:answer.start + shift + answer.length]
        return _differ(wrong, body)
    if kind is FaultKind.OTHER_BLOB:
        other = await _other_blob(emu, record)
        window = other[answer.start:answer.start + answer.length]
        return _differ(window.ljust(answer.length, b"\0"), body)
    return body


async def _other_blob(emu: Emulator, record: BlobRecord) -> bytes:
    for blob_id in sorted(emu.state.blobs):
        other = emu.state.live(blob_id)
        if blob_id != record.blob_id and other is not None:
            return await emu.state.data(other)
    return b""


def _flip(body: bytes, at: int) -> bytes:
    if not body:
        return body
    at = min(at, len(body) - 1)
    return body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1:]


def _differ(candidate: bytes, true: bytes) -> bytes:
    """``candidate``, made to differ from the true bytes if it happens to equal them."""
    return _flip(candidate, 0) if candidate == true else candidate
