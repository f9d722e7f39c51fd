"""The ``[metrics] listen`` address: ``host:port`` or ``[v6]:port``, or "" for no endpoint.

Kept free of prometheus and aiohttp imports: configuration validation calls it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from walrusds.errors import ConfigError

__all__ = ["MetricsAddress", "parse_metrics_listen"]


@dataclass(frozen=True)
class MetricsAddress:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_metrics_listen(text: str) -> MetricsAddress | None:
    """None for "" (the endpoint is off); a ConfigError naming the key for anything else
    that is not ``host:port`` (port 0 picks a free port: tests use it)."""
    text = text.strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # an IPv6 literal must be bracketed, or the port is ambiguous
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"metrics.listen {text!r} is not host:port (e.g. 127.0.0.1:9464, "
                          "[::1]:9464), or \"\" to turn the endpoint off")
    if host.startswith("unix") or "/" in host:
        raise ConfigError(f"metrics.listen {text!r}: the metrics endpoint listens on TCP only")
    return MetricsAddress(host, int(port))
