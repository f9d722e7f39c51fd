"""Switching an imported Kubo repo's ``/blocks`` from flatfs to walrusds.

What the repo gets is exactly what ``walrusds kubo-init`` gives a new one: :func:`prepare`
runs kubo-init's own ``ipfs-walrus init --profile walrusds`` (same environment, same service
settings) in a scratch repo and takes the ``/blocks`` entry of the ``config`` and of the
``datastore_spec`` Kubo wrote there. The repo keeps every other mount (its keys, pins and MFS
root stay in its local ``/`` datastore) and every other setting.

``datastore_spec`` must equal, byte for byte, what Kubo derives from the config: Go's
``encoding/json`` of the layout (keys sorted, no spaces, ``<``, ``>``, ``&`` escaped). The new
file is the old one with its ``/blocks`` entry replaced, encoded that way; and before anything
is declared done, Kubo itself opens the switched repo (:func:`check_opens`) — if it disagrees,
both files are put back from the backups.

Order, for crash safety: backups first (``config.pre-walrusds``, ``datastore_spec.pre-walrusds``),
then ``datastore_spec``, then ``config``, each written to a temporary file, fsynced and renamed.
Interrupted in between, Kubo refuses to start (the two disagree) and the next import, which
still sees flatfs in the config, finishes the switch and keeps the first backups.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from walrusds.cli.cmd_kubo_init import (
    PROFILE,
    Target,
    check_opens,
    check_repo,
    init_repo,
)
from walrusds.errors import ConfigError, WalrusdsError
from walrusds.importer.kuborepo import BLOCKS, WALRUSDS_TYPE, FlatfsRepo, blocks_entry

BACKUP_SUFFIX = ".pre-walrusds"


@dataclass(frozen=True)
class SwitchPlan:
    """The ``/blocks`` entries kubo-init writes for this service and dataset."""

    mount: dict[str, Any]  # for config's Datastore.Spec.mounts
    disk: dict[str, Any]  # for datastore_spec's mounts
    dataset: str
    addresses: list[str]


def go_json(value: Any) -> str:
    """``value`` encoded as Go's ``encoding/json`` encodes a ``map[string]any``."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)  # only ever inside strings
    return text


def prepare(ipfs: Path, repo: FlatfsRepo, target: Target, dataset: str) -> SwitchPlan:
    """What ``walrusds kubo-init`` would write for ``/blocks``, from a scratch repo; and a check
    that ``ipfs-walrus`` can open this repo's fs-repo version without a migration."""
    with tempfile.TemporaryDirectory(prefix="walrusds-import-") as tmp:
        scratch = Path(tmp) / "repo"
        init_repo(ipfs, scratch, target, dataset, [PROFILE], "--empty-repo")
        check_repo(scratch, dataset, target.addresses)
        config = json.loads((scratch / "config").read_text())
        mount = blocks_entry(config["Datastore"]["Spec"]["mounts"])
        disk = blocks_entry(json.loads((scratch / "datastore_spec").read_text())["mounts"])
        version = (scratch / "version").read_text().strip()
    if mount is None or disk is None:
        raise ConfigError(f"{ipfs.name} init --profile {PROFILE} mounted nothing at /blocks")
    if repo.version and repo.version != version:
        raise ConfigError(f"{repo.root} is fs-repo version {repo.version} and {ipfs.name} "
                          f"uses version {version}: migrate the repo first (for example "
                          f"`IPFS_PATH={repo.root} {ipfs} repo migrate`), or import with "
                          "--no-switch")
    return SwitchPlan(mount=mount, disk=disk, dataset=dataset, addresses=target.addresses)


def switched_config(config: dict[str, Any], mount: dict[str, Any]) -> dict[str, Any]:
    """The config with ``mount`` at ``/blocks`` first and every other mount kept, as the
    walrusds profile mounts it."""
    spec = config["Datastore"]["Spec"]
    others = [m for m in spec["mounts"] if m.get("mountpoint") != BLOCKS]
    datastore = {**config["Datastore"], "Spec": {"mounts": [mount, *others], "type": "mount"}}
    return {**config, "Datastore": datastore}


def switched_spec(spec: dict[str, Any], disk: dict[str, Any]) -> dict[str, Any]:
    """``datastore_spec`` with its ``/blocks`` entry replaced (Kubo sorts mounts by mountpoint,
    so the entry keeps its place)."""
    mounts = [disk if m.get("mountpoint") == BLOCKS else m for m in spec["mounts"]]
    return {**spec, "mounts": mounts}


def write_atomic(path: Path, data: bytes, like: Path | None = None) -> None:
    """Replace ``path`` by ``data`` all at once (temporary file, fsync, rename, fsync of the
    directory), with the permissions of ``like`` (0600 if there is none)."""
    mode = like.stat().st_mode & 0o777 if like is not None and like.exists() else 0o600
    tmp = path.with_name(f".{path.name}.walrusds-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def backups(repo: FlatfsRepo) -> tuple[Path, Path]:
    return (repo.config_file.with_name("config" + BACKUP_SUFFIX),
            repo.spec_file.with_name("datastore_spec" + BACKUP_SUFFIX))


def apply(repo: FlatfsRepo, plan: SwitchPlan) -> tuple[Path, Path]:
    """Back up and rewrite ``datastore_spec`` and ``config``; returns the backups."""
    config_backup, spec_backup = backups(repo)
    if repo.spec_blocks_type == WALRUSDS_TYPE:  # an earlier switch stopped half-way
        if not spec_backup.exists():
            raise ConfigError(f"{repo.spec_file} already puts /blocks on walrusds while "
                              f"{repo.config_file} keeps flatfs, and there is no {spec_backup}: "
                              "restore the original datastore_spec first")
    else:
        write_atomic(spec_backup, repo.spec_file.read_bytes(), like=repo.spec_file)
    write_atomic(config_backup, repo.config_file.read_bytes(), like=repo.config_file)
    write_atomic(repo.spec_file, go_json(switched_spec(repo.spec, plan.disk)).encode(),
                 like=repo.spec_file)
    config = switched_config(repo.config, plan.mount)
    write_atomic(repo.config_file,
                 (json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode(),
                 like=repo.config_file)
    return config_backup, spec_backup


def restore(repo: FlatfsRepo) -> None:
    """Put the backed-up ``config`` and ``datastore_spec`` back."""
    config_backup, spec_backup = backups(repo)
    write_atomic(repo.spec_file, spec_backup.read_bytes(), like=spec_backup)
    write_atomic(repo.config_file, config_backup.read_bytes(), like=config_backup)


def verify(ipfs: Path, repo: FlatfsRepo, plan: SwitchPlan) -> None:
    """Check the switched files as kubo-init checks a new repo, then let Kubo open the repo;
    on any failure restore the backups and say so."""
    try:
        check_repo(repo.root, plan.dataset, plan.addresses)
        check_opens(ipfs, repo.root, f"{repo.root} switched to walrusds")
    except WalrusdsError as exc:
        restore(repo)
        raise ConfigError(f"{exc}; config and datastore_spec were restored from "
                          f"{BACKUP_SUFFIX} backups, /blocks is still on flatfs") from None
