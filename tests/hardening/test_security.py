"""Security of the service (reliability plan §7 and issue 7), one behaviour per test, each
listed in docs/security.md: who may connect, how tokens are compared, read-only nodes, secrets
kept out of errors, SQL identifiers, Walrus URLs and redirects.

Configuration mistakes (a public listener without TLS, a secret file others can read, an
injected schema name, an http publisher, ``sslmode=require`` against a server without SSL...)
are rows of tests/hardening/test_config_errors.py."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import inspect
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import walrusds
from tests.flush.conftest import walrus_config
from tests.hardening.conftest import (
    Certs,
    assert_readable,
    assert_serving,
    outcome,
    private_file,
    running,
    seed,
    snapshot,
    stream,
)
from walrusds.client.factory import open_blob_store
from walrusds.config import DEFAULT_LISTEN, Config, SecurityConfig, WalrusConfig
from walrusds.emulator.runner import RunningEmulator
from walrusds.errors import WalrusRequestError
from walrusds.rpc import open_aio_channel, stub, token_metadata
from walrusds.server.app import Service
from walrusds.server.listen import TokenInterceptor, parse_listen
from walrusds.v1 import datastore_pb2 as pb

TOKEN = "hardening-token-0123456789abcdef"


# -- who may connect --------------------------------------------------------------------------

def test_default_listener_is_loopback() -> None:
    assert Config().listen == DEFAULT_LISTEN
    assert parse_listen(DEFAULT_LISTEN).loopback
    assert Config().security == SecurityConfig()  # no TLS and no token needed on loopback


async def test_unix_socket_is_mode_0600(config: Config, tmp_path: Path) -> None:
    sock = tmp_path / "walrusds.sock"
    sock.write_text("a stale file from a crashed run")
    async with running(dataclasses.replace(config, listen=f"unix:{sock}")) as r:
        assert sock.stat().st_mode & 0o777 == 0o600
        await seed(r.api)
        await assert_serving(r.api)


def _tls(certs: Certs, *, client: tuple[Path, Path] | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=certs.ca.read_bytes(),
        private_key=client[1].read_bytes() if client else None,
        certificate_chain=client[0].read_bytes() if client else None)


def _local(address: str) -> str:
    """The address a client on this host dials for a server listening on ``address``."""
    return "127.0.0.1:" + address.rsplit(":", 1)[1]


@pytest.fixture
async def public_service(config: Config, certs: Certs, tmp_path: Path
                         ) -> AsyncIterator[Service]:
    """Listening on every interface, with TLS and a token."""
    token = private_file(tmp_path / "token", TOKEN + "\n")
    cfg = dataclasses.replace(config, listen="0.0.0.0:0", security=SecurityConfig(
        tls_cert=str(certs.server_cert), tls_key=str(certs.server_key), token_file=str(token)))
    svc = await Service.start(cfg)
    try:
        yield svc
    finally:
        await svc.stop(grace=0.5)


async def test_public_listener_with_tls_and_token(public_service: Service,
                                                  certs: Certs) -> None:
    address = _local(public_service.address)
    authed = open_aio_channel(address, tls_ca=str(certs.ca), token=TOKEN)
    tls = grpc.aio.secure_channel(address, _tls(certs))
    plain = grpc.aio.insecure_channel(address)
    try:
        api = stub(authed)
        before = await seed(api)
        # plaintext: the TLS handshake fails; no call reaches the service
        got = await outcome(stub(plain).Put(pb.PutRequest(key=b"/p", value=b"v"), timeout=5))
        assert got.code == grpc.StatusCode.UNAVAILABLE, got
        # TLS without the token, with a wrong one of the same or another length
        for meta in ((), token_metadata("x" * len(TOKEN)), token_metadata(TOKEN[:-1]),
                     token_metadata(TOKEN + "0"), (("authorization", TOKEN),)):
            for call in (stub(tls).Put(pb.PutRequest(key=b"/p", value=b"v"), metadata=meta),
                         stub(tls).Delete(pb.DeleteRequest(key=b"/seed/a"), metadata=meta),
                         stub(tls).Batch(stream(pb.BatchRequest(
                             delete=pb.BatchDelete(key=b"/seed/a"))), metadata=meta)):
                got = await outcome(call)
                assert got.code == grpc.StatusCode.UNAUTHENTICATED, (meta, got)
                assert_readable(got.details, "missing or wrong token")
            query = stub(tls).Query(pb.QueryRequest(), metadata=meta)
            assert [r async for r in _drain(query)] == []
            assert (await outcome(query)).code == grpc.StatusCode.UNAUTHENTICATED
        # health stays open so load balancers can probe without the token
        health = health_pb2_grpc.HealthStub(tls)
        assert (await health.Check(health_pb2.HealthCheckRequest())).status == \
            health_pb2.HealthCheckResponse.SERVING
        assert await snapshot(api) == before
        await assert_serving(api)
    finally:
        for channel in (authed, tls, plain):
            await channel.close()


async def _drain(call: Any) -> AsyncIterator[Any]:
    try:
        async for response in call:
            yield response
    except grpc.aio.AioRpcError:
        return


async def test_mutual_tls(config: Config, certs: Certs) -> None:
    """Listening on every interface with client certificates instead of a token: a client
    without a certificate, or with one from another CA, fails the handshake."""
    cfg = dataclasses.replace(config, listen="0.0.0.0:0", security=SecurityConfig(
        tls_cert=str(certs.server_cert), tls_key=str(certs.server_key),
        tls_client_ca=str(certs.ca)))
    svc = await Service.start(cfg)
    address = _local(svc.address)
    good = grpc.aio.secure_channel(address, _tls(certs, client=(certs.client_cert,
                                                                  certs.client_key)))
    refused = [grpc.aio.secure_channel(address, _tls(certs)),
               grpc.aio.secure_channel(address, _tls(certs, client=(certs.other_client_cert,
                                                                      certs.other_client_key))),
               grpc.aio.insecure_channel(address)]
    try:
        before = await seed(stub(good))
        for channel in refused:
            got = await outcome(stub(channel).Put(pb.PutRequest(key=b"/m", value=b"v"),
                                                  timeout=5))
            assert got.code == grpc.StatusCode.UNAVAILABLE, got
        assert await snapshot(stub(good)) == before
        await assert_serving(stub(good))
    finally:
        for channel in (good, *refused):
            await channel.close()
        await svc.stop(grace=0.5)


def test_token_is_compared_in_constant_time() -> None:
    """The token check goes through hmac.compare_digest, and the expected token never appears
    in an ordinary comparison (which returns at the first differing byte)."""
    source = textwrap.dedent(inspect.getsource(TokenInterceptor))
    tree = ast.parse(source)
    compared = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute) and node.func.attr == "compare_digest"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "hmac"]
    assert len(compared) == 1
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            names = {ast.unparse(n) for n in [node.left, *node.comparators]}
            assert not names & {"self._expected", "presented", "token"}, ast.unparse(node)


# -- read-only nodes --------------------------------------------------------------------------

async def test_read_only_node_refuses_every_write(config: Config) -> None:
    async with running(config) as writer:
        before = await seed(writer.api)
    async with running(dataclasses.replace(config, read_only=True)) as r:
        api = r.api
        assert (await api.Info(pb.InfoRequest())).read_only
        for call in (api.Put(pb.PutRequest(key=b"/w", value=b"v")),
                     api.Put(pb.PutRequest(key=b"/seed/a", value=b"alpha")),
                     api.Delete(pb.DeleteRequest(key=b"/seed/a")),
                     api.Batch(stream(pb.BatchRequest(delete=pb.BatchDelete(key=b"/seed/a")))),
                     api.Batch(stream())):
            got = await outcome(call)
            assert got.code == grpc.StatusCode.FAILED_PRECONDITION, got
            assert_readable(got.details, "read-only", "upload node")
        # every read works
        assert (await api.Get(pb.GetRequest(key=b"/seed/a"))).value == b"alpha"
        assert (await api.Has(pb.HasRequest(key=b"/seed/b"))).exists
        assert (await api.GetSize(pb.GetSizeRequest(key=b"/seed/a"))).size == 5
        found = await api.Lookup(pb.LookupRequest(mode=pb.LOOKUP_MODE_GET, keys=[b"/seed/a"]))
        assert found.results[0].value == b"alpha"
        await api.Sync(pb.SyncRequest(prefix=b"/"))
        assert await snapshot(api) == before


# -- secrets ----------------------------------------------------------------------------------

API_KEY = "path-api-key-5c1d8e7f"


async def test_no_secret_in_grpc_errors(config: Config, emulator: RunningEmulator,
                                        sql: Any, tmp_path: Path) -> None:
    """A read that fails at Walrus names the endpoint without its path (where hosted
    aggregators put API keys) and carries neither the service token nor the DSN password.
    (Logs and /metrics: tests/observability/test_secrets.py.)"""
    packing = walrus_config(config, emulator.url, idle=0.2, interval=0.1)
    async with running(packing) as r:
        await r.api.Put(pb.PutRequest(key=b"/packed", value=b"on walrus"))
        for _ in range(200):
            if sql("SELECT count(*) FROM {s}.entries WHERE pack_id IS NOT NULL "
                   "AND value IS NULL")[0][0] == 1:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the entry was never packed")
    token = private_file(tmp_path / "token", TOKEN)
    dead = f"http://127.0.0.1:9/{API_KEY}"  # discard port: nothing answers
    broken = dataclasses.replace(
        config, postgres=dataclasses.replace(config.postgres,
                                             dsn=f"{config.postgres.dsn} password=pg-Secret-9"),
        security=SecurityConfig(token_file=str(token)),
        walrus=WalrusConfig(aggregators=(dead,), deadline=1.0, connect_timeout=0.5))
    async with running(broken) as r:
        got = await outcome(r.api.Get(pb.GetRequest(key=b"/packed"),
                                      metadata=token_metadata(TOKEN)))
        assert got.code == grpc.StatusCode.UNAVAILABLE, got
        assert_readable(got.details, "Walrus")
        for secret in (API_KEY, TOKEN, "pg-Secret-9"):
            assert secret not in got.details


# -- SQL identifiers --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["select", "user", "order_"])
async def test_schema_names_are_composed_as_identifiers(config: Config, pg_dsn: str,
                                                        name: str) -> None:
    """SQL keywords are valid schema names: they only work if every statement quotes the name
    as an identifier."""
    cfg = dataclasses.replace(config, postgres=dataclasses.replace(config.postgres,
                                                                   schema=name))
    try:
        async with running(cfg) as r:
            before = await seed(r.api)
            await assert_serving(r.api)
            assert await snapshot(r.api) == before
        with psycopg.connect(pg_dsn) as conn:
            rows = conn.execute("SELECT count(*) FROM information_schema.tables "
                                "WHERE table_schema = %s AND table_name = 'entries'",
                                (name,)).fetchone()
            assert rows == (1,)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                psycopg.sql.Identifier(name)))


_SQL_CALLS = {"execute", "executemany", "stream", "copy"}
# Files that may format SQL text: the local development cluster creates its fixed database.
_ALLOWED = {"localpg.py"}


def test_no_sql_is_built_by_string_formatting() -> None:
    """Every statement walrusds runs is a constant or composed with psycopg.sql (names as
    sql.Identifier): no f-string, %-formatting or str.format reaches execute()."""
    root = Path(walrusds.__file__).parent
    offenders = []
    statements = 0
    for path in sorted(root.rglob("*.py")):
        if path.name in _ALLOWED or "v1" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _SQL_CALLS and node.args):
                continue
            first = node.args[0]
            statements += 1
            formatted = (isinstance(first, ast.JoinedStr)
                         or (isinstance(first, ast.BinOp) and isinstance(first.op, ast.Mod))
                         or (isinstance(first, ast.Call) and isinstance(first.func, ast.Attribute)
                             and first.func.attr == "format"
                             and isinstance(first.func.value, ast.Constant)))
            if formatted:
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []
    assert statements > 50  # the scan saw the index, renewal and audit statements


# -- Walrus endpoints -------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["https://aggregator.example.com", "https://[2001:db8::1]:8443",
                                 "http://127.0.0.1:31415", "http://[::1]:31415",
                                 "http://localhost:31415/v1-prefix"])
def test_https_or_loopback_endpoints_are_accepted(url: str) -> None:
    cfg = Config(walrus=WalrusConfig(publishers=(url,), aggregators=(url,))).validate()
    assert cfg.walrus.publishers == (url,)


class _Redirector:
    """A loopback HTTP server that answers every request with a 302 to ``target``."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self, location: str) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head.split(b"\r\n", 1)[0])
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: " + location.encode()
                         + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_redirects_are_not_followed() -> None:
    """A publisher or aggregator that answers 302 gets no second request sent where it
    points: the call fails at once (not retried), saying why."""
    target, redirector = _Redirector(), _Redirector()
    target_url = await target.start("http://127.0.0.1:9/")
    url = await redirector.start(target_url + "/v1/blobs")
    store = open_blob_store(WalrusConfig(publishers=(url,), aggregators=(url,), deadline=30.0))
    assert store is not None
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for call in (store.store(b"data", epochs=1),
                     store.read_range("A" * 43, 0, 10),
                     store.read_blob("B" * 43)):
            with pytest.raises(WalrusRequestError) as err:
                await call
            assert err.value.status == 302
            assert "redirect" in str(err.value) and "does not follow" in str(err.value)
        assert loop.time() - started < 10  # no retries with backoff
        assert len(redirector.requests) == 3
        assert target.requests == []
    finally:
        await store.aclose()
        await target.stop()
        await redirector.stop()
