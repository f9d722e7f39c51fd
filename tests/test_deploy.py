"""deploy/: what can run on this machine runs here — the example config starts the service,
the systemd units verify and their command lines parse, the Kubo examples use only fields the
plugin knows. (deploy/compose/ needs a container engine and is not exercised here.)"""

from __future__ import annotations

import asyncio
import configparser
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from walrusds.cli.main import build_parser
from walrusds.config import SECTIONS, Config, load_config
from walrusds.emulator.runner import RunningEmulator
from walrusds.rpc import open_aio_channel, stub
from walrusds.v1 import datastore_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").iterdir())


def test_the_example_config_names_every_key() -> None:
    raw = tomllib.loads((DEPLOY / "walrusds.toml").read_text())
    for f in dataclasses.fields(Config):
        assert f.name in raw, f"deploy/walrusds.toml lacks {f.name}"
        if f.name in SECTIONS:
            names = {sf.name for sf in dataclasses.fields(SECTIONS[f.name])}
            assert set(raw[f.name]) == names, f"[{f.name}] differs from the configuration"
    load_config(DEPLOY / "walrusds.toml", env={})  # parses and validates


async def test_the_example_config_starts_the_service(
        pg_dsn: str, schema: str, emulator: RunningEmulator, tmp_path: Path) -> None:
    sock = tmp_path / "walrusds.sock"
    env = {**os.environ, "WALRUSDS_CONFIG": str(DEPLOY / "walrusds.toml"),
           # what differs on this machine: where Postgres, the socket and Walrus are
           "WALRUSDS_POSTGRES_DSN": pg_dsn, "WALRUSDS_POSTGRES_SCHEMA": schema,
           "WALRUSDS_POSTGRES_PASSWORD_FILE": "", "WALRUSDS_LISTEN": f"unix:{sock}",
           "WALRUSDS_WALRUS_PUBLISHERS": emulator.url,
           "WALRUSDS_WALRUS_AGGREGATORS": emulator.url, "WALRUSDS_METRICS_LISTEN": ""}
    log = tmp_path / "serve.log"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "walrusds", "serve",
                                                env=env, stdout=log.open("wb"),
                                                stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            assert proc.returncode is None, log.read_text()
            if sock.exists():
                channel = open_aio_channel(f"unix:{sock}")
                try:
                    info = await stub(channel).Info(pb.InfoRequest(), timeout=5)
                    break
                except Exception:  # not serving yet
                    pass
                finally:
                    await channel.close()
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(log.read_text())
        assert info.dataset == "kubo-prod"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0, log.read_text()


def _exec_start(unit: Path) -> list[str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(unit)
    return shlex.split(parser["Service"]["ExecStart"])


@pytest.mark.parametrize("unit", [u for u in UNITS if u.suffix == ".service"],
                         ids=lambda u: u.name)
def test_unit_command_lines_parse(unit: Path) -> None:
    argv = _exec_start(unit)
    assert argv[0] == "/usr/local/bin/walrusds"
    args = build_parser().parse_args(argv[1:])
    assert args.config == "/etc/walrusds/walrusds.toml"


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        # Not every machine has systemd; the command-line test above still runs there.
        return
    walrusds = shutil.which("walrusds") or str(Path(sys.executable).parent / "walrusds")
    for unit in UNITS:
        (tmp_path / unit.name).write_text(
            unit.read_text().replace("/usr/local/bin/walrusds", walrusds))
    out = subprocess.run([analyze, "verify", *(str(tmp_path / u.name) for u in UNITS)],
                         capture_output=True, text=True, timeout=60, check=False,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def _plugin_fields() -> set[str]:
    source = (ROOT / "shim" / "plugin" / "config.go").read_text()
    block = source[source.index("var fieldParsers"):]
    block = block[:block.index("\n}\n")]
    return set(re.findall(r'^\s*"([a-z_]+)":', block, re.MULTILINE))


@pytest.mark.parametrize("example", ["upload-node.json", "retrieval-node.json"])
def test_kubo_examples_use_known_fields(example: str) -> None:
    spec: dict[str, Any] = json.loads((DEPLOY / "kubo" / example).read_text())
    mounts = spec["Datastore"]["Spec"]["mounts"]
    blocks = [m for m in mounts if m["mountpoint"] == "/blocks"]
    assert len(blocks) == 1
    assert blocks[0]["type"] == "walrusds"
    known = _plugin_fields() | {"type", "mountpoint", "prefix"}
    assert {"addresses", "dataset"} <= known
    assert set(blocks[0]) <= known, set(blocks[0]) - known
    assert {m["mountpoint"] for m in mounts} == {"/blocks", "/"}
