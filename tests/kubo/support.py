"""Processes the Kubo shim tests run for real: the walrusds service (``walrusds serve`` or
``walrusds up``), ``go test`` and the ``ipfs-walrus`` binary. Every process is started here and
stopped by its PID (or handle), never by name."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from walrusds.rpc import open_channel, stub
from walrusds.v1 import datastore_pb2 as pb

REPO = Path(__file__).resolve().parents[2]
SHIM = REPO / "shim"
WALRUSDS = [sys.executable, "-m", "walrusds"]


def go_binary() -> str:
    """The go command: on PATH, else Go's default install location. Never skipped."""
    found = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(found).exists():
        raise AssertionError("Go is not installed (looked on PATH and at /usr/local/go/bin/go)")
    return found


def go_env(**extra: str) -> dict[str, str]:
    """Environment for go commands, matching scripts/build-shim.sh so the build cache is shared."""
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    env.update(extra)
    return env


def ipfs_walrus() -> Path:
    """bin/ipfs-walrus, built by `make shim` (which `make test` runs first)."""
    binary = REPO / "bin" / "ipfs-walrus"
    if not binary.exists():
        built = subprocess.run([str(REPO / "scripts" / "build-shim.sh")], capture_output=True,
                               text=True, timeout=1800, check=False)
        assert built.returncode == 0, built.stdout + built.stderr
    return binary


def info(addr: str, timeout: float = 5.0) -> pb.InfoResponse:
    with open_channel(addr) as channel:
        response: pb.InfoResponse = stub(channel).Info(pb.InfoRequest(), timeout=timeout)
        return response


def wait_until_serving(addr: str, proc: subprocess.Popen[bytes], log: Path,
                       timeout: float = 60.0) -> None:
    """Until the service answers Info (a refusal for want of a token is an answer too)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"the service exited: {log.read_text()}")
        try:
            info(addr, timeout=2.0)
            return
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the service did not answer: {log.read_text()}") from None
            time.sleep(0.1)


def wait_for_log(service: Service, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in service.log.read_text(errors="replace"):
        if service.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} in the log: {service.log.read_text()}")
        time.sleep(0.1)


class Service:
    """A walrusds process; ``stop`` sends SIGTERM to its PID and waits."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen([*WALRUSDS, *args], env=env, stdout=log.open("ab"),
                                     stderr=subprocess.STDOUT)

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=10)


def serve(tmp: Path, name: str, *, dsn: str, schema: str | None = None,
          read_only: bool = False, aggregators: list[str] | None = None,
          **settings: str) -> tuple[Service, str]:
    """``walrusds serve`` on a unix socket in tmp, configured from the environment; settings
    are more ``WALRUSDS_*`` variables (``dataset="x"`` is ``WALRUSDS_DATASET=x``)."""
    addr = settings.pop("listen", f"unix:{tmp / f'{name}.sock'}")
    env = {**os.environ, "WALRUSDS_POSTGRES_DSN": dsn, "WALRUSDS_LISTEN": addr,
           "WALRUSDS_READ_ONLY": "true" if read_only else "false"}
    env.update({f"WALRUSDS_{k.upper()}": v for k, v in settings.items()})
    if schema:
        env["WALRUSDS_POSTGRES_SCHEMA"] = schema
    if aggregators:
        env["WALRUSDS_WALRUS_AGGREGATORS"] = ",".join(aggregators)
    service = Service(["serve"], env, tmp / f"{name}.log")
    try:
        if "WALRUSDS_SECURITY_TLS_CERT" in env:  # a plaintext probe cannot talk to it
            wait_for_log(service, "walrusds serving dataset")
        else:
            wait_until_serving(addr, service.proc, service.log)
    except BaseException:
        service.stop()
        raise
    return service, addr


def up(data_dir: Path, config: Path | None = None) -> tuple[Service, dict[str, Any]]:
    """``walrusds up``: a private PostgreSQL, the Walrus emulator and the service; returns its
    up.json."""
    args = ["up", "--data-dir", str(data_dir)]
    if config is not None:
        args += ["--config", str(config)]
    service = Service(args, dict(os.environ), data_dir.parent / f"{data_dir.name}.log")
    up_file = data_dir / "up.json"
    deadline = time.monotonic() + 120
    while True:
        if service.proc.poll() is not None:
            raise AssertionError(f"walrusds up exited: {service.log.read_text()}")
        if up_file.exists():
            try:
                details: dict[str, Any] = json.loads(up_file.read_text())
                return service, details
            except json.JSONDecodeError:
                pass
        if time.monotonic() > deadline:
            service.stop()
            raise AssertionError(f"walrusds up did not start: {service.log.read_text()}")
        time.sleep(0.1)
