"""The one exception tree of walrusds.

Every error the service raises on purpose is a :class:`WalrusdsError`. Each branch names what
went wrong from the caller's point of view; ``walrusds.server.status`` maps the branches to gRPC
status codes in one place, and the CLI prints their messages. Messages are written for people:
they say what was wrong and what to do, and never carry secrets or upstream response bodies.

::

    WalrusdsError
    ├── InvalidArgument          bad key, value, query, batch, or request parameter
    ├── NotFound                 the key does not exist
    ├── ReadOnlyError            a write sent to a read-only node
    ├── ResourceExhausted        over a size or concurrency limit
    ├── Unavailable              transient trouble; a retry may succeed
    │   └── IndexUnavailable     Postgres unreachable or failing
    ├── DataLoss                 indexed bytes cannot be returned intact
    │   ├── CorruptData          bytes failed verification (digest or multihash mismatch)
    │   │   └── PackFormatError  bytes that are not a valid packfile
    │   └── BlobLost             the Walrus blob is gone (expired or unknown) while indexed
    ├── Unauthenticated          missing or wrong credentials
    ├── ConfigError              a configuration mistake found at start-up
    └── WalrusError              an answer from a Walrus publisher or aggregator
        ├── BlobNotFound         404: unknown or expired blob
        ├── WalrusUnavailable    429, 5xx, timeouts, connection failures: retryable
        │   └── (also an Unavailable)
        ├── PayloadTooLarge      413: the body is over the publisher's limit
        ├── StoreFailed          a 200 whose body reports an ``error``
        ├── WalrusRequestError   other 4xx: the request itself is wrong, not retryable
        └── WalrusProtocolError  a response that breaks the API (bad JSON, wrong length...)
"""

from __future__ import annotations


class WalrusdsError(Exception):
    """Root of every error walrusds raises on purpose."""


class InvalidArgument(WalrusdsError):
    """The request is malformed; nothing was changed."""


class NotFound(WalrusdsError):
    """The key does not exist."""


class ReadOnlyError(WalrusdsError):
    """A write was sent to a node running read-only."""


class ResourceExhausted(WalrusdsError):
    """A size or concurrency limit was exceeded."""


class Unavailable(WalrusdsError):
    """Transient trouble with a dependency; retrying the call is safe."""


class IndexUnavailable(Unavailable):
    """Postgres is unreachable or failing."""


class DataLoss(WalrusdsError):
    """Indexed bytes cannot be returned intact."""


class CorruptData(DataLoss):
    """Bytes failed verification against their digest or multihash."""


class PackFormatError(CorruptData):
    """Bytes that do not parse as a walrusds packfile (read from Walrus, they are corrupt)."""


class BlobLost(DataLoss):
    """The Walrus blob that holds indexed bytes is gone (expired or unknown)."""


class Unauthenticated(WalrusdsError):
    """Missing or wrong credentials."""


class ConfigError(WalrusdsError):
    """A configuration mistake, found at start-up."""


class WalrusError(WalrusdsError):
    """An error answer (or no usable answer) from a Walrus publisher or aggregator.

    ``status`` is the HTTP status when there was one; ``endpoint`` is the base URL that answered
    (never with credentials).
    """

    def __init__(self, message: str, *, status: int | None = None, endpoint: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.endpoint = endpoint


class BlobNotFound(WalrusError):
    """404: the aggregator does not know the blob (never stored, expired, or deleted)."""


class WalrusUnavailable(WalrusError, Unavailable):
    """429, 5xx, timeouts and connection failures: retryable, possibly on another endpoint."""


class PayloadTooLarge(WalrusError):
    """413: the publisher refuses a body of this size.

    ``size`` is the size that was refused; splitting the upload is the only remedy.
    """

    def __init__(self, message: str, *, size: int, status: int | None = 413,
                 endpoint: str = "") -> None:
        super().__init__(message, status=status, endpoint=endpoint)
        self.size = size


class StoreFailed(WalrusError):
    """The publisher answered 200 but its body reports an ``error``."""


class WalrusRequestError(WalrusError):
    """A 4xx other than 404/413/429: the request itself is wrong; retrying will not help."""


class WalrusProtocolError(WalrusError):
    """A response that does not follow the Walrus HTTP API (bad JSON, wrong length, ...)."""
