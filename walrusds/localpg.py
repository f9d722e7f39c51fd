"""A private PostgreSQL cluster in a directory, run from PostgreSQL's own binaries.

``walrusds up`` uses it for the embedded default. PostgreSQL refuses to run as root, so when
walrusds runs as root the cluster is initialised and started as an unprivileged OS user
(``WALRUSDS_PG_OS_USER``, default ``postgres``, which Debian's packages create); ordinary users
run it as themselves. The server listens on 127.0.0.1 only, with password authentication; the
password is generated at creation and kept in a 0600 file beside the cluster.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from walrusds.errors import ConfigError

log = logging.getLogger(__name__)

SUPERUSER = "walrusds"
DATABASE = "walrusds"


def find_bindir() -> Path:
    """Locate PostgreSQL's server binaries (initdb, pg_ctl, postgres)."""
    candidates: list[Path] = []
    if env := os.environ.get("WALRUSDS_PG_BINDIR"):
        candidates.append(Path(env))
    if shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                 check=True).stdout.strip()
            candidates.append(Path(out))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                      key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit()
                      else 0, reverse=True)
    candidates.extend(Path(p) for p in versions)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise ConfigError(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found; run `make setup` "
        "(it installs Debian's postgresql package) or set WALRUSDS_PG_BINDIR"
    )


def cluster_os_user() -> pwd.struct_passwd | None:
    """The OS user that runs the cluster: None means the current user."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("WALRUSDS_PG_OS_USER", "postgres")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(
            f"running as root, and PostgreSQL refuses root: create the unprivileged user "
            f"{name!r} (make setup does) or set WALRUSDS_PG_OS_USER"
        ) from None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LocalCluster:
    """A PostgreSQL cluster whose data lives in ``datadir``."""

    datadir: Path
    port: int = 0

    @property
    def password_file(self) -> Path:
        return self.datadir.parent / (self.datadir.name + ".password")

    @property
    def port_file(self) -> Path:
        return self.datadir.parent / (self.datadir.name + ".port")

    @property
    def log_file(self) -> Path:
        return self.datadir.parent / (self.datadir.name + ".log")

    def dsn(self) -> str:
        password = self.password_file.read_text().strip()
        return (f"host=127.0.0.1 port={self.port} dbname={DATABASE} user={SUPERUSER} "
                f"password={password}")

    # -- lifecycle ---------------------------------------------------------------------------

    def ensure_created(self) -> bool:
        """Create the cluster on first use; return True when it was created now."""
        if (self.datadir / "PG_VERSION").exists():
            return False
        bindir = find_bindir()
        owner = cluster_os_user()
        self.datadir.parent.mkdir(parents=True, exist_ok=True)
        self.datadir.mkdir(mode=0o700, exist_ok=True)
        if owner is not None:
            os.chown(self.datadir, owner.pw_uid, owner.pw_gid)
            _require_reachable(self.datadir, owner)
        password = secrets.token_urlsafe(24)
        pwfile = self.datadir.parent / (self.datadir.name + ".initdb-pw")
        _write_private(pwfile, password + "\n", owner)
        _write_private(self.password_file, password + "\n", None)
        try:
            self._run(owner, [str(bindir / "initdb"), "-D", str(self.datadir), "-U", SUPERUSER,
                              "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
                              f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C"])
        finally:
            pwfile.unlink(missing_ok=True)
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# walrusds private cluster\n"
                "listen_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\n"
                "max_connections = 200\n"
                "shared_buffers = 256MB\n"
                "synchronous_commit = on\n"
            )
        log.info("created PostgreSQL cluster in %s", self.datadir)
        return True

    def start(self) -> None:
        """Start the server (reusing the last port when it is free) and create the database."""
        bindir = find_bindir()
        owner = cluster_os_user()
        if self.port == 0:
            self.port = _saved_port(self.port_file) or free_port()
        self.port_file.write_text(f"{self.port}\n")
        if owner is not None:
            _touch_owned(self.log_file, owner)
        self._run(owner, [str(bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D",
                          str(self.datadir), "-l", str(self.log_file), "-o", f"-p {self.port}"])
        self._ensure_database()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``mode`` is pg_ctl's: smart, fast or immediate."""
        bindir = find_bindir()
        if not (self.datadir / "postmaster.pid").exists():
            return
        self._run(cluster_os_user(), [str(bindir / "pg_ctl"), "stop", "-w", "-t", "60", "-m",
                                      mode, "-D", str(self.datadir)])

    def running(self) -> bool:
        bindir = find_bindir()
        proc = subprocess.run(
            _as_user(cluster_os_user(), [str(bindir / "pg_ctl"), "status", "-D",
                                         str(self.datadir)]),
            capture_output=True, check=False)
        return proc.returncode == 0

    def _ensure_database(self) -> None:
        import psycopg

        admin = self.dsn().replace(f"dbname={DATABASE}", "dbname=postgres")
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(admin, autocommit=True) as conn:
                    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                          (DATABASE,)).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{DATABASE}"')
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _run(self, owner: pwd.struct_passwd | None, argv: list[str]) -> None:
        proc = subprocess.run(_as_user(owner, argv), capture_output=True, text=True, check=False,
                              cwd="/")
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            hint = ""
            if self.log_file.exists():
                hint = f" (see {self.log_file})"
            raise ConfigError(f"{Path(argv[0]).name} {argv[1]} failed{hint}: "
                              + " / ".join(detail))


def _as_user(owner: pwd.struct_passwd | None, argv: list[str]) -> list[str]:
    if owner is None:
        return argv
    runuser = shutil.which("runuser") or shutil.which("setpriv")
    if runuser and runuser.endswith("runuser"):
        return [runuser, "-u", owner.pw_name, "--", *argv]
    if runuser:
        return [runuser, f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}",
                "--init-groups", *argv]
    raise ConfigError("running as root needs runuser or setpriv to start PostgreSQL")


def _require_reachable(path: Path, owner: pwd.struct_passwd) -> None:
    """Fail early, and clearly, when the cluster user cannot reach ``path``."""
    proc = subprocess.run(_as_user(owner, ["test", "-w", str(path)]), check=False)
    if proc.returncode != 0:
        raise ConfigError(
            f"the PostgreSQL user {owner.pw_name!r} cannot reach {path}: a parent directory is "
            "private to root; choose a --data-dir outside it (for example under /var/tmp)"
        )


def _write_private(path: Path, text: str, owner: pwd.struct_passwd | None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)


def _touch_owned(path: Path, owner: pwd.struct_passwd) -> None:
    path.touch(exist_ok=True)
    os.chown(path, owner.pw_uid, owner.pw_gid)


def _saved_port(port_file: Path) -> int | None:
    try:
        port = int(port_file.read_text().strip())
    except (OSError, ValueError):
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return None
    return port
