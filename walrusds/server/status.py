"""The one place where walrusds errors become gRPC status codes.

Anything that is not a :class:`WalrusdsError` is a bug: it is logged with its traceback here and
the caller gets INTERNAL with a short message, never a traceback and never UNKNOWN.
"""

from __future__ import annotations

import logging

import grpc

from walrusds import errors as e

log = logging.getLogger(__name__)

# Order matters: the first matching class wins (subclasses before their bases).
_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (e.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (e.NotFound, grpc.StatusCode.NOT_FOUND),
    (e.ReadOnlyError, grpc.StatusCode.FAILED_PRECONDITION),
    (e.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (e.DataLoss, grpc.StatusCode.DATA_LOSS),
    (e.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (e.Unavailable, grpc.StatusCode.UNAVAILABLE),
    # A Walrus answer that reached a handler without being classified by the read path.
    (e.BlobNotFound, grpc.StatusCode.DATA_LOSS),
    (e.PayloadTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (e.WalrusError, grpc.StatusCode.UNAVAILABLE),
    (e.ConfigError, grpc.StatusCode.FAILED_PRECONDITION),
)


def code_for(exc: BaseException) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL


def describe(exc: BaseException, method: str) -> tuple[grpc.StatusCode, str]:
    """The status code and the message a client sees for ``exc`` raised by ``method``."""
    code = code_for(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.error("%s failed with an unexpected error", method, exc_info=exc)
        return code, f"internal error in {method} ({type(exc).__name__}); see the server log"
    if code in (grpc.StatusCode.DATA_LOSS, grpc.StatusCode.UNAVAILABLE):
        log.warning("%s: %s", method, exc)
    return code, str(exc) or type(exc).__name__
