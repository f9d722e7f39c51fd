"""go-datastore's dstest suite (BasicSubtests, Combinations, RunBatch*) against the service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.dstest import suite
from tests.dstest.client import Client

Subtest = Callable[[Client], Awaitable[None]]


@pytest.mark.parametrize("subtest", suite.BASIC_SUBTESTS + suite.BATCH_SUBTESTS,
                         ids=lambda f: f.__name__)
async def test_subtest(api: Any, subtest: Subtest) -> None:
    ds = Client(api)
    await subtest(ds)
    await suite.clear(ds)


async def test_combinations(api: Any) -> None:
    """All 1151 of SubtestCombinations' queries, with the same data shapes."""
    ds = Client(api)
    count = 0
    for q, length in suite.combinations():
        await suite.subtest_query(ds, q, length, batched=True)
        count += 1
    assert count == 1151
    await suite.clear(ds)
