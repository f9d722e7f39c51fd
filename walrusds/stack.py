"""The embedded local stack behind ``walrusds up``: a private PostgreSQL cluster, the Walrus
emulator and the service, all in one data directory, with nothing to configure.

Layout of the data directory::

    pg/              the PostgreSQL cluster (pg.password, pg.port, pg.log beside it)
    emulator/        the Walrus emulator's blobs and epoch (unless [walrus] names endpoints)
    walrusds.sock    the gRPC socket (mode 0600), unless --listen says otherwise
    up.json          written once everything serves, removed at stop (mode 0600):
                     {"grpc": ..., "postgres_dsn": ..., "emulator": ..., "metrics": ...,
                      "pid": ...}
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from walrusds.config import Config, WalrusConfig
from walrusds.emulator.config import DEFAULT_MAX_BODY_SIZE, EmulatorConfig
from walrusds.emulator.runner import RunningEmulator, start_emulator
from walrusds.localpg import LocalCluster, cluster_os_user
from walrusds.server.app import Service
from walrusds.server.listen import UNIX_PATH_MAX

log = logging.getLogger(__name__)


def default_data_dir() -> Path:
    if env := os.environ.get("WALRUSDS_HOME"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/walrusds")
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "walrusds"


@dataclass
class LocalStack:
    data_dir: Path
    config: Config
    listen: str | None = None
    cluster: LocalCluster | None = None
    emulator: RunningEmulator | None = None
    service: Service | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def up_file(self) -> Path:
        return self.data_dir / "up.json"

    async def start(self) -> None:
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if cluster_os_user() is not None:
            # the unprivileged PostgreSQL user must traverse into the directory
            os.chmod(self.data_dir, os.stat(self.data_dir).st_mode | 0o711)
        self.up_file.unlink(missing_ok=True)
        self.cluster = LocalCluster(self.data_dir / "pg")
        if self.cluster.ensure_created():
            print(f"walrusds up: created a PostgreSQL cluster in {self.cluster.datadir}",
                  flush=True)
        self.cluster.start()
        try:
            walrus = await self._walrus()
            config = dataclasses.replace(
                self.config,
                listen=self.listen or _default_listen(self.data_dir),
                postgres=dataclasses.replace(self.config.postgres, dsn=self.cluster.dsn()),
                walrus=walrus,
            ).validate()
            self.service = await Service.start(config)
        except BaseException:
            if self.emulator is not None:
                await self.emulator.stop()
            self.cluster.stop()
            raise
        self.info = {"grpc": self.service.address, "postgres_dsn": config.postgres.dsn,
                     "dataset": self.service.identity.name, "pid": os.getpid(),
                     "walrus_publishers": list(walrus.publishers),
                     "walrus_aggregators": list(walrus.aggregators),
                     "emulator": self.emulator.url if self.emulator else None,
                     "metrics": self._metrics_url()}
        fd = os.open(self.up_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.info, f, indent=2)

    def _metrics_url(self) -> str | None:
        """The Prometheus endpoint (None: turned off, or its port is still taken)."""
        metrics = self.service.metrics if self.service is not None else None
        endpoint = metrics.endpoint if metrics is not None else None
        return endpoint.url if endpoint is not None else None

    async def _walrus(self) -> WalrusConfig:
        """The configured Walrus endpoints, or an emulator in DATA_DIR/emulator.

        The emulator's body limit is raised above the pack target, as the operator of a
        self-hosted publisher would with ``--max-body-size``.
        """
        walrus = self.config.walrus
        if walrus.publishers or walrus.aggregators:
            return walrus
        max_body = max(DEFAULT_MAX_BODY_SIZE, 2 * self.config.pack.target_size)
        self.emulator = await start_emulator(EmulatorConfig(
            data_dir=self.data_dir / "emulator", max_body_size=max_body))
        print(f"walrusds up: Walrus emulator on {self.emulator.url} "
              f"(blobs in {self.data_dir / 'emulator'})", flush=True)
        return dataclasses.replace(walrus, publishers=(self.emulator.url,),
                                   aggregators=(self.emulator.url,))

    async def stop(self) -> None:
        self.up_file.unlink(missing_ok=True)
        try:
            if self.service is not None:
                await self.service.stop()
        finally:
            try:
                if self.emulator is not None:
                    await self.emulator.stop()
            finally:
                if self.cluster is not None:
                    self.cluster.stop()


def _default_listen(data_dir: Path) -> str:
    sock = data_dir / "walrusds.sock"
    if len(str(sock).encode()) <= UNIX_PATH_MAX:
        return f"unix:{sock}"
    return "127.0.0.1:0"
