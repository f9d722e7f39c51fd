"""Small helpers shared by the emulator tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from walrusds.emulator.runner import RunningEmulator

#: The ``start`` fixture: ``await start(**EmulatorConfig fields)`` → a running emulator.
Starter = Callable[..., Awaitable[RunningEmulator]]


async def store(http: httpx.AsyncClient, data: bytes, **params: Any) -> dict[str, Any]:
    """PUT ``data`` and return the 200 JSON answer (asserting it was a 200)."""
    query = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.items()}
    response = await http.put("/v1/blobs", params=query, content=data)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def store_id(http: httpx.AsyncClient, data: bytes, **params: Any) -> str:
    """PUT ``data`` and return the new blob's ID (from a ``newlyCreated`` answer)."""
    result = await store(http, data, **params)
    return str(result["newlyCreated"]["blobObject"]["blobId"])


def error_reason(response: httpx.Response) -> tuple[int, str, str]:
    """``(code, status, reason)`` of a JSON ``Status`` error body, checking its shape."""
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"status", "code", "message", "details"} <= set(error)
    assert error["code"] == response.status_code
    info = error["details"][0]
    assert info["@type"] == "ErrorInfo"
    return error["code"], error["status"], info["reason"]
