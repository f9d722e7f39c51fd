"""Holding a Kubo repo's lock, so no daemon (or other ``ipfs`` command) uses it meanwhile.

Kubo locks ``$IPFS_PATH/repo.lock`` for as long as any command or the daemon has the repo open:
an empty file carrying a POSIX record lock (``fcntl(F_SETLK, F_WRLCK)`` on the whole file),
which the kernel drops when the holder exits, however it exits. :func:`fcntl.lockf` takes the
very same kind of lock, so while the import holds it a daemon refuses to start ("someone else
has the lock"), and if a daemon holds it the import refuses with one clear line.

Kubo refuses a lock file that is not empty, so nothing is ever written to it; a file this
module created is removed again on release, as Kubo removes its own.

A running daemon also leaves its API address in ``$IPFS_PATH/api`` (a multiaddr such as
``/ip4/127.0.0.1/tcp/5001``), which ``ipfs`` commands use to reach it. The file outlives a
crashed daemon, so it only counts when something answers there: then the repo is refused too,
lock or no lock (a repo on a filesystem without working locks, a daemon that lost its lock).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path
from types import TracebackType

from walrusds.errors import ConfigError

LOCK_FILE = "repo.lock"
API_FILE = "api"
API_PROBE_TIMEOUT = 1.0


class RepoLocked(ConfigError):
    """The repo is in use by a Kubo daemon or another ``ipfs`` command."""


class RepoLock:
    """``with RepoLock(repo):`` holds Kubo's repo lock, or raises :class:`RepoLocked`."""

    def __init__(self, repo: Path) -> None:
        self.path = repo / LOCK_FILE
        self._fd: int | None = None
        self._created = False

    def acquire(self) -> None:
        created = not self.path.exists()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot open {self.path}: {exc.strerror}") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                raise RepoLocked(self._held_message()) from None
            raise ConfigError(f"cannot lock {self.path}: {exc.strerror}") from None
        self._fd, self._created = fd, created
        if (address := live_api(self.path.parent)) is not None:
            self.release()
            raise RepoLocked(f"a Kubo daemon answers at {address} ({self.path.parent / API_FILE}"
                             f"): stop it first (`IPFS_PATH={self.path.parent} ipfs shutdown`), "
                             "then run the import again")

    def _held_message(self) -> str:
        repo = self.path.parent
        who = ("the Kubo daemon" if (repo / API_FILE).exists()
               else "a Kubo daemon or another ipfs command")
        return (f"{who} is using {repo} ({self.path} is locked): stop it first "
                f"(`IPFS_PATH={repo} ipfs shutdown`), then run the import again")

    def release(self) -> None:
        if self._fd is None:
            return
        if self._created:
            # Like Kubo: remove the file while still holding the lock, then let go.
            self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RepoLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def is_locked(repo: Path) -> bool:
    """Whether a Kubo process holds the repo right now. Changes nothing: Kubo removes the file
    when it lets go, so a missing file means unlocked, and an existing one is only tested.
    Never call it while this process holds a :class:`RepoLock` on the repo: closing any
    descriptor of the file drops a process's POSIX locks on it."""
    try:
        fd = os.open(repo / LOCK_FILE, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EACCES, errno.EAGAIN)
    finally:
        os.close(fd)  # closing drops a lock this test may have taken
    return False


def live_api(repo: Path) -> str | None:
    """The address in ``repo/api`` if something accepts connections there, else ``None``."""
    try:
        address = (repo / API_FILE).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    parts = address.split("/")
    try:
        if len(parts) > 2 and parts[1] == "unix":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(API_PROBE_TIMEOUT)
                sock.connect(address[len("/unix"):])
        elif len(parts) >= 5 and parts[3] == "tcp" and parts[1] in (
                "ip4", "ip6", "dns", "dns4", "dns6"):
            socket.create_connection((parts[2], int(parts[4])), API_PROBE_TIMEOUT).close()
        else:
            return None
    except (OSError, ValueError):
        return None
    return address
