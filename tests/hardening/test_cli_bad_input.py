"""Bad input through the command line: ``walrusds ds`` as real processes against a running
``walrusds serve`` (with a token, a 1 MiB value limit, and a read-only twin on the same
dataset). Each row gets its documented exit status (1 for an error or a missing key, 2 for a
usage mistake), one line on stderr that names the problem, no traceback; the dataset is
unchanged and the server still serves (docs/bad-input.md lists the rows)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import psycopg
import pytest

from tests.hardening.conftest import private_file
from walrusds.rpc import open_channel, stub, token_metadata
from walrusds.v1 import datastore_pb2 as pb
from walrusds.verify import block_key

WALRUSDS = [sys.executable, "-m", "walrusds"]
TOKEN = "cli-token-0123456789abcdef"
SCHEMA = "cli_hardening"
SEED = {b"/seed/a": b"alpha", b"/seed/b": b""}


@dataclasses.dataclass
class Server:
    proc: subprocess.Popen[bytes]
    addr: str
    log: Path


@dataclasses.dataclass
class Stack:
    dir: Path
    rw: Server
    ro: Server
    token: Path


def _serve(d: Path, name: str, env: dict[str, str]) -> Server:
    sock = d / f"{name}.sock"
    log = d / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*WALRUSDS, "serve"], env={**env, "WALRUSDS_LISTEN":
                                                          f"unix:{sock}"},
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "serving dataset" not in log.read_text():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return Server(proc, f"unix:{sock}", log)


def _stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0, server.log.read_text()
    assert "Traceback" not in server.log.read_text()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, pg_dsn: str) -> Iterator[Stack]:
    d = tmp_path_factory.mktemp("cli")
    token = private_file(d / "token", TOKEN + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALRUSDS_")}
    env.update({"WALRUSDS_POSTGRES_DSN": pg_dsn, "WALRUSDS_POSTGRES_SCHEMA": SCHEMA,
                "WALRUSDS_DATASET": "cli", "WALRUSDS_SECURITY_TOKEN_FILE": str(token),
                "WALRUSDS_LIMITS_MAX_VALUE_SIZE": str(1024 * 1024),
                "WALRUSDS_METRICS_LISTEN": "", "WALRUSDS_POSTGRES_POOL_MIN": "1"})
    rw = _serve(d, "rw", env)
    try:
        ro = _serve(d, "ro", {**env, "WALRUSDS_READ_ONLY": "true"})
    except BaseException:
        _stop(rw)
        raise
    try:
        with open_channel(rw.addr) as channel:
            api = stub(channel)
            for key, value in SEED.items():
                api.Put(pb.PutRequest(key=key, value=value), metadata=token_metadata(TOKEN))
        yield Stack(d, rw, ro, token)
    finally:
        _stop(ro)
        _stop(rw)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')


def dataset(stack: Stack) -> list[tuple[bytes, bytes]]:
    with open_channel(stack.rw.addr) as channel:
        return [(bytes(e.key), bytes(e.value))
                for r in stub(channel).Query(pb.QueryRequest(),
                                             metadata=token_metadata(TOKEN))
                for e in r.entries]


def serving(stack: Stack) -> None:
    """Both servers answer; a write through the upload node works and is undone."""
    meta = token_metadata(TOKEN)
    with open_channel(stack.rw.addr) as rw, open_channel(stack.ro.addr) as ro:
        stub(rw).Put(pb.PutRequest(key=b"/probe", value=b"p"), metadata=meta)
        assert stub(ro).Get(pb.GetRequest(key=b"/probe"), metadata=meta).value == b"p"
        stub(rw).Delete(pb.DeleteRequest(key=b"/probe"), metadata=meta)


@dataclasses.dataclass(frozen=True)
class Row:
    args: tuple[str, ...]  # after `walrusds ds`; {tmp} {token} {rw} {ro} are filled in
    code: int
    message: str  # in the one error line; "" for none
    stdin: bytes = b""
    addr: str = "{rw}"
    token: bool = True  # pass --token-file {token}
    stdout: bytes | None = None


MiB = 1024 * 1024
_BLOCK = block_key(b"the bytes the key names").decode()
ROWS: dict[str, Row] = {
    "ds-put-no-slash": Row(("put", "nokey", "-"), 1,
                           "walrusds ds put: INVALID_ARGUMENT: key 'nokey' does not start "
                           "with '/'", stdin=b"x"),
    "ds-put-trailing-slash": Row(("put", "/a/", "-"), 1, "key '/a/' ends with '/'",
                                 stdin=b"x"),
    "ds-put-empty-key": Row(("--hex", "put", "", "-"), 1, "INVALID_ARGUMENT: key is empty",
                            stdin=b"x"),
    "ds-get-key-too-long": Row(("get", "/" + "k" * 3000), 1,
                               "walrusds ds get: INVALID_ARGUMENT: key of 3001 bytes is longer "
                               "than the maximum of 2048 bytes"),
    "ds-rm-key-too-long": Row(("rm", "/" + "k" * 3000), 1, "longer than the maximum"),
    "ds-ls-prefix-too-long": Row(("ls", "/" + "k" * 3000), 0, "", stdout=b""),
    "ds-hex-not-hex": Row(("--hex", "get", "zz"), 1, "walrusds ds: 'zz' is not hex"),
    "ds-put-value-over-limit": Row(("put", "/big", "{tmp}/over-limit"), 1,
                                   "INVALID_ARGUMENT: value of 1048577 bytes for key '/big' is "
                                   "over the maximum of 1048576 bytes"),
    "ds-put-value-over-message-limit": Row(("put", "/huge", "{tmp}/huge"), 1,
                                           "walrusds ds put: RESOURCE_EXHAUSTED: SERVER: "
                                           "Received message larger than max"),
    "ds-put-block-key-mismatch": Row(("put", _BLOCK, "-"), 1,
                                     "does not match the sha2-256 multihash the key names",
                                     stdin=b"other bytes"),
    "ds-put-missing-file": Row(("put", "/k", "{tmp}/missing"), 1,
                               "walrusds ds: {tmp}/missing: No such file or directory"),
    "ds-put-directory": Row(("put", "/k", "{tmp}"), 1, "walrusds ds: {tmp}: Is a directory"),
    "ds-ls-negative-limit": Row(("ls", "--limit", "-1"), 1,
                                "walrusds ds ls: --limit must not be negative"),
    "ds-get-missing-key": Row(("get", "/nope"), 1, "walrusds ds get: /nope: not found"),
    "ds-size-missing-key": Row(("size", "/nope"), 1, "walrusds ds size: /nope: not found"),
    "ds-has-missing-key": Row(("has", "/nope"), 1, "", stdout=b"false\n"),
    "ds-no-token": Row(("get", "/seed/a"), 1, "walrusds ds get: UNAUTHENTICATED: missing or "
                                              "wrong token", token=False),
    "ds-wrong-token": Row(("--token-file", "{tmp}/wrong-token", "rm", "/seed/a"), 1,
                          "walrusds ds rm: UNAUTHENTICATED: missing or wrong token",
                          token=False),
    "ds-token-file-readable": Row(("--token-file", "{tmp}/shared-token", "get", "/seed/a"), 1,
                                  "walrusds ds: token file {tmp}/shared-token is readable by "
                                  "group or others (mode 644); chmod 600 it", token=False),
    "ds-token-plaintext-remote": Row(("get", "/seed/a"), 1,
                                     "walrusds ds: refusing to send the token in plaintext to "
                                     "10.255.255.1:7070: pass --tls-ca",
                                     addr="10.255.255.1:7070"),
    "ds-tls-ca-missing": Row(("--tls-ca", "{tmp}/missing.pem", "get", "/seed/a"), 1,
                             "walrusds ds: {tmp}/missing.pem: No such file or directory"),
    "ds-deadline": Row(("--timeout", "0.001", "put", "/late", "-"), 1,
                       "walrusds ds put: DEADLINE_EXCEEDED", stdin=b"late"),
    "ds-unreachable": Row(("--timeout", "5", "get", "/seed/a"), 1,
                          "walrusds ds get: UNAVAILABLE", addr="unix:{tmp}/nobody.sock"),
    "ds-read-only-put": Row(("put", "/w", "-"), 1,
                            "walrusds ds put: FAILED_PRECONDITION: this walrusds node is "
                            "read-only: send writes to an upload node", stdin=b"w",
                            addr="{ro}"),
    "ds-read-only-rm": Row(("rm", "/seed/a"), 1, "FAILED_PRECONDITION", addr="{ro}"),
    "ds-usage-unknown-op": Row(("frobnicate",), 2, "walrusds ds: error: argument OP: invalid "
                                                   "choice: 'frobnicate'"),
    "ds-usage-missing-key": Row(("get",), 2, "walrusds ds get: error: the following "
                                             "arguments are required: key"),
    "ds-usage-bad-timeout": Row(("--timeout", "soon", "get", "/x"), 2,
                                "walrusds ds: error: argument --timeout: invalid float value: "
                                "'soon'"),
}


def _fill(text: str, stack: Stack) -> str:
    return (text.replace("{tmp}", str(stack.dir)).replace("{rw}", stack.rw.addr)
            .replace("{ro}", stack.ro.addr))


def run_ds(stack: Stack, row: Row) -> subprocess.CompletedProcess[bytes]:
    args = [_fill(a, stack) for a in row.args]
    common = ["--addr", _fill(row.addr, stack)]
    if row.token:
        common += ["--token-file", str(stack.token)]
    return subprocess.run([*WALRUSDS, "ds", *common, *args], input=row.stdin,
                          capture_output=True, timeout=120, check=False)


@dataclasses.dataclass
class Results:
    done: dict[str, subprocess.CompletedProcess[bytes]]
    before: list[tuple[bytes, bytes]]
    after: list[tuple[bytes, bytes]]


@pytest.fixture(scope="module")
def results(stack: Stack) -> Results:
    """Every bad row, run at once (four processes at a time), between two looks at the data."""
    private_file(stack.dir / "wrong-token", "not-the-token-but-long-enough")
    private_file(stack.dir / "shared-token", TOKEN, 0o644)
    (stack.dir / "over-limit").write_bytes(b"x" * (MiB + 1))
    (stack.dir / "huge").write_bytes(b"x" * (40 * MiB))
    before = dataset(stack)
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(zip(ROWS, pool.map(lambda r: run_ds(stack, ROWS[r]), ROWS), strict=True))
    return Results(done, before, dataset(stack))


@pytest.mark.parametrize("row", list(ROWS), ids=list(ROWS))
def test_ds_bad_input(stack: Stack, results: Results, row: str) -> None:
    case = ROWS[row]
    done = results.done[row]
    err = done.stderr.decode(errors="replace")
    assert done.returncode == case.code, err
    assert "Traceback" not in err, err
    if case.stdout is not None:
        assert done.stdout == case.stdout
    if case.message:
        lines = err.splitlines()
        assert lines, "nothing on stderr"
        assert _fill(case.message, stack) in lines[-1], err
        if case.code == 1:
            assert len(lines) == 1, err  # one line, and only that
        else:
            assert lines[0].startswith("usage: walrusds")  # argparse: usage, then the error
    else:
        assert err == ""
    assert results.after == results.before == sorted(SEED.items())
    serving(stack)


def test_ds_accepts_any_key_bytes_and_literal_wildcards(stack: Stack) -> None:
    """Through the command line too: NUL, 0xff and invalid UTF-8 are key bytes (--hex, or raw
    argv bytes), an empty value is a value, and ls prefixes are literal (no LIKE)."""
    def ds(*args: str | bytes, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run([*WALRUSDS, "ds", "--addr", stack.rw.addr, "--token-file",
                               str(stack.token), *args], input=stdin, capture_output=True,
                              timeout=120, check=False)
        assert b"Traceback" not in done.stderr
        return done

    added = [b"/x/\x00\xff", b"/x/caf\xe9", b"/x/a_b/1", b"/x/a%b/1", b"/x/aXb/1",
             b"/x/empty"]
    try:
        assert ds("--hex", "put", "2f782f00ff", "-", stdin=b"nul").returncode == 0
        assert ds("--hex", "get", "2f782f00ff").stdout == b"nul"
        assert ds(b"put", b"/x/caf\xe9", b"-", stdin=b"latin-1").returncode == 0
        assert ds(b"get", b"/x/caf\xe9").stdout == b"latin-1"
        with open_channel(stack.rw.addr) as channel:
            for key in (b"/x/a_b/1", b"/x/a%b/1", b"/x/aXb/1"):
                stub(channel).Put(pb.PutRequest(key=key, value=b"v"),
                                  metadata=token_metadata(TOKEN))
        assert ds("ls", "/x/a_b").stdout == b"/x/a_b/1\n"
        assert ds("put", "/x/empty", "-").returncode == 0
        assert ds("size", "/x/empty").stdout == b"0\n"
        assert b"2f782f00ff" in ds("--hex", "ls", "2f78").stdout.split()
        assert sorted(k for k, _ in dataset(stack) if k.startswith(b"/x/")) == sorted(added)
    finally:
        with open_channel(stack.rw.addr) as channel:
            for key in added:
                stub(channel).Delete(pb.DeleteRequest(key=key),
                                     metadata=token_metadata(TOKEN))
    assert dataset(stack) == sorted(SEED.items())
    serving(stack)


def test_big_value_leaves_server_memory_bounded(stack: Stack) -> None:
    """100 MiB sent to a server whose message limit is ~32 MiB: refused by the transport,
    and the server's peak memory does not grow by anything like the message."""
    def peak() -> int:
        status = Path(f"/proc/{stack.rw.proc.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines()
                        if line.startswith("VmHWM:"))) * 1024

    first = peak()
    with (open_channel(stack.rw.addr, max_message=256 * MiB) as channel,
          pytest.raises(grpc.RpcError) as err):
        stub(channel).Put(pb.PutRequest(key=b"/huge", value=b"x" * (100 * MiB)),
                          metadata=token_metadata(TOKEN), timeout=60)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert peak() - first < 48 * MiB
    assert dataset(stack) == sorted(SEED.items())
    serving(stack)
