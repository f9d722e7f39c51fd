"""The ``/_emulator/`` control surface: JSON routes for tests, not part of the Walrus API.

=======  ======================================  ===========================================
Method   Path                                    Body → answer
=======  ======================================  ===========================================
GET      /_emulator/state                        epoch, every blob, faults, limits, counters
GET      /_emulator/epoch                        → ``{"epoch": N}``
POST     /_emulator/epoch                        ``{"advance": N}`` or ``{"set": N}``
GET      /_emulator/faults                       → ``{"faults": [{id, spec, remaining, fired}]}``
POST     /_emulator/faults                       a fault spec (see ``faults.py``) → ``{"id"}``
DELETE   /_emulator/faults                       drop every fault, end pending delays
DELETE   /_emulator/faults/{id}                  drop one fault
GET      /_emulator/counters                     calls per route, statuses, prefixes, in flight
DELETE   /_emulator/counters                     reset the counters
GET      /_emulator/blobs/{blob_id}              one blob: size, end epoch, objects
DELETE   /_emulator/blobs/{blob_id}              forget the blob and its bytes (reads → 404)
POST     /_emulator/blobs/{blob_id}/corrupt      ``{"offset": O, "mask": 1}``: XOR a stored byte
PUT      /_emulator/objects/{id}/attributes      ``{"content-type": "..."}``: by-object-id headers
POST     /_emulator/wipe                         ``{"reset_epoch": false}``: a Testnet wipe
GET/PUT  /_emulator/limits                       ``{"max_body_size": N}``
GET      /_emulator/network                      → ``{"latency", "bandwidth",
                                                 "connection_bandwidth"}``
POST     /_emulator/network                      any of those fields: change the profile
=======  ======================================  ===========================================

Errors are JSON ``{"error": "..."}`` with 400 (bad request) or 404 (unknown blob, object or
fault). The surface has no authentication: that is why the CLI refuses non-loopback addresses.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from walrusds.emulator.core import EMULATOR, Emulator
from walrusds.emulator.faults import FaultSpec

__all__ = ["CONTROL_PREFIX", "add_routes"]

CONTROL_PREFIX = "/_emulator"


class _BadRequest(Exception):
    """A control request the surface refuses with 400."""


def _ok(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_object(request: web.Request, *, empty_ok: bool = False) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip() and empty_ok:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise _BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _BadRequest("the body must be a JSON object")
    return value


def _int(body: dict[str, Any], name: str, *, default: int | None = None) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadRequest(f"{name!r} must be an integer")
    return value


Route = Callable[[web.Request, Emulator], Awaitable[web.Response]]


def _handler(route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Give ``route`` the emulator and turn refusals into JSON error answers."""
    async def handle(request: web.Request) -> web.Response:
        try:
            return await route(request, request.app[EMULATOR])
        except (_BadRequest, ValueError) as exc:
            return _error(400, str(exc))
    return handle


async def _state(request: web.Request, emu: Emulator) -> web.Response:
    return _ok(dict(emu.state.snapshot(), faults=emu.faults.describe(),
                    max_body_size=emu.max_body_size, counters=emu.counters_json(),
                    network=emu.network.profile.to_json()))


async def _get_epoch(request: web.Request, emu: Emulator) -> web.Response:
    return _ok({"epoch": emu.state.epoch})


async def _post_epoch(request: web.Request, emu: Emulator) -> web.Response:
    body = await _json_object(request)
    if set(body) == {"advance"}:
        epoch = await emu.state.advance(_int(body, "advance"))
    elif set(body) == {"set"}:
        epoch = await emu.state.set_epoch(_int(body, "set"))
    else:
        raise _BadRequest('send {"advance": N} or {"set": N}')
    return _ok({"epoch": epoch})


async def _get_faults(request: web.Request, emu: Emulator) -> web.Response:
    return _ok({"faults": emu.faults.describe()})


async def _add_fault(request: web.Request, emu: Emulator) -> web.Response:
    spec = FaultSpec.from_json(await _json_object(request))
    return _ok({"id": emu.faults.add(spec), "spec": spec.to_json()}, status=201)


async def _clear_faults(request: web.Request, emu: Emulator) -> web.Response:
    emu.faults.clear()
    return _ok({"faults": []})


async def _remove_fault(request: web.Request, emu: Emulator) -> web.Response:
    try:
        rule_id = int(request.match_info["fault_id"])
    except ValueError:
        raise _BadRequest("a fault id is an integer") from None
    if not emu.faults.remove(rule_id):
        return _error(404, f"no fault with id {rule_id}")
    return _ok({"removed": rule_id})


async def _get_counters(request: web.Request, emu: Emulator) -> web.Response:
    return _ok(emu.counters_json())


async def _reset_counters(request: web.Request, emu: Emulator) -> web.Response:
    emu.reset_counters()
    return _ok(emu.counters_json())


async def _get_blob(request: web.Request, emu: Emulator) -> web.Response:
    blob_id = request.match_info["blob_id"]
    info = emu.state.describe(blob_id)
    if info is None:
        return _error(404, f"no blob {blob_id}")
    return _ok(info)


async def _delete_blob(request: web.Request, emu: Emulator) -> web.Response:
    blob_id = request.match_info["blob_id"]
    if not await emu.state.delete(blob_id):
        return _error(404, f"no blob {blob_id}")
    return _ok({"deleted": blob_id})


async def _corrupt_blob(request: web.Request, emu: Emulator) -> web.Response:
    blob_id = request.match_info["blob_id"]
    body = await _json_object(request)
    unknown = set(body) - {"offset", "mask"}
    if unknown:
        raise _BadRequest(f"unknown fields: {sorted(unknown)}")
    offset, mask = _int(body, "offset"), _int(body, "mask", default=1)
    try:
        await emu.state.corrupt(blob_id, offset, mask)
    except KeyError:
        return _error(404, f"no blob {blob_id}")
    return _ok({"corrupted": blob_id, "offset": offset, "mask": mask})


async def _set_attributes(request: web.Request, emu: Emulator) -> web.Response:
    object_id = request.match_info["object_id"]
    body = await _json_object(request)
    if not all(isinstance(v, str) for v in body.values()):
        raise _BadRequest("attribute values must be strings")
    try:
        await emu.state.set_attributes(object_id, body)
    except KeyError:
        return _error(404, f"no object {object_id}")
    return _ok({"object_id": object_id, "attributes": body})


async def _wipe(request: web.Request, emu: Emulator) -> web.Response:
    body = await _json_object(request, empty_ok=True)
    reset_epoch = body.get("reset_epoch", False)
    if not isinstance(reset_epoch, bool) or set(body) - {"reset_epoch"}:
        raise _BadRequest('send {} or {"reset_epoch": true|false}')
    await emu.state.wipe(reset_epoch=reset_epoch)
    return _ok({"epoch": emu.state.epoch, "blobs": 0})


async def _get_limits(request: web.Request, emu: Emulator) -> web.Response:
    return _ok({"max_body_size": emu.max_body_size})


async def _set_limits(request: web.Request, emu: Emulator) -> web.Response:
    body = await _json_object(request)
    if set(body) != {"max_body_size"}:
        raise _BadRequest('send {"max_body_size": BYTES}')
    emu.set_max_body_size(_int(body, "max_body_size"))
    return _ok({"max_body_size": emu.max_body_size})


async def _get_network(request: web.Request, emu: Emulator) -> web.Response:
    return _ok(emu.network.profile.to_json())


async def _set_network(request: web.Request, emu: Emulator) -> web.Response:
    emu.network.set(emu.network.profile.updated(await _json_object(request)))
    return _ok(emu.network.profile.to_json())


def add_routes(app: web.Application) -> None:
    """Register the control surface on ``app`` (the route names all start with ``control``)."""
    table: list[tuple[str, str, Route]] = [
        ("GET", "/state", _state),
        ("GET", "/epoch", _get_epoch),
        ("POST", "/epoch", _post_epoch),
        ("GET", "/faults", _get_faults),
        ("POST", "/faults", _add_fault),
        ("DELETE", "/faults", _clear_faults),
        ("DELETE", "/faults/{fault_id}", _remove_fault),
        ("GET", "/counters", _get_counters),
        ("DELETE", "/counters", _reset_counters),
        ("GET", "/blobs/{blob_id}", _get_blob),
        ("DELETE", "/blobs/{blob_id}", _delete_blob),
        ("POST", "/blobs/{blob_id}/corrupt", _corrupt_blob),
        ("PUT", "/objects/{object_id}/attributes", _set_attributes),
        ("POST", "/wipe", _wipe),
        ("GET", "/limits", _get_limits),
        ("PUT", "/limits", _set_limits),
        ("GET", "/network", _get_network),
        ("POST", "/network", _set_network),
    ]
    for method, path, route in table:
        app.router.add_route(method, CONTROL_PREFIX + path, _handler(route))
