"""Response bodies exactly as Walrus sends them: JSON ``Status`` errors, plain-text framework
errors, and the camelCase store results (notes §1, §2.2, §2.4, §4.1).

Pure functions returning ``(status, content_type, body bytes)`` or JSON-ready dicts; the HTTP
layer only writes them out.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

__all__ = [
    "DOMAIN",
    "ErrorBody",
    "already_certified_event",
    "already_certified_object",
    "body_too_large",
    "fault_body",
    "invalid_byte_range",
    "json_body",
    "newly_created",
    "plain",
    "status_error",
    "store_error",
    "too_many_requests",
]

DOMAIN = "daemon.walrus.space"

#: ``(HTTP status, content type, body)``.
ErrorBody = tuple[int, str, bytes]

_PLAIN = "text/plain; charset=utf-8"
_JSON = "application/json"

# reason -> (HTTP code, AIP-193 status, message)
_REASONS: dict[str, tuple[int, str, str]] = {
    "BLOB_NOT_FOUND": (404, "NOT_FOUND", "the requested blob ID does not exist on Walrus, "
                       "ensure that it was entered correctly"),
    "BLOB_UNAVAILABLE": (503, "UNAVAILABLE", "the requested blob is currently unavailable; "
                         "not enough slivers could be retrieved, please try again later"),
    "INSUFFICIENT_CONFIRMATIONS": (504, "DEADLINE_EXCEEDED", "the service timed-out while "
                                   "waiting for confirmations, please try again"),
    "INVALID_BLOB_PERSISTENCE": (400, "INVALID_ARGUMENT", "the blob cannot be defined as both "
                                 "deletable and permanent"),
    "INVALID_CONSISTENCY_CHECK": (400, "INVALID_ARGUMENT", "the strict and skip consistency "
                                  "checks cannot both be requested"),
    "FORBIDDEN_BLOB": (451, "UNAVAILABLE_FOR_LEGAL_REASONS", "the requested blob is blocked"),
    "BLOB_TOO_LARGE": (403, "SIZE_EXCEEDED", "the requested blob is larger than the maximum "
                       "blob size this aggregator serves"),
}


def plain(status: int, text: str) -> ErrorBody:
    """A plain-text body, as axum's extractors and the load-shedding layer send."""
    return status, _PLAIN, text.encode()


def json_body(status: int, value: Any) -> ErrorBody:
    return status, _JSON, json.dumps(value, separators=(",", ":")).encode()


def status_error(reason: str, message: str | None = None, *, code: int | None = None,
                 status: str | None = None) -> ErrorBody:
    """A JSON ``Status`` error (AIP-193) for ``reason``; ``INTERNAL_ERROR`` hides details."""
    if reason == "INTERNAL_ERROR":
        return json_body(500, {"error": {
            "status": "INTERNAL", "code": 500,
            "message": "an internal error has occurred, please report it",
            "details": [
                {"@type": "ErrorInfo", "reason": "INTERNAL_ERROR", "domain": "global",
                 "metadata": {}},
                {"@type": "DebugInfo", "stackEntries": [],
                 "detail": f"TraceID: {secrets.token_hex(16)}"},
            ],
        }})
    default_code, default_status, default_message = _REASONS.get(
        reason, (code or 400, status or "INVALID_ARGUMENT", reason.lower().replace("_", " ")))
    http = code if code is not None else default_code
    return json_body(http, {"error": {
        "status": status or default_status,
        "code": http,
        "message": message or default_message,
        "details": [{"@type": "ErrorInfo", "reason": reason, "domain": DOMAIN, "metadata": {}}],
    }})


def invalid_byte_range(message: str, *, code: int) -> ErrorBody:
    """``INVALID_BYTE_RANGE``: 416 ``RANGE_NOT_SATISFIABLE`` for the Range header, 400
    ``INVALID_ARGUMENT`` for the ``/byte-range`` endpoint (notes §4.1, §4.2)."""
    status = "RANGE_NOT_SATISFIABLE" if code == 416 else "INVALID_ARGUMENT"
    return status_error("INVALID_BYTE_RANGE", message, code=code, status=status)


def too_many_requests(service: str) -> ErrorBody:
    return plain(429, f"the {service} is receiving too many requests; please try again later")


def body_too_large() -> ErrorBody:
    return plain(413, "Failed to buffer the request body: length limit exceeded")


def fault_body(route: str, status: int) -> ErrorBody:
    """The body a real service sends with ``status`` on ``route`` (``store`` is the publisher,
    any other route the aggregator)."""
    service = "publisher" if route == "store" else "aggregator"
    if status == 429:
        return too_many_requests(service)
    if status == 413:
        return body_too_large()
    if status == 500:
        return status_error("INTERNAL_ERROR")
    if status == 451:
        return status_error("FORBIDDEN_BLOB")
    if route == "store":
        if status == 504:
            return status_error("INSUFFICIENT_CONFIRMATIONS")
        if status == 401:
            return status_error("INVALID_SIGNATURE", "the JWT signature is invalid", code=401,
                                status="UNAUTHENTICATED")
    else:
        if status == 503:
            return status_error("BLOB_UNAVAILABLE")
        if status == 404:
            return status_error("BLOB_NOT_FOUND")
        if status == 403:
            return status_error("BLOB_TOO_LARGE")
        if status == 416:
            return invalid_byte_range("byte range out of bounds", code=416)
    # Anything else comes from a proxy in front of the service, not from Walrus itself.
    return plain(status, f"{status} emulated upstream failure")


def newly_created(*, blob_id: str, size: int, object_id: str, storage_id: str,
                  registered_epoch: int, start_epoch: int, end_epoch: int, deletable: bool,
                  encoded_length: int, cost: int, operation: dict[str, Any],
                  certified_epoch: int | None, shared_object_id: str | None) -> dict[str, Any]:
    """The ``newlyCreated`` variant (camelCase only; ``sharedBlobObject`` only when shared)."""
    created: dict[str, Any] = {
        "blobObject": {
            "id": object_id,
            "registeredEpoch": registered_epoch,
            "blobId": blob_id,
            "size": size,
            "encodingType": "RS2",
            "certifiedEpoch": certified_epoch,
            "storage": {"id": storage_id, "startEpoch": start_epoch, "endEpoch": end_epoch,
                        "storageSize": encoded_length},
            "deletable": deletable,
        },
        "resourceOperation": operation,
        "cost": cost,
    }
    if shared_object_id is not None:
        created["sharedBlobObject"] = shared_object_id
    return {"newlyCreated": created}


def already_certified_event(blob_id: str, end_epoch: int, tx_digest: str) -> dict[str, Any]:
    """``alreadyCertified``, event form: a permanent certified blob exists (notes §2.2 b)."""
    return {"alreadyCertified": {"blobId": blob_id,
                                 "event": {"txDigest": tx_digest, "eventSeq": "0"},
                                 "endEpoch": end_epoch}}


def already_certified_object(blob_id: str, end_epoch: int, object_id: str) -> dict[str, Any]:
    """``alreadyCertified``, object form (``reuse_resources=true`` found an owned object)."""
    return {"alreadyCertified": {"blobId": blob_id, "object": object_id, "endEpoch": end_epoch}}


def store_error(blob_id: str | None, phase: str, message: str) -> dict[str, Any]:
    """The ``error`` variant a publisher may return with HTTP 200 (notes §2.2 c)."""
    return {"error": {"blobId": blob_id, "failurePhase": phase, "errorMsg": message}}
