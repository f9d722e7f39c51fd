"""The aggregator's read routes (notes §4, §9 items 7-9): request validation only.

* ``GET``/``HEAD /v1/blobs/{blob_id}`` — optional single-range ``Range`` header (206);
* ``GET /v1/blobs/{blob_id}/byte-range?start=S&length=L`` — always 200, ETag ``<id>-S-L``;
* ``GET /v1/blobs/by-object-id/{object_id}`` — any Blob object the publisher issued, plus the
  attribute headers a test set on it through the control surface.

Checks run in the real aggregator's order: path (400 plain text), query (400 plain text, unknown
keys included), both consistency flags (400 JSON), range syntax (416 JSON); then the blob is
looked up (404 JSON) and its bounds checked (:mod:`walrusds.emulator.delivery`).
"""

from __future__ import annotations

from aiohttp import web

from walrusds.emulator import bodies
from walrusds.emulator.core import EMULATOR
from walrusds.emulator.delivery import Window, serve_blob
from walrusds.emulator.httputil import QueryError, parse_bool, parse_u64, respond, strict_query
from walrusds.emulator.ids import is_blob_id, is_sui_address
from walrusds.emulator.ranges import RangeError, check_byte_range, parse_range_header

__all__ = ["get_blob", "get_by_object_id", "get_byte_range"]

READ_QUERY_KEYS = frozenset({"strict_consistency_check", "skip_consistency_check"})
BYTE_RANGE_QUERY_KEYS = frozenset({"start", "length"})

#: Attribute keys an aggregator turns into response headers by default (notes §4.2).
ALLOWED_ATTRIBUTE_HEADERS = frozenset({
    "content-type", "content-disposition", "content-encoding", "content-language",
    "content-location", "link", "authorization",
})


def _bad_path(name: str, value: str, expected: str) -> web.Response:
    return respond(bodies.plain(400, f"Invalid URL: Cannot parse `{name}` with value "
                                     f"`{value[:100]}` to {expected}"))


def _read_window(request: web.Request) -> Window | web.Response:
    """The window of a plain read, or the error response for a bad query or Range."""
    try:
        query = strict_query(request, READ_QUERY_KEYS)
        strict = parse_bool("strict_consistency_check", query.get("strict_consistency_check"))
        skip = parse_bool("skip_consistency_check", query.get("skip_consistency_check"))
    except QueryError as exc:
        return exc.response()
    if strict and skip:
        return respond(bodies.status_error("INVALID_CONSISTENCY_CHECK"))
    header = request.headers.get("Range")
    if header is None:
        return Window()
    try:
        return Window.span(*parse_range_header(header))
    except RangeError as exc:
        return respond(bodies.invalid_byte_range(str(exc), code=416))


async def get_blob(request: web.Request) -> web.StreamResponse:
    blob_id = request.match_info["blob_id"]
    if not is_blob_id(blob_id):
        return _bad_path("blob_id", blob_id, "a blob ID")
    window = _read_window(request)
    if isinstance(window, web.Response):
        return window
    return await serve_blob(request, "read", blob_id, window)


async def get_byte_range(request: web.Request) -> web.StreamResponse:
    blob_id = request.match_info["blob_id"]
    if not is_blob_id(blob_id):
        return _bad_path("blob_id", blob_id, "a blob ID")
    try:
        query = strict_query(request, BYTE_RANGE_QUERY_KEYS, required=BYTE_RANGE_QUERY_KEYS)
        start = parse_u64("start", query["start"]) or 0
        length = parse_u64("length", query["length"]) or 0
    except QueryError as exc:
        return exc.response()
    try:
        # Refused before the blob is looked up; bounds need its size and are checked later.
        check_byte_range(start, length, size=start + length)
    except RangeError as exc:
        return respond(bodies.invalid_byte_range(str(exc), code=400))
    return await serve_blob(request, "byte_range", blob_id, Window.byte_range(start, length))


async def get_by_object_id(request: web.Request) -> web.StreamResponse:
    raw = request.match_info["object_id"]
    if not is_sui_address(raw):
        return _bad_path("object_id", raw, "an object ID")
    object_id = "0x" + raw[2:].lower().rjust(64, "0")
    window = _read_window(request)
    if isinstance(window, web.Response):
        return window
    state = request.app[EMULATOR].state
    blob_id = state.objects.get(object_id)
    attributes = state.attributes.get(object_id, {})
    headers = {k: v for k, v in attributes.items() if k.lower() in ALLOWED_ATTRIBUTE_HEADERS}
    return await serve_blob(request, "by_object_id", blob_id, window, headers)
