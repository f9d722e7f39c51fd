"""Logging for the ``walrusds`` command: text lines (default) or one JSON object per line, and
secrets redacted from both.

Secrets are kept out of log calls in the first place (DSNs go through ``redact_dsn``, endpoint
URLs through ``redact_url``, tokens are never formatted). The formatters here are the backstop
for what walrusds does not control — a library message, a traceback, an exception's text:
every line is scrubbed of the secrets the configuration holds (registered by the service at
start) and of anything shaped like a DSN password or a bearer token.

JSON lines carry ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, any ``extra``
fields the call passed, and ``exception`` with the traceback when there is one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from walrusds.config import Config
from walrusds.index.pool import redact_dsn

__all__ = ["FORMATS", "LOG_FORMAT_ENV", "JsonFormatter", "TextFormatter", "config_secrets",
           "configure_logging", "redact", "register_secrets"]

FORMATS = ("text", "json")
LOG_FORMAT_ENV = "WALRUSDS_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "***"
#: Shorter strings are not treated as secrets (they would blank out ordinary words).
MIN_SECRET = 4
#: A URL path segment counts as a secret (a publisher API key) from this length on.
MIN_PATH_SECRET = 8
#: Loggers that log every HTTP request with its full URL at INFO: quiet unless DEBUG.
CHATTY = ("httpx", "httpcore")

_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def register_secrets(values: Iterable[str]) -> None:
    """Redact these strings from every log line from now on (process-wide)."""
    global _secrets
    fresh = {v for v in values if v and len(v) >= MIN_SECRET}
    with _lock:
        # Longest first, so a secret that contains another is replaced whole.
        _secrets = tuple(sorted(set(_secrets) | fresh, key=len, reverse=True))


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "password" in text or "://" in text:
        text = redact_dsn(text)
    if "earer" in text:
        text = _BEARER.sub(rf"\1{REDACTED}", text)
    return text


def config_secrets(config: Config) -> list[str]:
    """The secrets a configuration holds: the DSNs' passwords, the contents of the secret files,
    and long path segments of Walrus endpoint URLs (where hosted publishers put API keys).

    Unreadable files are skipped: loading them for real reports the problem.
    """
    out: list[str] = []
    for dsn in (config.postgres.dsn, config.postgres.replica_dsn):
        if not dsn:
            continue
        try:
            from psycopg.conninfo import conninfo_to_dict

            password = conninfo_to_dict(dsn).get("password")
        except Exception:  # a malformed DSN fails later, with its own message
            password = None
        if isinstance(password, str):
            out.append(password)
    for path in (config.postgres.password_file, config.security.token_file,
                 config.walrus.publisher_token_file):
        if path:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                out.append(Path(path).read_text().strip())
    for url in (*config.walrus.publishers, *config.walrus.aggregators):
        out.extend(seg for seg in urlsplit(url).path.split("/") if len(seg) >= MIN_PATH_SECRET)
    return out


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra`` fields become keys of their own."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        clean = {k: redact(v) if isinstance(v, str) else v for k, v in doc.items()}
        # Values that are not JSON turn into their str(), which may hold a secret too.
        return redact(json.dumps(clean, default=str, ensure_ascii=False))


def log_format_default() -> str:
    return os.environ.get(LOG_FORMAT_ENV, "").strip().lower() or "text"


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each record to ``sys.stderr`` as it is when the record is logged, not as it was
    when logging was configured: code that swaps stderr (a test capturing output, a daemon
    redirecting it) never leaves a handler writing to a closed file."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr at ``level`` in ``fmt`` ("text" or "json"), replacing earlier handlers."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    numeric = getattr(logging, str(level).upper(), None)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
    for name in CHATTY:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING)
                                         if numeric > logging.DEBUG else numeric)
