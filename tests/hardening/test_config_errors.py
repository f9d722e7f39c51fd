"""Every configuration mistake stops start-up with one clear line (docs/security.md lists
each row with its message).

Each row is a TOML file (and sometimes environment or files beside it) given to
``walrusds serve --config FILE``, run in process through the command's own ``main``: exit
status 1, exactly one line ``walrusds serve: <message>`` on stderr naming the mistake, no
traceback, no secret, nothing listening. A representative subset also runs as real
``walrusds serve`` processes, in parallel. ``test_every_config_error_is_documented`` keeps
docs/security.md complete: every ``ConfigError`` the start-up path can raise must appear there
with its wording."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

import walrusds
from tests.hardening.config_mistakes import (
    MISTAKES,
    SECRETS,
    SUBPROCESS_ROWS,
    TOKEN,
)
from tests.hardening.conftest import Certs, private_file
from walrusds.cli import cmd_serve
from walrusds.cli.main import main
from walrusds.index.migrate import migrate

DOC = Path(__file__).parents[2] / "docs" / "security.md"

@dataclasses.dataclass
class Place:
    """Where a row runs: its directory, the substitutions for its strings, and its schema."""

    tmp: Path
    subs: dict[str, str]
    schema: str


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture
def place(tmp_path: Path, pg_dsn: str, schema: str, certs: Certs, busy_port: int) -> Place:
    private_file(tmp_path / "shared-token", TOKEN, 0o644)
    private_file(tmp_path / "short-token", "short")
    private_file(tmp_path / "shared.key", certs.server_key.read_text(), 0o644)
    pgport = psycopg.conninfo.conninfo_to_dict(pg_dsn)["port"]
    subs = {"tmp": str(tmp_path), "dsn": pg_dsn, "schema": schema, "busy": str(busy_port),
            "cert": str(certs.server_cert), "key": str(certs.server_key), "ca": str(certs.ca),
            "pgport": str(pgport)}
    return Place(tmp_path, subs, schema)


def _fill(value: Any, subs: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, text in subs.items():
            value = value.replace("{" + name + "}", text)
        return value
    if isinstance(value, list):
        return [_fill(v, subs) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, subs) for k, v in value.items()}
    return value


def _toml(settings: dict[str, Any]) -> str:
    """TOML for flat settings and one level of sections (JSON strings are TOML strings)."""
    lines = [f"{k} = {json.dumps(v)}" for k, v in settings.items() if not isinstance(v, dict)]
    for section, values in settings.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {json.dumps(v)}" for k, v in values.items())
    return "\n".join(lines) + "\n"


def _prepare(how: str | None, dsn: str, schema: str) -> None:
    """Leave the schema as a row needs it: holding another dataset, migrated by a newer
    walrusds, or one migration behind."""
    if how is None:
        return

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await migrate(conn, schema, "theirs" if how == "theirs" else "default")
            table = psycopg.sql.SQL("{}.schema_migrations").format(psycopg.sql.Identifier(schema))
            if how == "newer":
                await conn.execute(psycopg.sql.SQL("INSERT INTO {} (version, name) "
                                                   "VALUES (999, 'future')").format(table))
            elif how == "older":
                await conn.execute(psycopg.sql.SQL("DELETE FROM {} WHERE version = "
                                                   "(SELECT max(version) FROM {})")
                                   .format(table, table))

    asyncio.run(run())


def write_config(row: str, place: Place) -> tuple[str, dict[str, str], str]:
    """The row's config file (path for --config), its environment, and the expected message."""
    m = MISTAKES[row]
    _prepare(m.schema, place.subs["dsn"], place.schema)
    base: dict[str, Any] = {
        "listen": "unix:{tmp}/s.sock",
        "postgres": {"dsn": "{dsn}", "schema": "{schema}", "pool_min": 1, "pool_max": 2,
                     "connect_timeout": 1.0},
        "metrics": {"listen": ""},
    }
    settings = dict(base)
    for key, value in m.settings.items():
        if isinstance(value, dict):
            settings[key] = {**settings.get(key, {}), **value}
        else:
            settings[key] = value
    text = m.raw if m.raw is not None else _toml(_fill(settings, place.subs))
    path = place.tmp / "walrusds.toml"
    path.write_text(text)
    path.chmod(m.mode)
    return (_fill(m.path, place.subs) if m.path else str(path),
            _fill(m.env, place.subs), _fill(m.message, place.subs))


def check_output(code: int, out: str, err: str, message: str, place: Place) -> None:
    assert code == 1, (code, err)
    assert out == ""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("walrusds serve: ")]
    assert len(errors) == 1, err
    assert message in errors[0], f"{message!r} not in {errors[0]!r}"
    assert err.rstrip("\n").endswith(errors[0])  # the last thing printed
    for secret in SECRETS:
        assert secret not in err, f"{secret!r} leaked: {err}"
    assert not (place.tmp / "s.sock").exists()  # nothing was left listening


@contextlib.contextmanager
def saved_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.mark.parametrize("row", list(MISTAKES), ids=list(MISTAKES))
def test_config_mistake_stops_start_up(row: str, place: Place, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path, env, message = write_config(row, place)
    for name in list(os.environ):
        if name.startswith("WALRUSDS_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    async def no_wait() -> None:  # a row that started by mistake returns at once
        return None

    monkeypatch.setattr(cmd_serve, "wait_for_signal", no_wait)
    with saved_logging():
        code = main(["serve", "--config", path])
    captured = capsys.readouterr()
    check_output(code, captured.out, captured.err, message, place)


def test_config_mistakes_through_real_processes(
        tmp_path_factory: pytest.TempPathFactory, pg_dsn: str, certs: Certs, busy_port: int
) -> None:
    places: dict[str, Place] = {}
    jobs = []
    for row in SUBPROCESS_ROWS:
        tmp = tmp_path_factory.mktemp(row)
        schema = f"cfg_{row.replace('-', '_')}"[:63]
        p = Place(tmp, {}, schema)
        private_file(tmp / "shared-token", TOKEN, 0o644)
        private_file(tmp / "shared.key", certs.server_key.read_text(), 0o644)
        p.subs = {"tmp": str(tmp), "dsn": pg_dsn, "schema": schema, "busy": str(busy_port),
                  "cert": str(certs.server_cert), "key": str(certs.server_key),
                  "ca": str(certs.ca),
                  "pgport": str(psycopg.conninfo.conninfo_to_dict(pg_dsn)["port"])}
        places[row] = p
        path, env, message = write_config(row, p)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("WALRUSDS_")}
        jobs.append((row, [sys.executable, "-m", "walrusds", "serve", "--config", path],
                     {**clean, **env}, message))

    def run(job: tuple[str, list[str], dict[str, str], str]
            ) -> tuple[str, subprocess.CompletedProcess[str], str]:
        row, argv, env, message = job
        return row, subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120,
                                   check=False), message

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(run, jobs))
        for row, done, message in results:
            check_output(done.returncode, done.stdout, done.stderr, message, places[row])
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            for p in places.values():
                conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    psycopg.sql.Identifier(p.schema)))


# -- the documentation lists every error the start-up path can raise --------------------------

START_UP_MODULES = ("config.py", "server/listen.py", "server/app.py", "index/pool.py",
                    "index/migrate.py", "index/replica.py", "client/endpoints.py",
                    "metrics/address.py")


def _config_error_wordings() -> dict[str, str]:
    """For every ``raise ConfigError(...)`` in the start-up modules: its longest literal
    fragment (the part of the message that does not change), by ``module:line``."""
    root = Path(walrusds.__file__).parent
    found: dict[str, str] = {}
    for name in START_UP_MODULES:
        path = root / name
        if not path.exists():
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "ConfigError" and node.args):
                continue
            first = node.args[0]
            parts = ([first.value] if isinstance(first, ast.Constant)
                     else [v.value for v in getattr(first, "values", [])
                           if isinstance(v, ast.Constant)])
            fragments = [str(p).strip() for p in parts if str(p).strip()]
            if fragments:
                found[f"{name}:{node.lineno}"] = max(fragments, key=len)
    return found


def test_every_config_error_is_documented() -> None:
    doc = DOC.read_text()
    wordings = _config_error_wordings()
    assert len(wordings) > 40
    missing = {where: text for where, text in wordings.items() if text not in doc}
    assert missing == {}, "add these messages to docs/security.md"
