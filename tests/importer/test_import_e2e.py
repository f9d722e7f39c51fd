"""The whole move of a stock Kubo node onto walrusds, with the real ``ipfs-walrus``: import,
switch, read every file back through Kubo from walrusds alone, and roll back."""

from __future__ import annotations

import filecmp
import json
import subprocess
from pathlib import Path

from tests.importer.support import (
    DATASET,
    Stock,
    blocks_mount,
    flatfs_keys,
    one_line_error,
    run_import,
    service_keys,
    summary,
)
from tests.kubo.ipfs import Kubo
from tests.kubo.support import WALRUSDS, ipfs_walrus


def test_import_switches_a_stock_repo_to_walrusds(stock: Stock, kubo_repo: Kubo, service: str,
                                                  tmp_path: Path) -> None:
    repo = kubo_repo.repo
    before_refs = kubo_repo.local_keys()
    keys = flatfs_keys(repo)
    assert len(keys) == len(before_refs) > 60
    config_before = (repo / "config").read_bytes()
    spec_before = (repo / "datastore_spec").read_bytes()

    done = summary(run_import(repo, service, "--json", "--batch-blocks", "16"))
    assert done["switched"] and done["bad"] == {} and done["misplaced"] == 0
    assert done["blocks_total"] == len(keys)
    # preparing the switch (kubo-init's profile in a scratch repo) stores the empty directory,
    # which the stock repo holds too: found there, not sent again
    assert done["blocks_sent"] + done["blocks_present"] == len(keys)
    assert done["blocks_present"] >= 1 and done["batches"] >= done["blocks_sent"] // 16
    assert service_keys(service) >= keys

    # datastore_spec is what Kubo derives; config's /blocks is what kubo-init writes
    assert (repo / "datastore_spec").read_text() == (
        f'{{"mounts":[{{"dataset":"{DATASET}","mountpoint":"/blocks","type":"walrusds"}},'
        '{"mountpoint":"/","path":"datastore","type":"levelds"}],"type":"mount"}')
    fresh = tmp_path / "fresh"
    made = subprocess.run([*WALRUSDS, "kubo-init", str(fresh), "--addr", service, "--profile",
                           "test", "--ipfs", str(ipfs_walrus())],
                          capture_output=True, text=True, timeout=120, check=False)
    assert made.returncode == 0, made.stderr
    assert blocks_mount(repo) == blocks_mount(fresh)
    # nothing else changed; the originals are kept
    assert (repo / "config.pre-walrusds").read_bytes() == config_before
    assert (repo / "datastore_spec.pre-walrusds").read_bytes() == spec_before
    old, new = json.loads(config_before), json.loads((repo / "config").read_text())
    for config in (old, new):
        del config["Datastore"]["Spec"]
    assert old == new
    assert not (repo / "walrusds-import.progress").exists()

    # every block now comes from walrusds: flatfs is moved out of the way
    (repo / "blocks").rename(repo / "blocks.flatfs")
    assert kubo_repo.local_keys() == before_refs
    for cid, path in stock.files.items():
        assert kubo_repo.run("--offline", "cat", cid).stdout == path.read_bytes()
    got = tmp_path / "tree"
    kubo_repo.run("--offline", "get", "-o", str(got), stock.tree_cid)
    names = sorted(p.name for p in stock.tree.iterdir())
    assert sorted(p.name for p in got.iterdir()) == names
    assert filecmp.cmpfiles(stock.tree, got, names, shallow=False)[0] == names
    verify = kubo_repo.text("repo", "verify")
    assert verify.endswith("verify complete, all blocks validated.\n")
    pins = set(kubo_repo.text("pin", "ls", "--type", "recursive", "-q").split())
    assert pins >= set(stock.roots)

    again = one_line_error(run_import(repo, service))
    assert "already on walrusds" in again

    # rollback: the backups and the untouched flatfs directory give the old node back
    (repo / "blocks.flatfs").rename(repo / "blocks")
    (repo / "config.pre-walrusds").replace(repo / "config")
    (repo / "datastore_spec.pre-walrusds").replace(repo / "datastore_spec")
    assert blocks_mount(repo)["type"] == "flatfs"
    assert kubo_repo.local_keys() == before_refs
    cid, path = next(iter(stock.files.items()))
    assert kubo_repo.run("--offline", "cat", cid).stdout == path.read_bytes()
