"""Configuration: a TOML file and/or ``WALRUSDS_*`` environment variables.

Precedence: built-in defaults < TOML file (``--config FILE`` or ``WALRUSDS_CONFIG``) <
environment. Top-level keys map to ``WALRUSDS_<KEY>`` (``WALRUSDS_LISTEN``), keys of a section to
``WALRUSDS_<SECTION>_<KEY>`` (``WALRUSDS_POSTGRES_DSN``). Lists in the environment are
comma-separated. An unknown key in the file, or a value of the wrong type, stops start-up with a
message that names the key. See docs/configuration.md for every key.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from walrusds.errors import ConfigError
from walrusds.keys import DEFAULT_MAX_KEY_SIZE

MiB = 1024 * 1024
DEFAULT_LISTEN = "127.0.0.1:7070"
DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"
IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# 16 MiB of value plus room for the key and protobuf framing.
MESSAGE_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class PostgresConfig:
    dsn: str = ""
    # Postgres schema that holds this dataset's tables; composed with psycopg.sql.Identifier.
    schema: str = "walrusds"
    # File holding the password (mode 0600); used when the DSN has none.
    password_file: str = ""
    pool_min: int = 2
    pool_max: int = 16
    connect_timeout: float = 10.0
    # Upper bound for one SQL statement (SET statement_timeout per connection).
    statement_timeout: float = 60.0
    # Seconds a caller waits for a pooled connection before RESOURCE_EXHAUSTED.
    pool_timeout: float = 10.0
    # A streaming replica of the primary (read-only retrieval nodes): lookups of block keys
    # read it first and ask the primary on a miss (walrusds.index.replica). Empty: none.
    replica_dsn: str = ""
    # The replica is used only while it has replayed the primary's WAL of this many seconds ago.
    replica_max_lag: float = 10.0
    # Run Query on the replica too (its results may lag by up to replica_max_lag).
    replica_queries: bool = False


@dataclass(frozen=True)
class LimitsConfig:
    max_key_size: int = DEFAULT_MAX_KEY_SIZE
    max_value_size: int = 16 * MiB
    # A Batch is held in memory until its stream ends: bound it.
    max_batch_bytes: int = 512 * MiB
    max_batch_ops: int = 1_000_000
    max_lookup_keys: int = 4096
    # Byte budget of one Lookup response in LOOKUP_MODE_GET.
    max_lookup_bytes: int = 32 * MiB
    max_concurrent_rpcs: int = 2048
    # Entries per Query response message.
    query_page: int = 1000
    # Query with a value order sorts in memory: at most this many entries.
    max_value_sort_entries: int = 1_000_000


@dataclass(frozen=True)
class WalrusConfig:
    # Publisher and aggregator base URLs (https, or http on loopback). Several of each are
    # tried in turn, failing ones last. Empty publishers: this node never uploads.
    publishers: tuple[str, ...] = ()
    aggregators: tuple[str, ...] = ()
    # Epochs bought by each store (Mainnet epoch = 14 days, at most 53 ahead).
    epochs: int = 5
    # Bearer token for an authenticated publisher (file, mode 0600).
    publisher_token_file: str = ""
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    store_timeout: float = 600.0
    # Overall deadline for one read or store including retries.
    deadline: float = 900.0
    # Bytes of whole packs kept in memory: packs read whole (prefetch), or sent whole by an
    # aggregator that ignores Range. 0: no cache, no prefetch.
    cache_bytes: int = 256 * MiB
    # Read a whole pack once (into the cache) after this many reads of it within
    # prefetch_window seconds, when they asked for at least 1/256 of its bytes and it fits
    # twice in cache_bytes. 0: never; every entry is its own ranged read.
    prefetch_reads: int = 8
    prefetch_window: float = 10.0


@dataclass(frozen=True)
class PackConfig:
    # Run the flusher on this node (needs walrus.publishers).
    flush: bool = True
    # Target packfile size: each Walrus blob pays a ~64 MB encoded floor.
    target_size: int = 64 * MiB
    # Flush when the oldest staged entry is this old (seconds)...
    max_age: float = 300.0
    # ... or when no write arrived for this long and something is staged.
    idle: float = 30.0
    # A building pack whose lease expired is resumed or abandoned by any flusher.
    lease: float = 600.0
    # Seconds between checks when nothing nudges the flusher.
    interval: float = 5.0


@dataclass(frozen=True)
class RenewConfig:
    # Run the renewal worker on this node (needs walrus publishers and aggregators; never on a
    # read-only node).
    enabled: bool = True
    # Act on a pack when its end epoch is this many epochs away or fewer.
    margin_epochs: int = 2
    # Epochs bought by each renewal; 0 means walrus.epochs.
    epochs: int = 0
    # Compact instead of extending when dead bytes exceed this fraction of a pack's data.
    dead_threshold: float = 0.3
    # The network's epoch length (Mainnet 14 days, Testnet 1 day): between store responses,
    # which report the current epoch, it advances the known epoch by elapsed time.
    epoch_seconds: float = 14 * 24 * 3600.0
    # Seconds between passes of the worker.
    interval: float = 3600.0
    # Seconds a worker holds a pack it is renewing.
    lease: float = 1800.0


@dataclass(frozen=True)
class SecurityConfig:
    # A TCP listener on a non-loopback address requires tls_cert + tls_key and a token_file
    # (or tls_client_ca for mutual TLS).
    tls_cert: str = ""
    tls_key: str = ""
    # Clients must present a certificate signed by this CA (mutual TLS).
    tls_client_ca: str = ""
    # File (mode 0600) holding the bearer token clients send as `authorization: Bearer ...`.
    token_file: str = ""


@dataclass(frozen=True)
class MetricsConfig:
    # The Prometheus endpoint (GET /metrics): host:port, or "" for none. Metrics carry no
    # secrets, so a non-loopback address is allowed (with a warning at start).
    listen: str = DEFAULT_METRICS_LISTEN
    # Seconds between refreshes of the gauges read from Postgres (staged backlog, packs).
    refresh_interval: float = 15.0


@dataclass(frozen=True)
class Config:
    dataset: str = "default"
    listen: str = DEFAULT_LISTEN
    read_only: bool = False
    # Seconds in-flight calls get to finish on SIGTERM.
    grace: float = 10.0
    postgres: PostgresConfig = field(default_factory=PostgresConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    walrus: WalrusConfig = field(default_factory=WalrusConfig)
    pack: PackConfig = field(default_factory=PackConfig)
    renew: RenewConfig = field(default_factory=RenewConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    @property
    def max_message_size(self) -> int:
        return max(self.limits.max_value_size, self.limits.max_lookup_bytes) + MESSAGE_OVERHEAD

    def validate(self) -> Config:
        """Check cross-field rules; return self or raise ConfigError naming the key."""
        if not IDENTIFIER_RE.match(self.postgres.schema):
            raise ConfigError(
                f"postgres.schema {self.postgres.schema!r} is not a valid name: use 1-63 "
                "characters of a-z, 0-9 and _, starting with a letter or _"
            )
        if self.postgres.schema.startswith("pg_") or self.postgres.schema == "information_schema":
            raise ConfigError(f"postgres.schema {self.postgres.schema!r} is reserved for "
                              "PostgreSQL's own catalogs: choose another name")
        if not self.dataset or len(self.dataset) > 128 or not self.dataset.isprintable():
            raise ConfigError("dataset must be a printable name of 1-128 characters")
        if self.postgres.pool_min < 1 or self.postgres.pool_max < self.postgres.pool_min:
            raise ConfigError("postgres.pool_min must be >= 1 and <= postgres.pool_max")
        _check_replica(self.postgres)
        lim = self.limits
        if not 2 <= lim.max_key_size <= 2048:
            raise ConfigError("limits.max_key_size must be between 2 and 2048 bytes")
        if not 1 <= lim.max_value_size <= 1024 * MiB:
            raise ConfigError("limits.max_value_size must be between 1 byte and 1 GiB")
        for name in ("max_batch_bytes", "max_batch_ops", "max_lookup_keys", "max_lookup_bytes",
                     "max_concurrent_rpcs", "query_page", "max_value_sort_entries"):
            if getattr(lim, name) < 1:
                raise ConfigError(f"limits.{name} must be positive")
        if self.grace < 0:
            raise ConfigError("grace must not be negative")
        sec = self.security
        if bool(sec.tls_cert) != bool(sec.tls_key):
            raise ConfigError("security.tls_cert and security.tls_key go together")
        if sec.tls_client_ca and not sec.tls_cert:
            raise ConfigError("security.tls_client_ca needs security.tls_cert and tls_key")
        from walrusds.client.endpoints import check_endpoint_url  # the client imports us

        for url in self.walrus.publishers:
            check_endpoint_url(url, "walrus.publishers entry")
        for url in self.walrus.aggregators:
            check_endpoint_url(url, "walrus.aggregators entry")
        if not 1 <= self.walrus.epochs <= 53:
            raise ConfigError("walrus.epochs must be between 1 and 53")
        if self.walrus.cache_bytes < 0:
            raise ConfigError("walrus.cache_bytes must not be negative (0: no cache)")
        if not 0 <= self.walrus.prefetch_reads <= 1_000_000:
            raise ConfigError("walrus.prefetch_reads must be between 0 and 1000000 (0: never "
                              "read a pack whole)")
        if not 0 < self.walrus.prefetch_window <= 3600:
            raise ConfigError("walrus.prefetch_window must be between 0 and 3600 seconds")
        pack = self.pack
        # Values larger than a pack can hold are refused at Put time (the pack capacity is
        # the effective value limit), so a small target is legal: tests use tiny packs.
        if not 4 * 1024 <= pack.target_size <= 13 * 1024 * MiB:
            raise ConfigError("pack.target_size must be between 4 KiB and 13 GiB")
        for name in ("max_age", "idle", "lease", "interval"):
            if getattr(pack, name) <= 0:
                raise ConfigError(f"pack.{name} must be positive")
        renew = self.renew
        if not 0 <= renew.margin_epochs <= 52:
            raise ConfigError("renew.margin_epochs must be between 0 and 52")
        if not 0 <= renew.epochs <= 53:
            raise ConfigError("renew.epochs must be between 1 and 53 (0: walrus.epochs)")
        if renew.epochs and renew.epochs <= renew.margin_epochs:
            raise ConfigError("renew.epochs must be larger than renew.margin_epochs")
        if not 0.0 < renew.dead_threshold < 1.0:
            raise ConfigError("renew.dead_threshold must be between 0 and 1")
        for name in ("epoch_seconds", "interval", "lease"):
            if getattr(renew, name) <= 0:
                raise ConfigError(f"renew.{name} must be positive")
        if renew.lease >= renew.epoch_seconds:
            # A crashed worker's lease blocks its pack; it must lapse well within the margin.
            raise ConfigError("renew.lease must be shorter than renew.epoch_seconds")
        from walrusds.metrics.address import parse_metrics_listen

        parse_metrics_listen(self.metrics.listen)
        if not 0.5 <= self.metrics.refresh_interval <= 3600:
            raise ConfigError("metrics.refresh_interval must be between 0.5 and 3600 seconds")
        return self


def _check_replica(pg: PostgresConfig) -> None:
    """The replica settings on their own; that the node is read-only is checked at start, after
    ``serve --read-only`` applied (walrusds.index.replica.check_replica_node)."""
    if not 0.0 < pg.replica_max_lag <= 3600.0:
        raise ConfigError("postgres.replica_max_lag must be between 0 and 3600 seconds")
    if not pg.replica_dsn:
        if pg.replica_queries:
            raise ConfigError("postgres.replica_queries needs postgres.replica_dsn")
        return
    if not pg.dsn:
        raise ConfigError("postgres.replica_dsn needs postgres.dsn: the primary answers what "
                          "the replica does not have, and takes every write")
    if pg.replica_dsn.strip() == pg.dsn.strip():
        raise ConfigError("postgres.replica_dsn names the same server as postgres.dsn: point "
                          "it at a streaming replica, or leave it empty")
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(pg.replica_dsn)
    except ProgrammingError:
        # never echo the value: it may hold a password
        raise ConfigError("postgres.replica_dsn is not a valid libpq connection string or "
                          "URL") from None


SECTIONS: dict[str, type[Any]] = {
    "postgres": PostgresConfig,
    "limits": LimitsConfig,
    "security": SecurityConfig,
    "walrus": WalrusConfig,
    "pack": PackConfig,
    "renew": RenewConfig,
    "metrics": MetricsConfig,
}


def load_config(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """Build the configuration from defaults, an optional TOML file and the environment."""
    env = os.environ if env is None else env
    path = path or env.get("WALRUSDS_CONFIG") or None
    raw: dict[str, Any] = {}
    if path:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        _refuse_shared_password(path, raw)
    _merge_env(raw, env)
    config: Config = _build(Config, raw, "")
    return config.validate()


def _refuse_shared_password(path: str | os.PathLike[str], raw: Mapping[str, Any]) -> None:
    """Secrets come from the environment or a 0600 file: a config file that holds a DSN
    password must be as private as a password file."""
    section = raw.get("postgres")
    if not isinstance(section, Mapping):
        return
    for name, value in section.items():
        if not (name.endswith("dsn") and isinstance(value, str) and _has_password(value)):
            continue
        mode = os.stat(path).st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(
                f"config file {path} holds a password in postgres.{name} and is readable by "
                f"group or others (mode {mode:o}): chmod 600 it, or move the password to "
                "postgres.password_file or the environment")


def _has_password(dsn: str) -> bool:
    if "password" not in dsn and "@" not in dsn:
        return False
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        return bool(conninfo_to_dict(dsn).get("password"))
    except ProgrammingError:
        return False  # not a DSN at all: the connection attempt reports it


def _merge_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for f in dataclasses.fields(Config):
        if f.name in SECTIONS:
            section = raw.setdefault(f.name, {})
            if not isinstance(section, dict):
                raise ConfigError(f"{f.name} must be a table")
            for sf in dataclasses.fields(SECTIONS[f.name]):
                name = f"WALRUSDS_{f.name.upper()}_{sf.name.upper()}"
                if name in env:
                    section[sf.name] = env[name]
        else:
            name = f"WALRUSDS_{f.name.upper()}"
            if name in env:
                raw[f.name] = env[name]


def _build(cls: type[Any], raw: Mapping[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"unknown configuration key {where}{unknown[0]}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        f = known[name]
        if name in SECTIONS and cls is Config:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{name} must be a table")
            values[name] = _build(SECTIONS[name], value, f"{name}.")
        else:
            values[name] = _coerce(value, f.type, f"{where}{name}")
    return cls(**values)


def _coerce(value: Any, type_name: Any, key: str) -> Any:
    kind = str(type_name)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
            return False
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip().replace("_", ""))
            except ValueError:
                pass
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
    elif kind == "str":
        if isinstance(value, str):
            return value
    elif kind == "tuple[str, ...]":
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
    raise ConfigError(f"{key}: expected {kind}, got {value!r}")


def read_secret_file(path: str, what: str) -> str:
    """Read a secret from a file that only its owner can read (mode 0600 or stricter)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"{what} file {path}: {exc.strerror}") from None
    if st.st_mode & 0o077:
        raise ConfigError(
            f"{what} file {path} is readable by group or others (mode {st.st_mode & 0o777:o}); "
            "chmod 600 it"
        )
    return Path(path).read_text().strip()
