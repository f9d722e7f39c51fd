"""``walrusds import --from-flatfs``: move a stock Kubo repo's blocks onto walrusds.

The blocks of a stock Kubo node live in flatfs (one file per block under ``IPFS_PATH/blocks``).
The import copies them into a running walrusds service through its gRPC API, verifying every
block against the multihash in its key before sending it, and then switches the repo's
``config`` and ``datastore_spec`` so Kubo mounts ``/blocks`` on walrusds, exactly as
``walrusds kubo-init`` sets up a new repo. It can be interrupted and run again at any time.

Modules, one job each:

- :mod:`~walrusds.importer.kuborepo` recognizes a Kubo repo with flatfs at ``/blocks``;
- :mod:`~walrusds.importer.flatfs` reads flatfs's sharding and lists its blocks;
- :mod:`~walrusds.importer.blocks` reads one block and verifies it against its key;
- :mod:`~walrusds.importer.repolock` holds Kubo's repo lock (no daemon meanwhile);
- :mod:`~walrusds.importer.journal` records finished shard directories, for resuming;
- :mod:`~walrusds.importer.client` talks to the service (Info, Lookup, Batch);
- :mod:`~walrusds.importer.copier` walks the directories and streams the batches;
- :mod:`~walrusds.importer.meter` shows the progress;
- :mod:`~walrusds.importer.switch` rewrites the repo's config, with backups.

``walrusds.cli.cmd_import`` wires them together; docs/import.md is the operator's guide.
"""
