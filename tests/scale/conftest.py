"""Fixtures for the scale-out tests: a primary and a hot standby (one pair for the session;
a test that stops the standby starts it again), and
``walrusds serve`` processes stopped when the test ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.scale.cluster import Clusters, make_primary, make_standby
from tests.scale.serve import ServeProcess


@pytest.fixture(scope="session")
def clusters(_pg_reachable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clusters]:
    base = tmp_path_factory.mktemp("pg")
    primary = make_primary(base)
    try:
        standby = make_standby(primary, base)
    except BaseException:
        primary.stop("immediate")
        raise
    pair = Clusters(primary, standby)
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture
async def servers() -> AsyncIterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for server in reversed(started):
        await server.stop()
