"""Running the real ``ipfs-walrus`` binary against one Kubo repo."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.kubo.support import ipfs_walrus


class Kubo:
    """One Kubo repo (IPFS_PATH) driven through the ipfs-walrus command line."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.binary = ipfs_walrus()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
        self.env["IPFS_PATH"] = str(repo)

    def run(self, *args: str, timeout: float = 300,
            check: bool = True) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run([str(self.binary), *args], env=self.env, capture_output=True,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"ipfs {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stderr.decode(errors='replace')}")
        return result

    def text(self, *args: str, timeout: float = 300) -> str:
        return self.run(*args, timeout=timeout).stdout.decode()

    def local_keys(self) -> set[str]:
        """Every block in /blocks as Kubo lists it (CIDv1 raw, one per multihash)."""
        return set(self.text("refs", "local").split())

    def as_local_keys(self, cids: list[str]) -> set[str]:
        """CIDs in the form `ipfs refs local` prints them."""
        out = self.text("cid", "format", "-v", "1", "--mc", "raw", "-b", "base32", *cids)
        return set(out.split())

    def start_daemon(self, log: Path) -> Daemon:
        proc = subprocess.Popen([str(self.binary), "daemon"], env=self.env,
                                stdout=log.open("wb"), stderr=subprocess.STDOUT)
        return Daemon(proc, log)


class Daemon:
    """An `ipfs daemon`; stopped by signalling its PID."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log
        self.gateway = self._wait_ready()

    def _wait_ready(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            if self.proc.poll() is not None:
                raise AssertionError(f"ipfs daemon exited:\n{text}")
            if "Daemon is ready" in text:
                for line in text.splitlines():
                    if line.startswith("Gateway server listening on /ip4/127.0.0.1/tcp/"):
                        return "http://127.0.0.1:" + line.rsplit("/", 1)[1]
                raise AssertionError(f"no loopback gateway address:\n{text}")
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"ipfs daemon not ready:\n{self.log.read_text(errors='replace')}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=10)
