"""Listen addresses and transport security of the gRPC server.

``unix:/path`` (or ``unix:///path``) listens on a Unix socket made mode 0600; ``host:port``
listens on TCP. A non-loopback TCP address is refused unless TLS and a token (or mutual TLS) are
configured: the API can read and delete every block.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from walrusds.config import Config, SecurityConfig, read_secret_file
from walrusds.errors import ConfigError

UNIX_PATH_MAX = 107


@dataclass(frozen=True)
class ListenAddress:
    unix_path: str | None = None
    host: str = ""
    port: int = 0

    @property
    def grpc_target(self) -> str:
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        if self.unix_path is not None:
            return True
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_listen(text: str) -> ListenAddress:
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ConfigError("listen: unix: needs a socket path, e.g. unix:/run/walrusds.sock")
        path = os.path.abspath(path)
        if len(path.encode()) > UNIX_PATH_MAX:
            raise ConfigError(f"listen: unix socket path is longer than {UNIX_PATH_MAX} bytes: "
                              f"{path}")
        return ListenAddress(unix_path=path)
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"listen: {text!r} is neither unix:/path nor host:port")
    return ListenAddress(host=host, port=int(port))


def server_credentials(sec: SecurityConfig) -> grpc.ServerCredentials | None:
    if not sec.tls_cert:
        return None
    try:
        cert = Path(sec.tls_cert).read_bytes()
        key = read_secret_file(sec.tls_key, "security.tls_key").encode()
        ca = Path(sec.tls_client_ca).read_bytes() if sec.tls_client_ca else None
    except OSError as exc:
        raise ConfigError(f"security: cannot read {exc.filename}: {exc.strerror}") from None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                       require_client_auth=ca is not None)


def check_exposure(addr: ListenAddress, config: Config) -> None:
    """Refuse to expose the API beyond this host without authentication."""
    if addr.loopback:
        return
    sec = config.security
    if not sec.tls_cert:
        raise ConfigError(f"listen {addr.grpc_target} is not a loopback address: configure "
                          "security.tls_cert and security.tls_key (and a token_file or "
                          "tls_client_ca), or listen on 127.0.0.1 or a unix socket")
    if not sec.token_file and not sec.tls_client_ca:
        raise ConfigError(f"listen {addr.grpc_target} is not a loopback address: configure "
                          "security.token_file or security.tls_client_ca so clients "
                          "authenticate")


class TokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Requires ``authorization: Bearer <token>``, compared in constant time.

    Health checks stay open so load balancers can probe without the token.
    """

    OPEN = ("/grpc.health.v1.Health/",)

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        if details.method.startswith(self.OPEN):
            return await continuation(details)
        presented = b""
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                presented = value.encode() if isinstance(value, str) else value
        handler = await continuation(details)
        if hmac.compare_digest(presented, self._expected) or handler is None:
            return handler
        return _deny_like(handler)


def _deny_like(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that refuses the call."""
    async def deny(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                            "missing or wrong token: send authorization: Bearer <token>")

    async def deny_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await deny(request, context)
        yield None  # pragma: no cover - abort raises first

    kwargs = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny_stream, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny_stream, **kwargs)
    return grpc.unary_unary_rpc_method_handler(deny, **kwargs)


def load_token(sec: SecurityConfig) -> str | None:
    if not sec.token_file:
        return None
    token = read_secret_file(sec.token_file, "security.token_file")
    if len(token) < 16:
        raise ConfigError("security.token_file holds fewer than 16 characters: use a long "
                          "random token")
    return token
