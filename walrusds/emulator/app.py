"""The emulator's aiohttp application: one process serving publisher and aggregator routes
(like ``walrus daemon``) plus the ``/_emulator/`` control surface.

Every Walrus route is also served under one extra leading path segment (``/KEY/v1/blobs``), as
commercial publishers put an API key in the path; fault rules and counters can target such a
prefix, so one emulator can play several endpoints that share one network.

Middleware, outermost first: CORS preflight answers (any origin, as the daemon's CORS layer),
the network profile's bandwidth caps (bodies are paced, see :mod:`walrusds.emulator.shaping`),
per-route request counters, and load shedding — more than ``concurrency + buffer`` calls in
flight on the publisher (or aggregator) routes get 429 plain text, at most ``concurrency`` run
at once. The profile's latency is slept just before an answer's headers go out, so it delays
every answer but those of the control surface.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from walrusds.emulator import aggregator, bodies, control_api, publisher
from walrusds.emulator.core import EMULATOR, SERVICE_OF_ROUTE, Emulator
from walrusds.emulator.httputil import NO_CONTENT_TYPE, respond
from walrusds.emulator.shaping import PacedBody

__all__ = ["make_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CORS_PREFLIGHT = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "*",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Max-Age": "86400",
}


@web.middleware
async def _cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        return web.Response(status=200, headers=_CORS_PREFLIGHT)
    return await handler(request)


def _crosses_network(request: web.Request) -> bool:
    """True for every answer of the emulated daemon; False for the control surface."""
    resource = request.match_info.route.resource
    return resource is None or not resource.canonical.startswith(control_api.CONTROL_PREFIX)


@web.middleware
async def _pace_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Hand the body of an answer to the network's pace when a bandwidth cap applies."""
    response = await handler(request)
    network = request.app[EMULATOR].network
    if (network.profile.shapes_bodies and request.method != "HEAD"
            and isinstance(response, web.Response) and not response.prepared
            and isinstance(response.body, bytes) and response.body
            and _crosses_network(request)):
        response.body = PacedBody(response.body, network)
    return response


@web.middleware
async def _count_and_shed(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = (request.match_info.route.name or "").removesuffix("-prefixed")
    if route not in SERVICE_OF_ROUTE:
        return await handler(request)
    emu = request.app[EMULATOR]
    emu.count(route, request.match_info.get("prefix"))
    service = SERVICE_OF_ROUTE[route]
    if service is None:
        response = await handler(request)
    else:
        gate = emu.gates[service]
        if gate.full:
            response = respond(bodies.too_many_requests(service))
        else:
            gate.in_flight += 1
            try:
                async with gate.semaphore:
                    response = await handler(request)
            finally:
                gate.in_flight -= 1
    emu.count_status(route, response.status)
    return response


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Last touches on every response's headers, just before they are sent.

    Every route allows any origin (the daemon's CORS layer), and blob bytes go out without a
    Content-Type, as the aggregator sends them (notes §4.1). Then the profile's latency: the
    headers are the answer's first byte. A connection the emulator reset gets none.
    """
    response.headers.setdefault("Access-Control-Allow-Origin", "*")
    if response.headers.pop(NO_CONTENT_TYPE, None) is not None:
        response.headers.pop("Content-Type", None)
    transport = request.transport
    if _crosses_network(request) and transport is not None and not transport.is_closing():
        await request.app[EMULATOR].network.first_byte()


async def _status(request: web.Request) -> web.Response:
    return web.Response(text="OK")


async def _api(request: web.Request) -> web.Response:
    return web.Response(text="<!doctype html><title>Walrus emulator</title><p>This is the "
                        "walrusds Walrus emulator, not a real daemon; see docs/emulator.md.</p>",
                        content_type="text/html")


async def _on_cleanup(app: web.Application) -> None:
    await app[EMULATOR].close()


def make_app(emulator: Emulator) -> web.Application:
    """An aiohttp application serving ``emulator``."""
    app = web.Application(middlewares=[_cors, _pace_bodies, _count_and_shed])
    app[EMULATOR] = emulator
    app.on_response_prepare.append(_on_prepare)
    app.on_cleanup.append(_on_cleanup)
    control_api.add_routes(app)
    for base in ("", "/{prefix}"):
        suffix = "-prefixed" if base else ""
        app.router.add_get(base + "/status", _status, name="status" + suffix)
        app.router.add_get(base + "/v1/api", _api, name="api" + suffix)
        app.router.add_put(base + "/v1/blobs", publisher.put_blob, name="store" + suffix)
        app.router.add_get(base + "/v1/blobs/by-object-id/{object_id}",
                           aggregator.get_by_object_id, name="by_object_id" + suffix)
        app.router.add_get(base + "/v1/blobs/{blob_id}/byte-range", aggregator.get_byte_range,
                           name="byte_range" + suffix)
        app.router.add_get(base + "/v1/blobs/{blob_id}", aggregator.get_blob,
                           name="read" + suffix)
    return app
