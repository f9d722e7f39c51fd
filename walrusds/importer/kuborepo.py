"""Recognizing a Kubo repo whose ``/blocks`` is on flatfs, from its files alone.

A Kubo repo (``IPFS_PATH``) holds ``config`` (JSON; ``Datastore.Spec`` describes the datastores),
``datastore_spec`` (Kubo's fingerprint of that layout, compared byte for byte at every start),
``version`` (the fs-repo version) and the datastores themselves. Stock Kubo mounts flatfs at
``/blocks``, either directly (``{"type": "flatfs", "mountpoint": "/blocks", ...}``, current
releases) or inside a ``measure`` wrapper (``{"type": "measure", "child": {"type": "flatfs",
...}}``, older ones). Every check here fails with one :class:`ConfigError` line naming the file
and what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from walrusds.errors import ConfigError
from walrusds.importer.flatfs import Sharding, read_sharding

BLOCKS = "/blocks"
WALRUSDS_TYPE = "walrusds"


@dataclass(frozen=True)
class FlatfsRepo:
    """A Kubo repo to import: where its blocks are and the files the switch rewrites."""

    root: Path
    config: dict[str, Any]
    spec: dict[str, Any]  # datastore_spec, parsed
    blocks_dir: Path
    sharding: Sharding
    version: str

    @property
    def config_file(self) -> Path:
        return self.root / "config"

    @property
    def spec_file(self) -> Path:
        return self.root / "datastore_spec"

    @property
    def spec_blocks_type(self) -> str:
        """The type ``datastore_spec`` gives ``/blocks``: ``flatfs``, or ``walrusds`` when an
        earlier switch stopped between rewriting ``datastore_spec`` and ``config``."""
        entry = blocks_entry(self.spec.get("mounts"))
        return str(entry.get("type")) if entry else ""


def blocks_entry(mounts: Any) -> dict[str, Any] | None:
    """The ``/blocks`` entry of a mount list, or ``None``."""
    if not isinstance(mounts, list):
        return None
    for mount in mounts:
        if isinstance(mount, dict) and mount.get("mountpoint") == BLOCKS:
            return mount
    return None


def flatfs_of(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The flatfs spec of a ``/blocks`` entry, looking inside a ``measure`` wrapper."""
    if entry.get("type") == "measure" and isinstance(entry.get("child"), dict):
        entry = entry["child"]
    return entry if entry.get("type") == "flatfs" else None


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}): is this {what}?") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object: is this {what}?")
    return data


def open_flatfs_repo(path: Path) -> FlatfsRepo:
    """Check that ``path`` is a Kubo repo with flatfs at ``/blocks`` and describe it."""
    root = path.expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"{root} does not exist or is not a directory: give the Kubo repo "
                          "(IPFS_PATH, ~/.ipfs by default)")
    if not (root / "config").is_file():
        raise ConfigError(f"{root} is not a Kubo repo: it has no config file (give IPFS_PATH, "
                          "~/.ipfs by default)")
    config = _read_json(root / "config", "a Kubo config")
    spec_root = config.get("Datastore", {}).get("Spec") if isinstance(
        config.get("Datastore"), dict) else None
    if not isinstance(spec_root, dict):
        raise ConfigError(f"{root / 'config'} has no Datastore.Spec: not a Kubo repo config")
    entry = blocks_entry(spec_root.get("mounts")) if spec_root.get("type") == "mount" else None
    if entry is None:
        raise ConfigError(f"{root / 'config'} mounts no datastore at /blocks "
                          f"(Datastore.Spec is {spec_root.get('type')!r}): only repos with "
                          "flatfs at /blocks can be imported")
    if entry.get("type") == WALRUSDS_TYPE:
        raise ConfigError(f"/blocks of {root} is already on walrusds: nothing to import (to "
                          "import again, first restore config.pre-walrusds and "
                          "datastore_spec.pre-walrusds)")
    flatfs = flatfs_of(entry)
    if flatfs is None:
        inner = entry.get("child") if entry.get("type") == "measure" else entry
        kind = inner.get("type") if isinstance(inner, dict) else None
        raise ConfigError(f"/blocks of {root} is on {kind!r}, not flatfs: only flatfs "
                          "repos can be imported")
    if not (root / "datastore_spec").is_file():
        raise ConfigError(f"{root} has no datastore_spec: not an initialized Kubo repo")
    spec = _read_json(root / "datastore_spec", "a Kubo datastore_spec")
    spec_entry = blocks_entry(spec.get("mounts"))
    if spec_entry is None or spec_entry.get("type") not in ("flatfs", WALRUSDS_TYPE):
        raise ConfigError(f"{root / 'datastore_spec'} does not describe flatfs at /blocks as "
                          f"{root / 'config'} does: Kubo would not open this repo either")
    raw_path = flatfs.get("path")
    if not isinstance(raw_path, str) or not raw_path:
        raise ConfigError(f"the flatfs mount of {root / 'config'} has no path")
    blocks_dir = root / raw_path  # an absolute path replaces the root
    if not blocks_dir.is_dir():
        raise ConfigError(f"{blocks_dir} (the flatfs directory of {root}) does not exist")
    try:
        version = (root / "version").read_text().strip()
    except OSError:
        version = ""
    return FlatfsRepo(root=root, config=config, spec=spec, blocks_dir=blocks_dir,
                      sharding=read_sharding(blocks_dir), version=version)
