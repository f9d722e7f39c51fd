"""A primary PostgreSQL cluster and a hot standby of it, made here with pg_basebackup.

Both are :class:`walrusds.localpg.LocalCluster` directories on loopback with password
authentication. PostgreSQL refuses root, so as root every server command, pg_basebackup
included, runs as the unprivileged cluster user (``WALRUSDS_PG_OS_USER``, default
``postgres``); as any other user they run as that user. Servers are stopped by their data
directory (pg_ctl reads the postmaster's PID from it), never by name.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from walrusds.localpg import LocalCluster, cluster_os_user, find_bindir, free_port

PRIMARY_SETTINGS = (
    "\n# scale tests: a primary with a streaming standby\n"
    "wal_level = replica\n"
    "max_wal_senders = 4\n"
    "fsync = off\n"
)


def as_cluster_user(argv: list[str]) -> list[str]:
    owner = cluster_os_user()
    if owner is None:
        return argv
    return ["runuser", "-u", owner.pw_name, "--", *argv]


def reachable_dir(path: Path) -> Path:
    """A directory the cluster user can traverse (pytest makes them 0700)."""
    path.mkdir(parents=True, exist_ok=True)
    if cluster_os_user() is not None:
        os.chmod(path, 0o711)
    return path


def make_primary(base: Path) -> LocalCluster:
    primary = LocalCluster(reachable_dir(base) / "primary")
    primary.ensure_created()
    with open(primary.datadir / "postgresql.conf", "a") as conf:
        conf.write(PRIMARY_SETTINGS)
    primary.start()
    return primary


def make_standby(primary: LocalCluster, base: Path) -> LocalCluster:
    """pg_basebackup -R of ``primary`` (streaming WAL), started as a hot standby."""
    standby = LocalCluster(reachable_dir(base) / "standby", port=free_port())
    owner: pwd.struct_passwd | None = cluster_os_user()
    standby.datadir.mkdir(mode=0o700)
    if owner is not None:
        os.chown(standby.datadir, owner.pw_uid, owner.pw_gid)
    shutil.copy(primary.password_file, standby.password_file)
    # -d carries the password, so -R writes it into primary_conninfo for the walreceiver
    argv = [str(find_bindir() / "pg_basebackup"), "-D", str(standby.datadir),
            "-d", primary.dsn(), "-R", "-X", "stream", "-c", "fast", "--no-sync"]
    proc = subprocess.run(as_cluster_user(argv), capture_output=True, text=True, cwd="/",
                          check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr.replace(primary.password_file.read_text().strip(),
                                                     "***")
    assert (standby.datadir / "standby.signal").exists()
    standby.start()
    return standby


def sql(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def wait_replayed(primary: LocalCluster, standby: LocalCluster, within: float = 20) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    (target,) = sql(primary.dsn(), "SELECT pg_current_wal_lsn()::text")[0]
    deadline = time.monotonic() + within
    while True:
        (done,) = sql(standby.dsn(), "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                      target)[0]
        if done:
            return
        assert time.monotonic() < deadline, "the standby did not catch up"
        time.sleep(0.05)


@dataclass
class Clusters:
    primary: LocalCluster
    standby: LocalCluster

    def stop(self) -> None:
        for cluster in (self.standby, self.primary):
            if cluster.running():
                cluster.stop("immediate")
