"""Structured logs: one JSON object per line, extra fields kept, secrets redacted by both
formatters; the ``--log-format`` option and WALRUSDS_LOG_FORMAT."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from walrusds.logging_setup import (
    JsonFormatter,
    TextFormatter,
    configure_logging,
    redact,
    register_secrets,
)

WALRUSDS = [sys.executable, "-m", "walrusds"]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {n: logging.getLogger(n).level for n in ("httpx", "httpcore")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


def capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"walrusds.test.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_json_lines_carry_time_level_logger_message_and_extras() -> None:
    logger, stream = capture(JsonFormatter())
    logger.info("pack %d stored", 7, extra={"pack_id": 7, "blob": b"\x00raw"})
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("flush failed")
    logger.warning('quotes " and\nnewlines stay on one line')
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    first, second, third = (json.loads(line) for line in lines)
    assert first["message"] == "pack 7 stored"
    assert first["level"] == "INFO"
    assert first["logger"] == logger.name
    assert first["pack_id"] == 7
    assert first["blob"] == str(b"\x00raw")  # not JSON: its str()
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert second["level"] == "ERROR"
    assert "ValueError: boom" in second["exception"]
    assert "Traceback" in second["exception"]
    assert third["message"] == 'quotes " and\nnewlines stay on one line'


def test_both_formats_redact_registered_secrets_dsn_passwords_and_tokens() -> None:
    register_secrets(["pw-Zq81x!", "tok-ABCDEFGH12345678", "ab"])  # "ab": too short to be one
    text, tstream = capture(TextFormatter())
    js, jstream = capture(JsonFormatter())
    for logger in (text, js):
        logger.info("connecting to host=db password=pw-Zq81x! dbname=x")
        logger.info("url postgresql://walrus:other-pass@db/x and token %s",
                    "tok-ABCDEFGH12345678")
        logger.info("header Authorization: Bearer eyJhbGciOi.payload.sig")
        logger.info("secret in an extra", extra={"detail": 'said "pw-Zq81x!"'})
        logger.info("about absent keys")
    for out in (tstream.getvalue(), jstream.getvalue()):
        for secret in ("pw-Zq81x!", "tok-ABCDEFGH12345678", "other-pass", "eyJhbGciOi"):
            assert secret not in out
        assert out.count("***") >= 4
        assert "about absent keys" in out  # "ab" was not registered
    assert redact("nothing to hide") == "nothing to hide"


def test_configure_logging_json_and_quiet_http_loggers(restore_logging: None,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    logging.getLogger("walrusds.test").info("hello", extra={"n": 1})
    logging.getLogger("httpx").info("HTTP Request: PUT https://publisher/secret-path/v1/blobs")
    err = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["message"] for line in err] == ["hello"]
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    configure_logging("DEBUG", "text")
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG
    with pytest.raises(ValueError, match="log format"):
        configure_logging("INFO", "xml")


def test_cli_log_format_option_and_environment(pg_dsn: str, schema: str) -> None:
    env_bad = subprocess.run([*WALRUSDS, "stats"], capture_output=True, timeout=60,
                             env={"WALRUSDS_LOG_FORMAT": "xml", "PATH": ""}, check=False)
    assert env_bad.returncode == 2
    assert b"WALRUSDS_LOG_FORMAT='xml'" in env_bad.stderr
    bad = subprocess.run([*WALRUSDS, "--log-format", "yaml", "stats"], capture_output=True,
                         timeout=60, check=False)
    assert bad.returncode == 2
    assert b"invalid choice: 'yaml'" in bad.stderr
    # A real command in JSON: migrate logs each migration it applies; the password in its DSN
    # (accepted and unused by the test server's trust authentication) appears nowhere.
    out = subprocess.run(
        [*WALRUSDS, "--log-format", "json", "--log-level", "DEBUG", "migrate", "--dsn",
         f"{pg_dsn} password=never-logged-pw"],
        capture_output=True, timeout=60, check=False,
        env={"WALRUSDS_POSTGRES_SCHEMA": schema, "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert b"never-logged-pw" not in out.stderr + out.stdout
    records = [json.loads(line) for line in out.stderr.decode().splitlines()]
    applied = [r for r in records if r["logger"] == "walrusds.index.migrate"]
    assert applied and applied[0]["message"].startswith("applying migration 0001_")
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


def test_the_cli_handler_follows_a_swapped_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    # A handler bound to the stderr of the moment wrote to a closed file once that stream was
    # replaced (pytest's capture between tests): "--- Logging error ---" and a traceback.
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    old = sys.stderr
    try:
        sys.stderr = first = io.StringIO()
        configure_logging("INFO", "text")
        first.close()
        sys.stderr = second = io.StringIO()
        logging.getLogger("walrusds.test").info("after the swap")
        assert "after the swap" in second.getvalue()
    finally:
        sys.stderr = old
        root.handlers[:] = saved
        root.setLevel(level)
