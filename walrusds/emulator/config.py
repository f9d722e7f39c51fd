"""Settings of one emulator instance (frozen; built by the CLI, ``walrusds up`` or a test)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from walrusds.costs import DEFAULT_N_SHARDS
from walrusds.emulator.clock import MAX_EPOCHS_AHEAD
from walrusds.emulator.network import NetworkProfile

__all__ = ["DEFAULT_MAX_BODY_SIZE", "EmulatorConfig"]

#: The publisher's default ``--max-body-size``: 10 240 KiB.
DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class EmulatorConfig:
    """What a ``walrus daemon`` operator (and the network) would decide.

    Load-shedding defaults are the daemon's: publisher 8 concurrent + 8 buffered, aggregator 256
    + 320. Prices are FROST per MiB storage unit; the defaults reproduce the 17-byte example of
    the Walrus docs (63 units, 1 epoch, ``cost`` 132 300).
    """

    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    #: None: everything in memory. Otherwise blobs, objects and the epoch survive a restart.
    data_dir: Path | None = None
    #: The epoch of a fresh emulator (a saved state in ``data_dir`` wins over it).
    start_epoch: int = 1
    #: None: the epoch moves only through the control surface.
    epoch_seconds: float | None = None
    max_epochs_ahead: int = MAX_EPOCHS_AHEAD
    store_concurrency: int = 8
    store_buffer: int = 8
    read_concurrency: int = 256
    read_buffer: int = 320
    storage_price: int = 1000
    write_price: int = 1100
    n_shards: int = DEFAULT_N_SHARDS
    #: Real publishers report ``certifiedEpoch: null``; False reports the current epoch.
    certified_epoch_null: bool = True
    #: Seed of the random draws of probabilistic faults (None: unpredictable).
    seed: int | None = None
    #: Seconds added to the time to first byte of every publisher and aggregator answer.
    latency: float = 0.0
    #: Bytes/s of the whole link, shared by all connections, per direction (None: no cap).
    bandwidth: float | None = None
    #: Bytes/s of one connection (one answer or upload), per direction (None: no cap).
    connection_bandwidth: float | None = None

    def __post_init__(self) -> None:
        if self.data_dir is not None:  # accept a str too
            object.__setattr__(self, "data_dir", Path(self.data_dir))
        for name in ("max_body_size", "store_concurrency", "read_concurrency", "n_shards"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        for name in ("store_buffer", "read_buffer", "storage_price", "write_price",
                     "start_epoch"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.epoch_seconds is not None and self.epoch_seconds <= 0:
            raise ValueError("epoch_seconds must be positive")
        if self.max_epochs_ahead < 1:
            raise ValueError("max_epochs_ahead must be positive")
        _ = self.network  # refuses a bad latency or bandwidth now, not when serving

    @property
    def network(self) -> NetworkProfile:
        """The distant-network profile these settings start with."""
        return NetworkProfile(latency=self.latency, bandwidth=self.bandwidth,
                              connection_bandwidth=self.connection_bandwidth)
