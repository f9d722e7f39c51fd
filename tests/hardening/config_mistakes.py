"""The table of configuration mistakes: each row's settings (TOML, environment) and the message
start-up must print. Run by tests/hardening/test_config_errors.py; docs/security.md lists
every row."""

from __future__ import annotations

import dataclasses
from typing import Any

TOKEN = "cfg-token-0123456789abcdef"
PG_PASSWORD = "cfg-Pw-1234"
URL_KEY = "key-abcdef123456"
SECRETS = (TOKEN, PG_PASSWORD, URL_KEY)


@dataclasses.dataclass(frozen=True)
class Mistake:
    settings: dict[str, Any]
    message: str
    raw: str | None = None  # the whole file, instead of the settings
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    mode: int = 0o600  # of the config file
    schema: str | None = None  # how to prepare the schema first (see _prepare)
    path: str | None = None  # --config names this instead of the written file


def pg(**kw: Any) -> dict[str, Any]:
    return {"postgres": kw}


def sec(**kw: Any) -> dict[str, Any]:
    return {"security": kw}


def walrus(**kw: Any) -> dict[str, Any]:
    return {"walrus": kw}


def limits(**kw: Any) -> dict[str, Any]:
    return {"limits": kw}


def pack(**kw: Any) -> dict[str, Any]:
    return {"pack": kw}


def renew(**kw: Any) -> dict[str, Any]:
    return {"renew": kw}


def metrics(**kw: Any) -> dict[str, Any]:
    return {"metrics": kw}


NOT_A_NAME = "is not a valid name: use 1-63 characters of a-z, 0-9 and _"
HTTPS = "must use https (plain http is allowed on loopback only)"
LINK_LOCAL = "is a link-local or unspecified address"
TLS = {"tls_cert": "{cert}", "tls_key": "{key}"}
PRIVATE = "is readable by group or others (mode 644); chmod 600 it"

MISTAKES: dict[str, Mistake] = {
    # -- the file itself, keys and types
    "file-missing": Mistake({}, "config file {tmp}/nope.toml does not exist",
                            path="{tmp}/nope.toml"),
    "file-is-a-directory": Mistake({}, "config file {tmp}: [Errno 21] Is a directory",
                                   path="{tmp}"),
    "file-not-toml": Mistake({}, "config file {tmp}/walrusds.toml: Expected '=' after a key",
                             raw="not toml [\n"),
    "file-password-readable": Mistake(
        pg(dsn="{dsn} password=" + PG_PASSWORD),
        "holds a password in postgres.dsn and is readable by group or others (mode 644): "
        "chmod 600 it, or move the password to postgres.password_file or the environment",
        mode=0o644),
    "unknown-key": Mistake({"listne": "x"}, "unknown configuration key listne"),
    "unknown-section-key": Mistake(pg(port=5), "unknown configuration key postgres.port"),
    "section-not-a-table": Mistake({}, "postgres must be a table", raw="postgres = 3\n"),
    "type-bool": Mistake({"read_only": "maybe"}, "read_only: expected bool, got 'maybe'"),
    "type-int": Mistake(limits(query_page=1.5), "limits.query_page: expected int, got 1.5"),
    "type-float": Mistake({"grace": "soon"}, "grace: expected float, got 'soon'"),
    "type-str": Mistake({"dataset": 5}, "dataset: expected str, got 5"),
    "type-list": Mistake(walrus(publishers=5), "walrus.publishers: expected tuple[str, ...]"),
    "env-type": Mistake({}, "limits.query_page: expected int, got 'many'",
                        env={"WALRUSDS_LIMITS_QUERY_PAGE": "many"}),
    # -- Config.validate()
    "schema-injection": Mistake(pg(schema='x"; drop table y; --'), NOT_A_NAME),
    "schema-70-chars": Mistake(pg(schema="a" * 70), NOT_A_NAME),
    "schema-64-chars": Mistake(pg(schema="a" * 64), NOT_A_NAME),
    "schema-uppercase": Mistake(pg(schema="Blocks"), NOT_A_NAME),
    "schema-empty": Mistake(pg(schema=""), NOT_A_NAME),
    "schema-dash": Mistake(pg(schema="my-blocks"), NOT_A_NAME),
    "schema-dot": Mistake(pg(schema="public.entries"), NOT_A_NAME),
    "schema-non-ascii": Mistake(pg(schema="blöcke"), NOT_A_NAME),
    "schema-reserved-pg": Mistake(pg(schema="pg_blocks"),
                                  "postgres.schema 'pg_blocks' is reserved for PostgreSQL's "
                                  "own catalogs"),
    "schema-information-schema": Mistake(pg(schema="information_schema"), "is reserved"),
    "dataset-empty": Mistake({"dataset": ""}, "dataset must be a printable name of 1-128"),
    "dataset-too-long": Mistake({"dataset": "d" * 129}, "dataset must be a printable name"),
    "dataset-control-char": Mistake({"dataset": "a\nb"}, "dataset must be a printable name"),
    "pool-min-zero": Mistake(pg(pool_min=0), "postgres.pool_min must be >= 1 and <= "
                                             "postgres.pool_max"),
    "pool-max-below-min": Mistake(pg(pool_min=4, pool_max=2), "postgres.pool_min must be"),
    "replica-max-lag": Mistake(pg(replica_max_lag=0), "postgres.replica_max_lag must be "
                                                      "between 0 and 3600 seconds"),
    "replica-queries-without-replica": Mistake(pg(replica_queries=True),
                                               "postgres.replica_queries needs "
                                               "postgres.replica_dsn"),
    "replica-without-primary": Mistake(pg(dsn="", replica_dsn="host=replica"),
                                       "postgres.replica_dsn needs postgres.dsn"),
    "replica-same-as-primary": Mistake(pg(replica_dsn="{dsn}"),
                                       "postgres.replica_dsn names the same server"),
    "replica-not-a-dsn": Mistake(pg(replica_dsn="host='unclosed password=" + PG_PASSWORD),
                                 "postgres.replica_dsn is not a valid libpq connection "
                                 "string or URL"),
    "replica-on-upload-node": Mistake(pg(replica_dsn="host=127.0.0.1 port=1"),
                                      "postgres.replica_dsn is for read-only retrieval nodes"),
    "key-size": Mistake(limits(max_key_size=4096), "limits.max_key_size must be between 2 "
                                                   "and 2048 bytes"),
    "value-size": Mistake(limits(max_value_size=0), "limits.max_value_size must be between "
                                                    "1 byte and 1 GiB"),
    **{f"limit-{name}": Mistake(limits(**{name: 0}), f"limits.{name} must be positive")
       for name in ("max_batch_bytes", "max_batch_ops", "max_lookup_keys", "max_lookup_bytes",
                    "max_concurrent_rpcs", "query_page", "max_value_sort_entries")},
    "grace-negative": Mistake({"grace": -1}, "grace must not be negative"),
    "tls-cert-without-key": Mistake(sec(tls_cert="{cert}"),
                                    "security.tls_cert and security.tls_key go together"),
    "tls-key-without-cert": Mistake(sec(tls_key="{key}"), "go together"),
    "tls-client-ca-without-cert": Mistake(sec(tls_client_ca="{ca}"),
                                          "security.tls_client_ca needs security.tls_cert"),
    "walrus-not-http": Mistake(walrus(publishers=["ftp://files.example.com"]),
                               "walrus.publishers entry 'ftp://files.example.com' is not an "
                               "http(s) URL"),
    "walrus-http-public": Mistake(walrus(publishers=["http://publisher.example.com"]), HTTPS),
    "walrus-http-aggregator": Mistake(walrus(aggregators=["http://10.0.0.8:9000"]),
                                      "walrus.aggregators entry http://10.0.0.8:9000 " + HTTPS),
    "walrus-metadata-http": Mistake(walrus(publishers=["http://169.254.169.254/" + URL_KEY]),
                                    "walrus.publishers entry http://169.254.169.254/… " + HTTPS),
    "walrus-link-local-https": Mistake(walrus(aggregators=["https://169.254.169.254"]),
                                       LINK_LOCAL),
    "walrus-link-local-v6": Mistake(walrus(aggregators=["https://[fe80::1]:443"]), LINK_LOCAL),
    "walrus-unspecified": Mistake(walrus(aggregators=["https://0.0.0.0:9000"]), LINK_LOCAL),
    "walrus-query": Mistake(walrus(publishers=["https://p.example.com/?key=" + URL_KEY]),
                            "must not have a query or fragment"),
    "walrus-credentials": Mistake(walrus(publishers=[f"https://user:{URL_KEY}@p.example.com"]),
                                  "must not carry credentials; use "
                                  "walrus.publisher_token_file"),
    "walrus-epochs": Mistake(walrus(epochs=54), "walrus.epochs must be between 1 and 53"),
    "walrus-cache-bytes": Mistake(walrus(cache_bytes=-1), "walrus.cache_bytes must not be "
                                                          "negative (0: no cache)"),
    "walrus-prefetch-reads": Mistake(walrus(prefetch_reads=-1), "walrus.prefetch_reads must be "
                                     "between 0 and 1000000 (0: never read a pack whole)"),
    "walrus-prefetch-window": Mistake(walrus(prefetch_window=0), "walrus.prefetch_window must "
                                      "be between 0 and 3600 seconds"),
    "pack-target-size": Mistake(pack(target_size=1024), "pack.target_size must be between "
                                                        "4 KiB and 13 GiB"),
    **{f"pack-{name}": Mistake(pack(**{name: 0}), f"pack.{name} must be positive")
       for name in ("max_age", "idle", "lease", "interval")},
    "renew-margin": Mistake(renew(margin_epochs=53), "renew.margin_epochs must be between 0 "
                                                     "and 52"),
    "renew-epochs": Mistake(renew(epochs=54), "renew.epochs must be between 1 and 53 "
                                              "(0: walrus.epochs)"),
    "renew-epochs-within-margin": Mistake(renew(epochs=2, margin_epochs=2),
                                          "renew.epochs must be larger than "
                                          "renew.margin_epochs"),
    "renew-dead-threshold": Mistake(renew(dead_threshold=1.0), "renew.dead_threshold must be "
                                                               "between 0 and 1"),
    **{f"renew-{name}": Mistake(renew(**{name: 0}), f"renew.{name} must be positive")
       for name in ("epoch_seconds", "interval", "lease")},
    "renew-lease-too-long": Mistake(renew(lease=100, epoch_seconds=50),
                                    "renew.lease must be shorter than renew.epoch_seconds"),
    "metrics-listen": Mistake(metrics(listen="9464"), "metrics.listen '9464' is not host:port"),
    "metrics-listen-unix": Mistake(metrics(listen="/run/metrics:9464"),
                                   "the metrics endpoint listens on TCP only"),
    "metrics-refresh": Mistake(metrics(refresh_interval=0.1), "metrics.refresh_interval must "
                                                              "be between 0.5 and 3600"),
    # -- where to listen, and who may connect
    "listen-not-an-address": Mistake({"listen": "somewhere"}, "listen: 'somewhere' is "
                                                              "neither unix:/path nor "
                                                              "host:port"),
    "listen-bad-port": Mistake({"listen": "127.0.0.1:99999"}, "is neither unix:/path nor"),
    "listen-unix-no-path": Mistake({"listen": "unix:"}, "listen: unix: needs a socket path"),
    "listen-unix-too-long": Mistake({"listen": "unix:/" + "s" * 120},
                                    "listen: unix socket path is longer than 107 bytes"),
    "listen-unix-no-directory": Mistake({"listen": "unix:{tmp}/no/such/dir/s.sock"},
                                        "cannot listen on unix:{tmp}/no/such/dir/s.sock: check "
                                        "that the directory exists and is writable"),
    "listen-port-in-use": Mistake({"listen": "127.0.0.1:{busy}"},
                                  "cannot listen on 127.0.0.1:{busy}: the address is in use"),
    "listen-public-without-tls": Mistake(
        {"listen": "0.0.0.0:7070"},
        "listen 0.0.0.0:7070 is not a loopback address: configure security.tls_cert and "
        "security.tls_key (and a token_file or tls_client_ca)"),
    "listen-public-tls-without-auth": Mistake(
        {"listen": "0.0.0.0:7070", **sec(**TLS)},
        "is not a loopback address: configure security.token_file or security.tls_client_ca "
        "so clients authenticate"),
    "tls-cert-unreadable": Mistake(sec(tls_cert="{tmp}/missing.pem", tls_key="{key}"),
                                   "security: cannot read {tmp}/missing.pem: No such file"),
    "tls-key-readable": Mistake(sec(tls_cert="{cert}", tls_key="{tmp}/shared.key"),
                                "security.tls_key file {tmp}/shared.key " + PRIVATE),
    "token-file-missing": Mistake(sec(token_file="{tmp}/missing-token"),
                                  "security.token_file file {tmp}/missing-token: No such file "
                                  "or directory"),
    "token-file-readable": Mistake(sec(token_file="{tmp}/shared-token"),
                                   "security.token_file file {tmp}/shared-token " + PRIVATE),
    "token-too-short": Mistake(sec(token_file="{tmp}/short-token"),
                               "security.token_file holds fewer than 16 characters"),
    "password-file-readable": Mistake(pg(password_file="{tmp}/shared-token"),
                                      "postgres.password_file file {tmp}/shared-token "
                                      + PRIVATE),
    "publisher-token-readable": Mistake(
        walrus(publishers=["http://127.0.0.1:9"], publisher_token_file="{tmp}/shared-token"),
        "walrus.publisher_token_file file {tmp}/shared-token " + PRIVATE),
    # -- PostgreSQL
    "dsn-missing": Mistake(pg(dsn=""), "postgres.dsn is not set (WALRUSDS_POSTGRES_DSN or "
                                       "[postgres] dsn)"),
    "postgres-unreachable": Mistake(
        pg(dsn=f"host=127.0.0.1 port=1 dbname=x user=x password={PG_PASSWORD}"),
        "cannot connect to PostgreSQL at host=127.0.0.1 port=1 dbname=x user=x password=***: "
        "connection failed"),
    "postgres-sslmode-require": Mistake(
        pg(dsn="{dsn} sslmode=require"),
        "sslmode=require: connection failed: connection to server at \"127.0.0.1\", port "
        "{pgport} failed: server does not support SSL, but SSL was required"),
    "schema-holds-other-dataset": Mistake(
        {"dataset": "mine"}, "schema '{schema}' holds dataset 'theirs', but the configuration "
                             "names dataset 'mine': fix `dataset` or `postgres.schema`",
        schema="theirs"),
    "schema-newer-than-walrusds": Mistake({}, "is at migration 999, newer than this walrusds "
                                              "knows", schema="newer"),
    "read-only-without-schema": Mistake({"read_only": True}, "schema '{schema}' has no "
                                                             "walrusds index: start an upload "
                                                             "node or run `walrusds migrate`"),
    "read-only-old-schema": Mistake({"read_only": True}, "this walrusds expects",
                                    schema="older"),
    "read-only-other-dataset": Mistake({"read_only": True}, "holds dataset 'theirs', not "
                                                            "'default'", schema="theirs"),
}

# Rows that also run as real `walrusds serve` processes (one per stage of start-up).
SUBPROCESS_ROWS = ("file-not-toml", "file-password-readable", "env-type", "schema-injection",
                   "walrus-metadata-http", "listen-public-without-tls", "listen-port-in-use",
                   "tls-key-readable", "token-file-readable", "postgres-unreachable",
                   "postgres-sslmode-require", "schema-holds-other-dataset")
