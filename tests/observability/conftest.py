"""Observability fixtures: a service whose Prometheus endpoint listens on a free loopback port,
and a scraper that reads /metrics over real HTTP and parses the text format."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from walrusds.config import Config, MetricsConfig
from walrusds.rpc import open_aio_channel, stub
from walrusds.server.app import Service


def with_metrics(config: Config, refresh: float = 0.5) -> Config:
    """``config`` with the endpoint on a free loopback port and fast index gauges."""
    return dataclasses.replace(
        config, metrics=MetricsConfig(listen="127.0.0.1:0", refresh_interval=refresh)
    ).validate()


class Scrape:
    """One scrape of /metrics: the raw text and its samples."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; a missing sample is an AssertionError naming it."""
        key = (name, frozenset(labels.items()))
        assert key in self.samples, f"no sample {name}{labels} in /metrics"
        return self.samples[key]

    def get(self, name: str, default: float = math.nan, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), default)

    def labelsets(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for (n, labels) in self.samples if n == name]


def metrics_url(service: Service) -> str:
    assert service.metrics is not None
    assert service.metrics.endpoint is not None
    url = service.metrics.endpoint.url
    assert url is not None, "the metrics endpoint is not listening"
    return url


async def scrape(service_or_url: Service | str) -> Scrape:
    url = service_or_url if isinstance(service_or_url, str) else metrics_url(service_or_url)
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


async def scrape_until(service: Service, check: Callable[[Scrape], bool],
                       within: float = 10.0) -> Scrape:
    """Scrape until ``check`` holds (gauges refreshed in the background lag a little)."""
    deadline = time.monotonic() + within
    while True:
        got = await scrape(service)
        if check(got):
            return got
        assert time.monotonic() < deadline, f"condition not met; last scrape:\n{got.text}"
        await asyncio.sleep(0.1)


async def eventually(probe: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await probe():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def msvc(config: Config) -> AsyncIterator[Service]:
    """The core service (no Walrus) with its metrics endpoint on."""
    svc = await Service.start(with_metrics(config))
    try:
        yield svc
    finally:
        await svc.stop(grace=0.5)


@pytest.fixture
async def mapi(msvc: Service) -> AsyncIterator[Any]:
    channel = open_aio_channel(msvc.address)
    try:
        yield stub(channel)
    finally:
        await channel.close()
