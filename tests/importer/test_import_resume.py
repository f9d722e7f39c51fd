"""Interrupted imports: killed right after a batch was committed (before its progress line),
the next run sends exactly the blocks that are not in walrusds yet; running again after the
copy is complete sends nothing."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.importer.support import (
    DATASET,
    Stock,
    blocks_mount,
    flatfs_keys,
    run_import,
    service_keys,
    summary,
)
from tests.kubo.ipfs import Kubo
from tests.kubo.support import serve

BATCH = 5


def progress_lines(text: str) -> list[list[str]]:
    """The fields of the progress file's "done" lines."""
    return [line.split()[1:] for line in text.splitlines() if line.startswith("done ")]


def test_killed_import_resumes_without_sending_anything_twice(stock: Stock, kubo_repo: Kubo,
                                                              service: str) -> None:
    repo = kubo_repo.repo
    keys = flatfs_keys(repo)
    config_before = (repo / "config").read_bytes()

    killed = run_import(repo, service, "--json", "--batch-blocks", str(BATCH), "--streams", "1",
                        env={"WALRUSDS_FAILPOINTS": "import_after_batch_4"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    landed = service_keys(service) & keys
    # 4 committed batches, plus the empty directory stored while preparing the switch
    assert len(landed) == 4 * BATCH + 1
    assert (repo / "config").read_bytes() == config_before
    progress = (repo / "walrusds-import.progress").read_text()
    finished = progress_lines(progress)
    assert finished, progress
    recorded = {b"/" + p.name.removesuffix(".data").encode()
                for name, *_ in finished for p in (repo / "blocks" / name).glob("*.data")}
    assert recorded <= landed
    assert landed - recorded, "the last batch's directories were recorded before the kill"

    # second run, copy only: sends what did not land, and nothing that did
    resumed = summary(run_import(repo, service, "--json", "--no-switch", "--batch-blocks",
                                 str(BATCH)))
    assert not resumed["switched"]
    assert resumed["dirs_done_before"] == len(finished)
    assert resumed["blocks_done_before"] == len(recorded)
    assert resumed["blocks_present"] == len(landed - recorded)
    assert resumed["blocks_sent"] == len(keys) - len(landed)
    assert service_keys(service) >= keys
    assert blocks_mount(repo)["type"] == "flatfs"

    # third run: everything is recorded, nothing is read or sent; then the switch
    quiet = run_import(repo, service, "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == "", quiet.stderr
    assert blocks_mount(repo)["type"] == "walrusds"
    assert len(kubo_repo.local_keys()) == len(keys)
    for cid, path in stock.files.items():
        assert kubo_repo.run("--offline", "cat", cid).stdout == path.read_bytes()


def test_second_run_sends_nothing_and_older_layouts_switch(
        kubo_repo: Kubo, pg_dsn: str, schema: str, tmp_path: Path) -> None:
    """Runs after a complete copy send nothing. The repo has the layout of older Kubo releases
    (each datastore inside a ``measure`` wrapper), and the service answers at most 50 keys per
    Lookup."""
    repo = kubo_repo.repo
    config = json.loads((repo / "config").read_text())
    config["Datastore"]["Spec"]["mounts"] = [
        {"child": {k: v for k, v in m.items() if k not in ("mountpoint", "prefix")},
         "mountpoint": m["mountpoint"], "prefix": m["prefix"], "type": "measure"}
        for m in config["Datastore"]["Spec"]["mounts"]]
    (repo / "config").write_text(json.dumps(config))
    keys = flatfs_keys(repo)
    assert kubo_repo.local_keys()  # Kubo opens that layout with the same datastore_spec
    proc, service = serve(tmp_path, "small-lookups", dsn=pg_dsn, schema=schema,
                          dataset=DATASET, limits_max_lookup_keys="50")
    try:
        first = summary(run_import(repo, service, "--json", "--no-switch"))
        assert first["blocks_sent"] == len(keys)
        progress = (repo / "walrusds-import.progress").read_text()
        assert len(progress_lines(progress)) == first["shard_dirs"]

        # forgetting the progress file only costs the Lookups
        again = summary(run_import(repo, service, "--json", "--no-switch", "--restart"))
        assert (again["blocks_sent"], again["blocks_present"], again["dirs_done_before"]) == (
            0, len(keys), 0)
        third = summary(run_import(repo, service, "--json"))
        assert (third["blocks_sent"], third["blocks_done_before"]) == (0, len(keys))
        assert third["switched"]
    finally:
        assert proc.stop() == 0, proc.log.read_text()
    mounts = json.loads((repo / "config").read_text())["Datastore"]["Spec"]["mounts"]
    assert [m["type"] for m in mounts] == ["walrusds", "measure"]
    assert mounts[1]["child"]["type"] == "levelds"
