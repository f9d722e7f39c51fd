"""``EmulatorControl``: drive a running emulator's ``/_emulator/`` surface over HTTP.

For tests whose emulator runs in another process (``walrusds emulator``, ``walrusds up``)::

    async with EmulatorControl("http://127.0.0.1:31415") as control:
        await control.add_fault("store", "status", status=503, count=2)
        ...
        assert (await control.counters())["routes"]["store"] == 3

Every method returns the decoded JSON answer; a refusal raises :class:`ControlError` with the
surface's message. This module only speaks HTTP; in-process tests may use
``RunningEmulator.emulator`` directly instead.
"""

from __future__ import annotations

from enum import Enum
from types import TracebackType
from typing import Any, Final

import httpx

__all__ = ["KEEP", "ControlError", "EmulatorControl"]


class _Keep(Enum):
    KEEP = "keep"


#: ``set_network``'s default for a field it leaves as it is (None means "no cap" there).
KEEP: Final = _Keep.KEEP


class ControlError(RuntimeError):
    """The control surface refused a request (a test bug, not a Walrus error)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class EmulatorControl:
    """An async client of one emulator's control surface (``url`` is its base URL)."""

    def __init__(self, url: str, *, timeout: float = 10.0,
                 client: httpx.AsyncClient | None = None) -> None:
        self.url = url.rstrip("/")
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self) -> EmulatorControl:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self._client.request(method, f"{self.url}/_emulator{path}",
                                              json=body)
        try:
            value = response.json()
        except ValueError:
            value = None
        if response.status_code >= 400:
            message = value.get("error") if isinstance(value, dict) else response.text
            raise ControlError(f"{method} /_emulator{path}: {response.status_code} {message}",
                               response.status_code)
        return value

    # -- faults ------------------------------------------------------------------------------

    async def add_fault(self, route: str, kind: str, **spec: Any) -> int:
        """Add a fault rule (fields as in ``walrusds.emulator.faults.FaultSpec``); its id."""
        answer = await self._call("POST", "/faults", dict(spec, route=route, kind=kind))
        return int(answer["id"])

    async def faults(self) -> list[dict[str, Any]]:
        answer = await self._call("GET", "/faults")
        return list(answer["faults"])

    async def remove_fault(self, fault_id: int) -> None:
        await self._call("DELETE", f"/faults/{fault_id}")

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")

    # -- epochs ------------------------------------------------------------------------------

    async def epoch(self) -> int:
        return int((await self._call("GET", "/epoch"))["epoch"])

    async def advance_epoch(self, epochs: int = 1) -> int:
        return int((await self._call("POST", "/epoch", {"advance": epochs}))["epoch"])

    async def set_epoch(self, epoch: int) -> int:
        return int((await self._call("POST", "/epoch", {"set": epoch}))["epoch"])

    # -- counters and state ------------------------------------------------------------------

    async def counters(self) -> dict[str, Any]:
        """``{"routes": {route: calls}, "statuses": {route: {status: n}}, "prefixes": ...,
        "in_flight": ...}``."""
        return dict(await self._call("GET", "/counters"))

    async def reset_counters(self) -> None:
        await self._call("DELETE", "/counters")

    async def state(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/state"))

    async def blob(self, blob_id: str) -> dict[str, Any] | None:
        """One blob's size, end epoch and objects; None if the emulator does not know it."""
        try:
            return dict(await self._call("GET", f"/blobs/{blob_id}"))
        except ControlError as exc:
            if exc.status == 404:
                return None
            raise

    # -- damage ------------------------------------------------------------------------------

    async def corrupt(self, blob_id: str, offset: int, mask: int = 0x01) -> None:
        """XOR the stored byte at ``offset`` of ``blob_id`` with ``mask`` (persistently)."""
        await self._call("POST", f"/blobs/{blob_id}/corrupt", {"offset": offset, "mask": mask})

    async def delete_blob(self, blob_id: str) -> None:
        await self._call("DELETE", f"/blobs/{blob_id}")

    async def wipe(self, *, reset_epoch: bool = False) -> None:
        """A Testnet wipe: every blob disappears (and the epoch restarts if asked)."""
        await self._call("POST", "/wipe", {"reset_epoch": reset_epoch})

    async def set_attributes(self, object_id: str, attributes: dict[str, str]) -> None:
        await self._call("PUT", f"/objects/{object_id}/attributes", attributes)

    # -- limits ------------------------------------------------------------------------------

    async def max_body_size(self) -> int:
        return int((await self._call("GET", "/limits"))["max_body_size"])

    async def set_max_body_size(self, size: int) -> None:
        await self._call("PUT", "/limits", {"max_body_size": size})

    # -- network profile ---------------------------------------------------------------------

    async def network(self) -> dict[str, Any]:
        """``{"latency": s, "bandwidth": bytes/s | None, "connection_bandwidth": ...}``."""
        return dict(await self._call("GET", "/network"))

    async def set_network(self, *, latency: float | _Keep = KEEP,
                          bandwidth: float | _Keep | None = KEEP,
                          connection_bandwidth: float | _Keep | None = KEEP) -> dict[str, Any]:
        """Change the given fields of the profile (None: no cap); the new profile.

        New answers follow it at once; the link cap (``bandwidth``) also applies at once to
        bodies already on their way.
        """
        fields = {"latency": latency, "bandwidth": bandwidth,
                  "connection_bandwidth": connection_bandwidth}
        changes = {name: value for name, value in fields.items() if value is not KEEP}
        return dict(await self._call("POST", "/network", changes))
