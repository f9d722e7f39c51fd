"""The shim over TCP with TLS and a token, as between machines: `walrusds kubo-init` and the
Go client inside ``ipfs-walrus`` both verify the service's certificate and send the token."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests.kubo.ipfs import Kubo
from tests.kubo.support import WALRUSDS, ipfs_walrus, serve


def openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def make_certificates(tmp: Path) -> None:
    """A private CA and a certificate for 127.0.0.1 and localhost signed by it."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=tmp)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr", cwd=tmp)
    (tmp / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem",
            cwd=tmp)
    (tmp / "server.key").chmod(0o600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def kubo_init(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WALRUSDS, "kubo-init", str(repo), "--profile", "test",
                           "--ipfs", str(ipfs_walrus()), *args],
                          capture_output=True, text=True, timeout=300, check=False)


def test_tls_and_token_from_kubo_init_to_every_call(pg_dsn: str, schema: str,
                                                    tmp_path: Path) -> None:
    make_certificates(tmp_path)
    token = tmp_path / "token"
    token.write_text("a-token-long-enough-to-be-accepted\n")
    token.chmod(0o600)
    addr = f"127.0.0.1:{free_port()}"
    service, _ = serve(tmp_path, "tls", dsn=pg_dsn, schema=schema, listen=addr,
                       security_tls_cert=str(tmp_path / "server.pem"),
                       security_tls_key=str(tmp_path / "server.key"),
                       security_token_file=str(token))
    try:
        plaintext = kubo_init(tmp_path / "plain", "--addr", addr, "--token-file", str(token))
        assert plaintext.returncode == 1 and "cannot reach walrusds" in plaintext.stderr

        tls = ["--tls-ca", str(tmp_path / "ca.pem")]
        no_token = kubo_init(tmp_path / "no-token", "--addr", addr, *tls)
        assert no_token.returncode == 1 and "refused the token" in no_token.stderr

        made = kubo_init(tmp_path / "ipfs", "--addr", addr, "--token-file", str(token), *tls)
        assert made.returncode == 0, made.stderr
        spec = (tmp_path / "ipfs" / "datastore_spec").read_text()
        assert "ca.pem" not in spec and "token" not in spec and addr not in spec

        node = Kubo(tmp_path / "ipfs")
        data = os.urandom(700_000)
        (tmp_path / "data").write_bytes(data)
        cid = node.text("add", "-Q", str(tmp_path / "data")).strip()
        assert node.run("cat", cid).stdout == data
    finally:
        assert service.stop() == 0, service.log.read_text()
