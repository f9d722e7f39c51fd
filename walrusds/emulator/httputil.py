"""Small aiohttp helpers shared by the emulator's routes: writing bodies, dropping connections,
strict query parsing (Walrus' query structs are ``deny_unknown_fields``)."""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Mapping

from aiohttp import web

from walrusds.emulator.bodies import ErrorBody, plain

__all__ = [
    "DROPPED",
    "NO_CONTENT_TYPE",
    "QueryError",
    "abort_connection",
    "drop_connection",
    "parse_bool",
    "parse_u64",
    "respond",
    "strict_query",
]

#: Marker header: the ``on_response_prepare`` hook drops it and the default Content-Type that
#: aiohttp would add, because the aggregator sends blob bytes without a Content-Type.
NO_CONTENT_TYPE = "X-Emulator-No-Content-Type"
#: Status recorded in the counters for a connection reset instead of answered (nginx's 444).
DROPPED = 444


class QueryError(ValueError):
    """A query string the real service's extractor would reject with 400 plain text."""

    def response(self) -> web.Response:
        return respond(plain(400, f"Failed to deserialize query string: {self}"))


def respond(body: ErrorBody, headers: Mapping[str, str] | None = None) -> web.Response:
    status, content_type, data = body
    response = web.Response(status=status, body=data, headers=headers)
    response.content_type = content_type.split(";")[0]
    if "charset=" in content_type:
        response.charset = content_type.split("charset=")[1]
    return response


def abort_connection(request: web.Request) -> None:
    """Reset the client's TCP connection now (RST, not FIN), as a crashed proxy would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def drop_connection(request: web.Request) -> web.Response:
    """Reset the connection and return a placeholder response that never reaches the client.

    aiohttp still wants a response from the handler; writing it to the aborted transport is a
    no-op. Its status, :data:`DROPPED`, is what the per-route status counters record.
    """
    abort_connection(request)
    return web.Response(status=DROPPED)


def strict_query(request: web.Request, allowed: frozenset[str],
                 required: frozenset[str] = frozenset()) -> dict[str, str]:
    """The query as one value per key; unknown, repeated or missing keys raise
    :class:`QueryError` (serde's ``deny_unknown_fields``)."""
    out: dict[str, str] = {}
    for key, value in request.query.items():
        if key not in allowed:
            expected = ", ".join(f"`{k}`" for k in sorted(allowed))
            raise QueryError(f"unknown field `{key}`, expected one of {expected}")
        if key in out:
            raise QueryError(f"duplicate field `{key}`")
        out[key] = value
    for key in sorted(required - out.keys()):
        raise QueryError(f"missing field `{key}`")
    return out


def parse_bool(name: str, value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    if value == "true":
        return True
    if value == "false":
        return False
    raise QueryError(f"{name}: provided string was not `true` or `false`")


def parse_u64(name: str, value: str | None, *, bits: int = 64) -> int | None:
    if value is None:
        return None
    if not value.isascii() or not value.isdigit():
        raise QueryError(f"{name}: invalid digit found in string")
    number = int(value)
    if number >= 1 << bits:
        raise QueryError(f"{name}: number too large to fit in target type")
    return number
