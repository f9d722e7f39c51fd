"""Reading a Kubo flatfs blocks directory without Kubo.

Layout. flatfs keeps one file per block, ``<dir>/<KEY>.data``, where ``KEY`` is the datastore
key without its leading ``/`` (``CIQ...`` for a sha2-256 multihash) and ``<dir>`` is a *shard*
directory chosen from the key by the function named in the ``SHARDING`` file, for example
``/repo/flatfs/shard/v1/next-to-last/2`` (Kubo's default: the two characters before the last
one, so at most 32² = 1024 directories). Everything else is not a block: ``SHARDING``,
``_README``, ``diskUsage.cache``, dot-directories such as ``.temp`` (where flatfs stages writes
before renaming them into place) and stray files that do not end in ``.data``.

This module only lists; reading and verifying a block is :mod:`walrusds.importer.blocks`'s job.
Directory listings are streamed with :func:`os.scandir`, never collected for the whole repo.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from walrusds.errors import ConfigError

SHARDING_FILE = "SHARDING"
SHARD_PREFIX = "/repo/flatfs/shard/"
EXTENSION = ".data"
KINDS = ("prefix", "suffix", "next-to-last")


@dataclass(frozen=True)
class Sharding:
    """A flatfs shard function: ``kind`` of ``length`` characters, padded with ``_``."""

    kind: str
    length: int

    def __str__(self) -> str:
        return f"{SHARD_PREFIX}v1/{self.kind}/{self.length}"

    def directory(self, name: str) -> str:
        """The shard directory of a block file named ``name + ".data"``."""
        n = self.length
        if self.kind == "prefix":
            return (name + "_" * n)[:n]
        if self.kind == "suffix":
            return ("_" * n + name)[-n:]
        padded = "_" * (n + 1) + name  # next-to-last: the n characters before the last one
        return padded[-n - 1:-1]


def parse_sharding(text: str, where: Path) -> Sharding:
    """The shard function named by ``text`` (the contents of ``where``); a one-line
    :class:`ConfigError` for anything flatfs v1 would not accept."""
    ident = text.strip()
    known = f"{SHARD_PREFIX}v1/{{{','.join(KINDS)}}}/N"
    parts = ident[len(SHARD_PREFIX):].split("/") if ident.startswith(SHARD_PREFIX) else []
    if len(parts) != 3 or parts[0] != "v1" or parts[1] not in KINDS or not parts[2].isdigit():
        raise ConfigError(f"{where} names an unknown flatfs sharding {ident!r} "
                          f"(known: {known})")
    length = int(parts[2])
    if not 1 <= length <= 64:
        raise ConfigError(f"{where} names a flatfs sharding of {length} characters "
                          f"({ident!r}); walrusds imports 1 to 64")
    return Sharding(parts[1], length)


def read_sharding(blocks_dir: Path) -> Sharding:
    """The shard function of a flatfs directory, from its ``SHARDING`` file."""
    path = blocks_dir / SHARDING_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: {blocks_dir} is not a flatfs blocks "
                          "directory") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return parse_sharding(text, path)


@dataclass(frozen=True)
class ShardDir:
    """One shard directory: its name and its modification time when it was listed (a block
    added or removed since changes it)."""

    name: str
    mtime_ns: int


@dataclass(frozen=True)
class BlockFile:
    """One ``.data`` file: the datastore key it holds and where it is."""

    key: bytes
    path: Path
    misplaced: bool  # not in the directory the shard function names


def shard_dirs(blocks_dir: Path) -> list[ShardDir]:
    """Every shard directory, sorted by name (the order the import walks them). At most a few
    thousand entries, whatever the number of blocks."""
    found: list[ShardDir] = []
    with os.scandir(blocks_dir) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            found.append(ShardDir(entry.name, entry.stat(follow_symlinks=False).st_mtime_ns))
    return sorted(found, key=lambda d: d.name)


def current_mtime(blocks_dir: Path, name: str) -> int:
    """The modification time of a shard directory now (-1 if it is gone)."""
    try:
        return os.stat(blocks_dir / name, follow_symlinks=False).st_mtime_ns
    except FileNotFoundError:
        return -1


def block_files(blocks_dir: Path, shard: str, sharding: Sharding) -> Iterator[BlockFile]:
    """The blocks of one shard directory, sorted by key. Names that are not ``<KEY>.data``
    files are skipped, as flatfs skips them."""
    directory = blocks_dir / shard
    try:
        with os.scandir(directory) as entries:
            names = [e.name[:-len(EXTENSION)] for e in entries if _is_block(e)]
    except FileNotFoundError:
        return
    for stem in sorted(names):
        yield BlockFile(key=b"/" + os.fsencode(stem), path=directory / (stem + EXTENSION),
                        misplaced=sharding.directory(stem) != shard)


def count_blocks(blocks_dir: Path, shard: str) -> int:
    """How many ``.data`` files a shard directory holds (names only, nothing is read)."""
    try:
        with os.scandir(blocks_dir / shard) as entries:
            return sum(1 for e in entries if _is_block(e))
    except FileNotFoundError:
        return 0


def _is_block(entry: os.DirEntry[str]) -> bool:
    name = entry.name
    return (name.endswith(EXTENSION) and len(name) > len(EXTENSION)
            and not name.startswith(".") and entry.is_file(follow_symlinks=False))
