"""The client against a real Walrus network (Testnet by default). Never runs in CI.

Run by hand, with network access::

    WALRUSDS_REALNET=1 .venv/bin/pytest -m realnet tests/client/test_realnet.py

``WALRUSDS_REALNET_PUBLISHER`` and ``WALRUSDS_REALNET_AGGREGATOR`` override the public Testnet
endpoints. Testnet tokens are free but Testnet is wiped without warning; one epoch is bought.
"""

from __future__ import annotations

import os
import secrets

import pytest

from walrusds.client import HttpBlobStore, RetryingBlobStore, RetryPolicy

pytestmark = pytest.mark.realnet

PUBLISHER = os.environ.get("WALRUSDS_REALNET_PUBLISHER",
                           "https://publisher.walrus-testnet.walrus.space")
AGGREGATOR = os.environ.get("WALRUSDS_REALNET_AGGREGATOR",
                            "https://aggregator.walrus-testnet.walrus.space")


async def test_store_then_ranged_read_on_a_real_network() -> None:
    if os.environ.get("WALRUSDS_REALNET") != "1":
        pytest.fail("set WALRUSDS_REALNET=1 to talk to a real Walrus network")
    data = secrets.token_bytes(300_000)
    store = RetryingBlobStore(HttpBlobStore([PUBLISHER], [AGGREGATOR]),
                              RetryPolicy(deadline=300, not_found_attempts=6))
    try:
        result = await store.store(data, epochs=1)
        assert len(result.blob_id) == 43
        assert result.size == len(data)
        assert result.end_epoch > (result.start_epoch or 0)
        assert await store.read_range(result.blob_id, 1000, 5000) == data[1000:6000]
        assert await store.read_blob(result.blob_id) == data
    finally:
        await store.aclose()
