"""Configuration: TOML + environment, and every mistake stops start-up with a clear message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from walrusds.config import Config, PostgresConfig, load_config, read_secret_file
from walrusds.errors import ConfigError
from walrusds.server.listen import check_exposure, parse_listen


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "walrusds.toml"
    p.write_text(text)
    return p


def test_defaults_without_file_or_environment() -> None:
    cfg = load_config(None, env={})
    assert cfg == Config()
    assert cfg.listen == "127.0.0.1:7070"
    assert cfg.limits.max_value_size == 16 * 1024 * 1024


def test_file_then_environment(tmp_path: Path) -> None:
    path = write(tmp_path, 'dataset = "prod"\nlisten = "unix:/tmp/x.sock"\n'
                 '[postgres]\ndsn = "host=db"\nschema = "blocks"\n[limits]\nquery_page = 50\n')
    cfg = load_config(path, env={"WALRUSDS_POSTGRES_DSN": "host=other",
                                 "WALRUSDS_READ_ONLY": "true",
                                 "WALRUSDS_LIMITS_MAX_VALUE_SIZE": "1_048_576"})
    assert cfg.dataset == "prod"
    assert cfg.listen == "unix:/tmp/x.sock"
    assert cfg.postgres == PostgresConfig(dsn="host=other", schema="blocks")
    assert cfg.read_only is True
    assert cfg.limits.query_page == 50
    assert cfg.limits.max_value_size == 1024 * 1024


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, 'dataset = "from-env-file"\n')
    assert load_config(None, env={"WALRUSDS_CONFIG": str(path)}).dataset == "from-env-file"


@pytest.mark.parametrize(("text", "env", "message"), [
    ('listne = "x"\n', {}, "unknown configuration key listne"),
    ('[postgres]\nport = 5\n', {}, "unknown configuration key postgres.port"),
    ('read_only = "maybe"\n', {}, "read_only: expected bool"),
    ("[limits]\nquery_page = 1.5\n", {}, "limits.query_page: expected int"),
    ("", {"WALRUSDS_LIMITS_QUERY_PAGE": "many"}, "limits.query_page: expected int"),
    ('[postgres]\nschema = \'x"; drop table y; --\'\n', {}, "postgres.schema"),
    ('[postgres]\nschema = "' + "a" * 64 + '"\n', {}, "postgres.schema"),
    ('[postgres]\nschema = "Upper"\n', {}, "postgres.schema"),
    ("[limits]\nmax_key_size = 4096\n", {}, "limits.max_key_size"),
    ("[limits]\nmax_value_size = 0\n", {}, "limits.max_value_size"),
    ("[limits]\nmax_batch_ops = 0\n", {}, "limits.max_batch_ops"),
    ('[security]\ntls_cert = "c.pem"\n', {}, "tls_cert and security.tls_key"),
    ("postgres = 3\n", {}, "postgres must be a table"),
    ("not toml [", {}, "walrusds.toml"),
])
def test_mistakes_name_the_key(tmp_path: Path, text: str, env: dict[str, str],
                               message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), env=env)
    assert message in str(err.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})


def test_secret_file_must_be_private(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-token-value\n")
    os.chmod(secret, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_secret_file(str(secret), "token")
    os.chmod(secret, 0o600)
    assert read_secret_file(str(secret), "token") == "s3cr3t-token-value"


@pytest.mark.parametrize(("text", "target", "loopback"), [
    ("unix:/run/walrusds.sock", "unix:/run/walrusds.sock", True),
    ("unix:///run/w.sock", "unix:/run/w.sock", True),
    ("127.0.0.1:7070", "127.0.0.1:7070", True),
    ("[::1]:7070", "[::1]:7070", True),
    ("localhost:1", "localhost:1", True),
    ("0.0.0.0:7070", "0.0.0.0:7070", False),
    ("10.1.2.3:7070", "10.1.2.3:7070", False),
])
def test_listen_addresses(text: str, target: str, loopback: bool) -> None:
    addr = parse_listen(text)
    assert addr.grpc_target == target
    assert addr.loopback is loopback


@pytest.mark.parametrize("text", ["", "unix:", "host", "host:port", "1.2.3.4:99999",
                                  "unix:/" + "x" * 200])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ConfigError, match="listen"):
        parse_listen(text)


def test_non_loopback_listener_requires_tls_and_authentication() -> None:
    public = parse_listen("0.0.0.0:7070")
    with pytest.raises(ConfigError, match="tls_cert"):
        check_exposure(public, Config())
    tls_only = Config(security=Config().security.__class__(tls_cert="c", tls_key="k"))
    with pytest.raises(ConfigError, match=r"token_file or security\.tls_client_ca"):
        check_exposure(public, tls_only)
    with_token = Config(security=Config().security.__class__(tls_cert="c", tls_key="k",
                                                             token_file="t"))
    check_exposure(public, with_token)
    check_exposure(parse_listen("127.0.0.1:1"), Config())
