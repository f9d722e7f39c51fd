"""No secret given in configuration — the Postgres password, the service token, the publisher
token — appears in a log line or in /metrics, at DEBUG, on the write, flush, read and fault
paths: in process (the raw log records, before any redaction) and through ``walrusds serve``
with JSON logs (what an operator's log pipeline receives)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.flush.conftest import walrus_config
from tests.observability.conftest import Scrape, scrape, scrape_until, with_metrics
from walrusds.config import Config, SecurityConfig
from walrusds.emulator.control import EmulatorControl
from walrusds.emulator.runner import RunningEmulator
from walrusds.rpc import open_aio_channel, stub, token_metadata
from walrusds.server.app import Service
from walrusds.v1 import datastore_pb2 as pb
from walrusds.verify import block_key

PG_PASSWORD = "pg-Pass-7Hq2kW"
SERVICE_TOKEN = "svc-token-4f9c1e2d8b7a6f5e"
PUBLISHER_TOKEN = "pub-token-0a1b2c3d4e5f6a7b"
SECRETS = (PG_PASSWORD, SERVICE_TOKEN, PUBLISHER_TOKEN)


def secret_file(path: Path, value: str) -> str:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {where}"


async def _batch(n: int) -> AsyncIterator[pb.BatchRequest]:
    for _ in range(n):
        value = os.urandom(700)
        yield pb.BatchRequest(put=pb.BatchPut(key=block_key(value), value=value))


async def exercise(address: str, control: EmulatorControl, scraper: Any) -> Scrape:
    """Write, flush (once through a 503), read and miss, with the token; the last scrape."""
    channel = open_aio_channel(address)
    api = stub(channel)
    auth = token_metadata(SERVICE_TOKEN)
    try:
        await control.add_fault("store", "status", status=503, count=1)
        await api.Batch(_batch(8), metadata=auth)
        got: Scrape = await scraper(
            lambda s: s.value("walrusds_flushes_total", outcome="stored") >= 1)
        assert got.value("walrusds_walrus_requests_total", operation="store",
                         outcome="unavailable") == 1
        keys = [bytes(e.key) async for r in api.Query(pb.QueryRequest(prefix=b"/"),
                                                      metadata=auth) for e in r.entries]
        assert len((await api.Get(pb.GetRequest(key=keys[0]), metadata=auth)).value) == 700
        got = await scraper(lambda s: s.value("walrusds_staged_entries") == 0)
        return got
    finally:
        await channel.close()


async def test_no_secret_in_raw_log_records_or_metrics(
        config: Config, emulator: RunningEmulator, control: EmulatorControl, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = walrus_config(config, emulator.url, idle=0.2, interval=0.1)
    cfg = with_metrics(dataclasses.replace(
        cfg,
        postgres=dataclasses.replace(cfg.postgres, dsn=f"{cfg.postgres.dsn} "
                                     f"password={PG_PASSWORD}"),
        security=SecurityConfig(token_file=secret_file(tmp_path / "token", SERVICE_TOKEN)),
        walrus=dataclasses.replace(cfg.walrus, publisher_token_file=secret_file(
            tmp_path / "pub", PUBLISHER_TOKEN))))
    svc = await Service.start(cfg)
    try:
        got = await exercise(svc.address, control,
                             lambda check: scrape_until(svc, check))
        assert_clean(got.text, "/metrics")
        assert_clean((await scrape(svc)).text, "/metrics")
    finally:
        await svc.stop(grace=0.5)
    assert len(caplog.records) > 20  # DEBUG from walrusds and its libraries was captured
    for record in caplog.records:
        assert_clean(record.getMessage(), f"a record of {record.name}")
        assert_clean(str(record.exc_info), f"an exception logged by {record.name}")


async def test_serve_with_json_logs_leaks_no_secret(
        pg_dsn: str, schema: str, emulator: RunningEmulator, control: EmulatorControl,
        tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"
    env = {
        **os.environ,
        "WALRUSDS_LOG_FORMAT": "json",
        "WALRUSDS_POSTGRES_DSN": f"{pg_dsn} password={PG_PASSWORD}",
        "WALRUSDS_POSTGRES_SCHEMA": schema,
        "WALRUSDS_LISTEN": f"unix:{sock}",
        "WALRUSDS_SECURITY_TOKEN_FILE": secret_file(tmp_path / "token", SERVICE_TOKEN),
        "WALRUSDS_WALRUS_PUBLISHERS": emulator.url,
        "WALRUSDS_WALRUS_AGGREGATORS": emulator.url,
        "WALRUSDS_WALRUS_PUBLISHER_TOKEN_FILE": secret_file(tmp_path / "pub", PUBLISHER_TOKEN),
        "WALRUSDS_PACK_TARGET_SIZE": "16384",
        "WALRUSDS_PACK_IDLE": "0.2",
        "WALRUSDS_PACK_INTERVAL": "0.1",
        "WALRUSDS_METRICS_LISTEN": "127.0.0.1:0",
        "WALRUSDS_METRICS_REFRESH_INTERVAL": "0.5",
    }
    err, out = tmp_path / "serve.err", tmp_path / "serve.out"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "walrusds", "--log-level", "DEBUG", "serve", env=env,
            stdout=stdout, stderr=stderr)
    try:
        url = await _metrics_url_from_log(proc, err)
        await exercise(f"unix:{sock}", control, lambda check: _scrape_until(url, check))
        metrics_text = (await scrape(url)).text
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    log_text, out_text = _read(err), _read(out)
    assert code == 0, log_text
    assert_clean(metrics_text, "/metrics")
    assert_clean(log_text, "the JSON log")
    assert_clean(out_text, "stdout")
    records = [json.loads(line) for line in log_text.splitlines()]
    assert any(r["logger"] == "walrusds.flusher" and "stored as blob" in r["message"]
               for r in records)
    assert any(r["logger"] == "walrusds.client.retry" and "503" in r["message"]
               for r in records)
    assert records[-1]["message"] == "walrusds stopped"


def _read(path: Path) -> str:
    return path.read_text()


async def _metrics_url_from_log(proc: asyncio.subprocess.Process, err: Path) -> str:
    for _ in range(300):
        assert proc.returncode is None, _read(err)
        for line in _read(err).splitlines():
            record = json.loads(line)  # every line is one JSON object, even while starting
            if record["message"].startswith("metrics on http://127.0.0.1:"):
                return str(record["message"].split(" ", 2)[2])
        await asyncio.sleep(0.1)
    raise AssertionError(f"serve never logged its metrics address: {_read(err)}")


async def _scrape_until(url: str, check: Any, within: float = 20.0) -> Scrape:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        got = await scrape(url)
        if check(got):
            return got
        assert loop.time() < deadline, got.text
        await asyncio.sleep(0.1)
