"""Endpoint lists with failover: healthy endpoints first, failing ones demoted for a while.

A failing endpoint is not dropped (it may recover, and it may be the only one); it is tried
after every healthy endpoint until its demotion expires. Consecutive failures lengthen the
demotion (doubling up to a cap); one success clears it.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from walrusds.errors import ConfigError

__all__ = ["Endpoint", "EndpointPool", "check_endpoint_url", "redact_url"]

DEMOTE_BASE = 5.0
DEMOTE_MAX = 300.0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_link_local(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_link_local or ip.is_unspecified


def check_endpoint_url(url: str, what: str) -> str:
    """Validate a publisher/aggregator base URL: https, or http on loopback only.

    The base may carry a path prefix (commercial publishers put an API key there); it must
    not carry a query or fragment. Returns the URL without a trailing slash.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} {redact_url(url)!r} is not an http(s) URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(f"{what} {redact_url(url)} must use https (plain http is allowed "
                          "on loopback only)")
    if _is_link_local(parts.hostname):
        raise ConfigError(f"{what} {redact_url(url)} is a link-local or unspecified address "
                          "(where cloud metadata services answer): use the endpoint's own "
                          "address")
    if parts.query or parts.fragment:
        raise ConfigError(f"{what} {redact_url(url)} must not have a query or fragment")
    if parts.username or parts.password:
        raise ConfigError(f"{what} {redact_url(url)} must not carry credentials; use "
                          "walrus.publisher_token_file")
    return url.rstrip("/")


def redact_url(url: str) -> str:
    """Scheme, host and port only: a path may hold an API key."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    if ":" in host:
        host = f"[{host}]"
    hidden = "/…" if parts.path.strip("/") else ""
    return f"{parts.scheme}://{host}{port}{hidden}"


@dataclass
class Endpoint:
    base: str
    failures: int = 0
    demoted_until: float = 0.0

    @property
    def name(self) -> str:
        return redact_url(self.base)


class EndpointPool:
    """The endpoints of one kind (publishers or aggregators), best first."""

    def __init__(self, bases: Sequence[str], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.endpoints = [Endpoint(b.rstrip("/")) for b in bases]
        self._clock = clock

    def __bool__(self) -> bool:
        return bool(self.endpoints)

    def ordered(self) -> list[Endpoint]:
        """Healthy endpoints in configured order, then demoted ones, soonest recovery first."""
        now = self._clock()
        healthy = [e for e in self.endpoints if e.demoted_until <= now]
        demoted = sorted((e for e in self.endpoints if e.demoted_until > now),
                         key=lambda e: e.demoted_until)
        return healthy + demoted

    def failed(self, endpoint: Endpoint) -> None:
        endpoint.failures += 1
        delay = min(DEMOTE_MAX, DEMOTE_BASE * 2 ** (endpoint.failures - 1))
        endpoint.demoted_until = self._clock() + delay

    def succeeded(self, endpoint: Endpoint) -> None:
        endpoint.failures = 0
        endpoint.demoted_until = 0.0
