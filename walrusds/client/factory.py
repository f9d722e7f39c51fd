"""Build the BlobStore a node uses from its ``[walrus]`` configuration."""

from __future__ import annotations

from walrusds.client.http import HttpBlobStore, Timeouts
from walrusds.client.retry import RetryingBlobStore, RetryPolicy
from walrusds.config import WalrusConfig, read_secret_file

__all__ = ["open_blob_store"]


def open_blob_store(config: WalrusConfig) -> RetryingBlobStore | None:
    """The retrying HTTP client for the configured endpoints; None when none is configured."""
    if not config.publishers and not config.aggregators:
        return None
    token = (read_secret_file(config.publisher_token_file, "walrus.publisher_token_file")
             if config.publisher_token_file else None)
    http = HttpBlobStore(
        config.publishers, config.aggregators, token=token,
        timeouts=Timeouts(connect=config.connect_timeout, read=config.read_timeout,
                          store=config.store_timeout),
        cache_bytes=config.cache_bytes)
    return RetryingBlobStore(http, RetryPolicy(deadline=config.deadline))
