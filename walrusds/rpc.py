"""Client side of the walrusds gRPC API, for the CLI, tests and benchmarks.

``open_channel`` dials ``unix:/path`` or ``host:port`` with the service's message limits, an
optional TLS CA and an optional bearer token (sent as ``authorization: Bearer ...``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from walrusds.config import MESSAGE_OVERHEAD, MiB
from walrusds.v1 import datastore_pb2_grpc

DEFAULT_MAX_MESSAGE = 64 * MiB + MESSAGE_OVERHEAD


def channel_options(max_message: int = DEFAULT_MAX_MESSAGE) -> list[tuple[str, Any]]:
    return [("grpc.max_receive_message_length", max_message),
            ("grpc.max_send_message_length", max_message)]


def _credentials(tls_ca: str | None, token: str | None) -> grpc.ChannelCredentials | None:
    if not tls_ca:
        return None
    creds = grpc.ssl_channel_credentials(root_certificates=Path(tls_ca).read_bytes())
    if token:
        creds = grpc.composite_channel_credentials(
            creds, grpc.access_token_call_credentials(token))
    return creds


def token_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Metadata carrying the token on a channel without TLS (loopback, unix socket)."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def open_aio_channel(addr: str, *, tls_ca: str | None = None, token: str | None = None,
                     max_message: int = DEFAULT_MAX_MESSAGE) -> grpc.aio.Channel:
    creds = _credentials(tls_ca, token)
    if creds is not None:
        return grpc.aio.secure_channel(addr, creds, options=channel_options(max_message))
    return grpc.aio.insecure_channel(addr, options=channel_options(max_message))


def open_channel(addr: str, *, tls_ca: str | None = None, token: str | None = None,
                 max_message: int = DEFAULT_MAX_MESSAGE) -> grpc.Channel:
    creds = _credentials(tls_ca, token)
    if creds is not None:
        return grpc.secure_channel(addr, creds, options=channel_options(max_message))
    return grpc.insecure_channel(addr, options=channel_options(max_message))


def stub(channel: Any) -> datastore_pb2_grpc.DatastoreStub:
    return datastore_pb2_grpc.DatastoreStub(channel)
