"""walrusds: a Kubo datastore service that keeps IPFS blocks on Walrus with a Postgres index.

A Kubo node mounts walrusds (usually at ``/blocks``) through a thin Go shim that forwards every
go-datastore call over gRPC to this service. The service packs many small values into large
Walrus blobs and records where each one lives in PostgreSQL, which is the durability point.

Glossary
--------
Key
    A go-datastore key: bytes that start with ``/`` and do not end with ``/`` (``/CIQ...`` for a
    Kubo block under the ``/blocks`` mount). Keys are compared and ordered bytewise.
Block
    The value stored under a key. For Kubo blocks the key is the base32 multihash of the
    value, which lets walrusds verify every byte it reads back against the key itself.
Pack
    A packfile: many entries' values laid back to back in one Walrus blob, followed by a trailer
    that lists every entry, so the index can be rebuilt from Walrus alone. Packing amortises
    Walrus' fixed ~64 MB encoded floor per blob over hundreds of blocks.
Entry
    One row of the index: key → (size, digest, and either the staged bytes in Postgres or the
    pack and offset that hold them on Walrus).
Epoch
    Walrus' unit of paid storage time (14 days on Mainnet, 1 day on Testnet). A blob is paid
    up to an end epoch and becomes unreadable at the start of it; the renewal worker extends or
    compacts packs before that.
Staging
    Values live in Postgres from the moment a Put is acknowledged until a flusher has uploaded
    them inside a pack and committed the pack's location.
Dataset
    One walrusds index (a Postgres schema) with a name and a UUID. Kubo's ``datastore_spec``
    records the dataset name, never addresses or secrets.
"""

__version__ = "0.1.0"
