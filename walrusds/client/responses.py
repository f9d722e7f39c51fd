"""Turning publisher and aggregator answers into results or errors (docs/walrus.md).

Status classes, as the Walrus HTTP API defines them:

====================  ===========================================================
404                   :class:`BlobNotFound` — unknown, expired or deleted; terminal
413                   :class:`PayloadTooLarge` — over the publisher's body limit
429, 500, 502-504     :class:`WalrusUnavailable` — overload or transient; retry/failover
other 4xx (400, 451)  :class:`WalrusRequestError` — retrying the same request will not help
200 with ``error``    :class:`StoreFailed` — the publisher's pipeline failed for this blob
====================  ===========================================================

Error bodies are JSON (``{"error": {"status", "code", "message", "details": [{"reason"}]}}``)
or plain text; only the machine-readable reason is kept in messages, never the body itself.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from walrusds.client.protocol import StoreResult
from walrusds.costs import encoded_length
from walrusds.errors import (
    BlobNotFound,
    PayloadTooLarge,
    StoreFailed,
    WalrusError,
    WalrusProtocolError,
    WalrusRequestError,
    WalrusUnavailable,
)

__all__ = ["BLOB_ID_RE", "error_for", "parse_store_result"]

BLOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def _reason(response: httpx.Response) -> str:
    """The ``reason`` of a JSON error body, or the HTTP reason phrase."""
    try:
        body = response.json()
        details = body["error"].get("details") or []
        for detail in details:
            if isinstance(detail, dict) and isinstance(detail.get("reason"), str):
                return str(detail["reason"])[:80]
        status = body["error"].get("status")
        if isinstance(status, str):
            return status[:80]
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return response.reason_phrase or "no reason given"


def error_for(response: httpx.Response, endpoint: str, *, what: str,
              size: int | None = None) -> WalrusError:
    """The exception for a non-success answer (the response body must have been read)."""
    status = response.status_code
    reason = _reason(response)
    message = f"{what}: {endpoint} answered {status} ({reason})"
    if status == 404:
        return BlobNotFound(message, status=status, endpoint=endpoint)
    if status == 413:
        return PayloadTooLarge(message, size=size or 0, status=status, endpoint=endpoint)
    if status == 429 or status >= 500:
        return WalrusUnavailable(message, status=status, endpoint=endpoint)
    if 400 <= status < 500:
        return WalrusRequestError(message, status=status, endpoint=endpoint)
    if 300 <= status < 400:
        # Redirects are never followed (a redirect could point anywhere, credentials and all);
        # retrying will not change the answer: the configured URL is wrong.
        return WalrusRequestError(f"{what}: {endpoint} answered a redirect ({status}), which "
                                  "walrusds does not follow: configure the URL it points to",
                                  status=status, endpoint=endpoint)
    return WalrusProtocolError(f"{what}: {endpoint} answered an unexpected {status}",
                               status=status, endpoint=endpoint)


def _int(obj: dict[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where}.{key} is not an integer")
    return value


def _dict(obj: Any, key: str, where: str) -> dict[str, Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, dict):
        raise ValueError(f"{where}.{key} is missing")
    return value


def parse_store_result(body: bytes, size: int, endpoint: str) -> StoreResult:
    """Parse a 200 answer to ``PUT /v1/blobs`` for a body of ``size`` bytes."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise WalrusProtocolError(f"store: {endpoint} answered 200 with a body that is not "
                                  "JSON", status=200, endpoint=endpoint) from None
    if not isinstance(doc, dict) or len(doc) != 1:
        raise WalrusProtocolError(f"store: {endpoint} answered 200 with an unknown body shape",
                                  status=200, endpoint=endpoint)
    try:
        return _parse_variant(doc, size)
    except StoreFailed as exc:
        exc.endpoint = endpoint
        raise
    except ValueError as exc:
        raise WalrusProtocolError(f"store: {endpoint} answered 200 but {exc}", status=200,
                                  endpoint=endpoint) from None


def _parse_variant(doc: dict[str, Any], size: int) -> StoreResult:
    if "error" in doc:
        err = doc["error"] if isinstance(doc["error"], dict) else {}
        phase = str(err.get("failurePhase") or "unknown phase")[:80]
        msg = str(err.get("errorMsg") or "no message")[:200]
        raise StoreFailed(f"store failed at the publisher ({phase}): {msg}", status=200)
    if "newlyCreated" in doc:
        created = _dict(doc, "newlyCreated", "body")
        blob = _dict(created, "blobObject", "newlyCreated")
        storage = _dict(blob, "storage", "blobObject")
        blob_id = _blob_id(blob.get("blobId"))
        if _int(blob, "size", "blobObject") != size:
            raise ValueError(f"blobObject.size is {blob['size']}, not the {size} bytes sent")
        cost = created.get("cost")
        object_id = blob.get("id")
        return StoreResult(
            blob_id=blob_id, size=size,
            encoded_length=_int(storage, "storageSize", "storage"),
            start_epoch=_int(storage, "startEpoch", "storage"),
            end_epoch=_int(storage, "endEpoch", "storage"),
            cost=cost if isinstance(cost, int) and not isinstance(cost, bool) else None,
            object_id=object_id if isinstance(object_id, str) else None,
            already_certified=False)
    if "alreadyCertified" in doc:
        certified = _dict(doc, "alreadyCertified", "body")
        object_id = certified.get("object")
        return StoreResult(
            blob_id=_blob_id(certified.get("blobId")), size=size,
            encoded_length=encoded_length(size), start_epoch=None,
            end_epoch=_int(certified, "endEpoch", "alreadyCertified"), cost=None,
            object_id=object_id if isinstance(object_id, str) else None,
            already_certified=True)
    raise ValueError(f"the body's variant {next(iter(doc))!r} is unknown")


def _blob_id(value: Any) -> str:
    if not isinstance(value, str) or not BLOB_ID_RE.match(value):
        raise ValueError("the blob ID is not 43 URL-safe base64 characters")
    return value
