"""The Walrus client: what walrusds needs from Walrus, over its HTTP API.

- :mod:`.protocol` — the small :class:`BlobStore` protocol the flusher, the reader and the
  renewal worker use (store with epochs, ranged read, whole read);
- :mod:`.http` — :class:`HttpBlobStore`, an ``httpx`` client for any number of publishers and
  aggregators, with failover and demotion of failing endpoints;
- :mod:`.retry` — :class:`RetryingBlobStore`, bounded exponential backoff with jitter and an
  overall deadline (tenacity), around any BlobStore;
- :mod:`.cache` — a byte-bounded LRU of whole blobs, for aggregators that ignore ``Range``.

:func:`open_blob_store` builds the usual stack from the ``[walrus]`` configuration. The client
speaks the real Walrus publisher/aggregator API (docs/walrus.md), so the same code runs against
the local emulator and a Walrus Testnet or Mainnet endpoint.
"""

from walrusds.client.factory import open_blob_store
from walrusds.client.http import HttpBlobStore
from walrusds.client.protocol import BlobStore, StoreResult
from walrusds.client.retry import RetryingBlobStore, RetryPolicy

__all__ = ["BlobStore", "HttpBlobStore", "RetryPolicy", "RetryingBlobStore", "StoreResult",
           "open_blob_store"]
