"""The /metrics endpoint itself: configuration, GET /metrics only, a busy port, and the health
gauge following Postgres reachability through a cuttable TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.observability.conftest import eventually, metrics_url, scrape, scrape_until
from walrusds.config import Config, MetricsConfig, load_config
from walrusds.errors import ConfigError
from walrusds.metrics import endpoint as endpoint_mod
from walrusds.metrics.address import MetricsAddress, parse_metrics_listen
from walrusds.server import app as app_mod
from walrusds.server.app import Service


def test_metrics_listen_defaults_and_environment() -> None:
    assert load_config(None, env={}).metrics.listen == "127.0.0.1:9464"
    cfg = load_config(None, env={"WALRUSDS_METRICS_LISTEN": "",
                                 "WALRUSDS_METRICS_REFRESH_INTERVAL": "2.5"})
    assert cfg.metrics == MetricsConfig(listen="", refresh_interval=2.5)
    assert parse_metrics_listen("") is None
    assert parse_metrics_listen("[::1]:9464") == MetricsAddress("::1", 9464)
    assert parse_metrics_listen("[::1]:9464").loopback  # type: ignore[union-attr]
    assert not MetricsAddress("10.0.0.5", 9464).loopback
    assert str(MetricsAddress("::1", 1)) == "[::1]:1"


@pytest.mark.parametrize(("env", "message"), [
    ({"WALRUSDS_METRICS_LISTEN": "9464"}, "metrics.listen '9464' is not host:port"),
    ({"WALRUSDS_METRICS_LISTEN": "::1:9464"}, "is not host:port"),
    ({"WALRUSDS_METRICS_LISTEN": "127.0.0.1:99999"}, "is not host:port"),
    ({"WALRUSDS_METRICS_LISTEN": "unix:/tmp/m.sock"}, "is not host:port"),
    ({"WALRUSDS_METRICS_REFRESH_INTERVAL": "0"}, "metrics.refresh_interval must be between"),
    ({"WALRUSDS_METRICS_REFRESH_INTERVAL": "soon"}, "metrics.refresh_interval: expected float"),
])
def test_metrics_config_mistakes_name_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, env=env)


async def test_only_get_metrics_is_served(msvc: Service) -> None:
    url = metrics_url(msvc)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", url)
    async with httpx.AsyncClient() as client:
        assert (await client.post(url, content=b"x")).status_code == 405
        assert (await client.head(url)).status_code == 405
        assert (await client.get(url.replace("/metrics", "/"))).status_code == 404
        assert (await client.get(url.replace("/metrics", "/debug"))).status_code == 404
        ok = await client.get(url)
    assert ok.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE walrusds_rpc_requests_total counter" in ok.text
    assert all(line.startswith(("#", "walrusds_")) for line in ok.text.splitlines() if line)


async def test_an_empty_listen_turns_the_endpoint_off(config: Config) -> None:
    cfg = dataclasses.replace(config, metrics=MetricsConfig(listen=""))
    svc = await Service.start(cfg)
    try:
        assert svc.metrics is not None
        assert svc.metrics.endpoint is None
    finally:
        await svc.stop(grace=0.5)


async def test_a_busy_port_does_not_stop_the_service_and_is_retried(
        config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(endpoint_mod, "RETRY_SECONDS", 0.1)
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    cfg = dataclasses.replace(config, metrics=MetricsConfig(listen=f"127.0.0.1:{port}"))
    svc = await Service.start(cfg)
    assert svc.metrics is not None
    endpoint = svc.metrics.endpoint
    assert endpoint is not None

    def url() -> str | None:  # read afresh each time (the endpoint binds in the background)
        return endpoint.url

    try:
        assert url() is None
        assert any("metrics endpoint cannot listen on 127.0.0.1" in r.getMessage()
                   for r in caplog.records if r.levelno == logging.WARNING)
        await asyncio.sleep(0.3)
        assert url() is None  # still taken: retried quietly
        holder.close()

        async def bound() -> bool:
            return url() is not None

        await eventually(bound)
        assert url() == f"http://127.0.0.1:{port}/metrics"
        got = await scrape(f"http://127.0.0.1:{port}/metrics")
        assert got.value("walrusds_health_serving") == 1
    finally:
        holder.close()
        await svc.stop(grace=0.5)
    assert url() is None  # stopped: the port is free again


class PgProxy:
    """A TCP proxy in front of Postgres that can drop every connection and refuse new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


@pytest.fixture
async def proxy(pg_dsn: str) -> AsyncIterator[PgProxy]:
    fields = dict(part.split("=", 1) for part in pg_dsn.split())
    p = PgProxy((fields["host"], int(fields["port"])))
    await p.start()
    try:
        yield p
    finally:
        with contextlib.suppress(Exception):
            await p.cut()


async def test_health_gauge_follows_postgres(
        config: Config, proxy: PgProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_mod, "HEALTH_INTERVAL", 0.1)
    dsn = re.sub(r"port=\d+", f"port={proxy.port}", config.postgres.dsn)
    cfg = dataclasses.replace(
        config, metrics=MetricsConfig(listen="127.0.0.1:0", refresh_interval=0.5),
        postgres=dataclasses.replace(config.postgres, dsn=dsn, pool_timeout=0.5,
                                     connect_timeout=1.0))
    svc = await Service.start(cfg)
    try:
        got = await scrape(svc)
        assert got.value("walrusds_health_serving") == 1
        await proxy.cut()
        got = await scrape_until(svc, lambda s: s.value("walrusds_health_serving") == 0)
        await proxy.start()  # the same port again
        got = await scrape_until(svc, lambda s: s.value("walrusds_health_serving") == 1,
                                 within=20)
        assert got.value("walrusds_postgres_pool_connections_lost_total") + got.value(
            "walrusds_postgres_pool_request_errors_total") >= 1
    finally:
        await svc.stop(grace=0.5)
