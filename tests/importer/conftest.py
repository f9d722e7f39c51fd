"""Fixtures of the import tests: a stock Kubo repo on flatfs (made once by the real
``ipfs-walrus``, copied for each test) and a ``walrusds serve`` process on a fresh schema."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.importer.support import DATASET, Stock, make_stock_repo
from tests.kubo.ipfs import Kubo
from tests.kubo.support import serve


@pytest.fixture(scope="session")
def stock(tmp_path_factory: pytest.TempPathFactory) -> Stock:
    """One stock Kubo repo with content, made once; tests work on copies."""
    return make_stock_repo(tmp_path_factory.mktemp("stock"))


@pytest.fixture
def kubo_repo(stock: Stock, tmp_path: Path) -> Kubo:
    """A private copy of the stock repo (a copy of a stopped repo is a complete repo)."""
    repo = tmp_path / "ipfs"
    shutil.copytree(stock.repo, repo, symlinks=True)
    return Kubo(repo)


@pytest.fixture
def service(_pg_reachable: None, pg_dsn: str, schema: str, tmp_path: Path) -> Iterator[str]:
    """The address of a ``walrusds serve`` on this test's schema (dataset ``import-test``)."""
    os.chmod(tmp_path, 0o711)
    proc, addr = serve(tmp_path, "walrusds", dsn=pg_dsn, schema=schema, dataset=DATASET)
    yield addr
    assert proc.stop() == 0, proc.log.read_text()


@pytest.fixture
def read_only_service(pg_dsn: str, schema: str, service: str,
                      tmp_path: Path) -> Iterator[str]:
    """A read-only ``walrusds serve`` on the same dataset (a retrieval node's service)."""
    proc, addr = serve(tmp_path, "reader", dsn=pg_dsn, schema=schema, read_only=True,
                       dataset=DATASET)
    yield addr
    assert proc.stop() == 0, proc.log.read_text()
