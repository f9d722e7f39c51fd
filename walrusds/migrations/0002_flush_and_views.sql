-- walrusds index, version 2: upload journal, Walrus state, operator views.

-- The packs table doubles as the upload journal: the packfile's size and SHA-256 are recorded
-- at build time, the blob ID as soon as the publisher answers, before the commit transaction.
-- A pack that ends 'abandoned' with a blob ID is a paid orphan, which `walrusds verify` lists.
ALTER TABLE {schema}.packs
    ADD COLUMN target_bytes bigint NOT NULL DEFAULT 0,
    ADD COLUMN pack_sha256  bytea,
    ADD COLUMN uploaded_at  timestamptz;

-- What walrusds has learned about Walrus: the current epoch (from store responses; no HTTP
-- endpoint reports it) and a publisher's body limit (learned from a 413).
CREATE TABLE {schema}.walrus_state (
    singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    current_epoch      integer,
    epoch_observed_at  timestamptz,
    publisher_max_body bigint,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
INSERT INTO {schema}.walrus_state DEFAULT VALUES;

-- Every key as one row: where its bytes are.
CREATE VIEW {schema}.entry_locations AS
SELECT e.key,
       encode(e.key, 'escape') AS key_text,
       CASE WHEN e.pack_id IS NULL THEN 'staged' ELSE 'packed' END AS location,
       p.blob_id,
       e.pack_offset AS "offset",
       e.size,
       p.end_epoch
  FROM {schema}.entries e
  LEFT JOIN {schema}.packs p ON p.id = e.pack_id;

-- One row per pack: fill against the target it was built for, and dead bytes.
CREATE VIEW {schema}.pack_fill AS
SELECT id AS pack_id,
       blob_id,
       state,
       entry_count,
       live_entries,
       pack_bytes,
       data_bytes,
       live_bytes,
       data_bytes - live_bytes AS dead_bytes,
       target_bytes,
       round(100.0 * pack_bytes / nullif(target_bytes, 0), 1) AS fill_pct,
       registered_epoch,
       end_epoch,
       encoded_size,
       cost,
       stored_at
  FROM {schema}.packs;

-- The pack ratio over stored packs: what an operator pays for.
CREATE VIEW {schema}.pack_ratio AS
SELECT count(*) AS packs,
       coalesce(sum(entry_count), 0) AS entries,
       round(avg(entry_count), 1) AS entries_per_pack,
       coalesce(sum(pack_bytes), 0) AS pack_bytes,
       coalesce(sum(live_bytes), 0) AS live_bytes,
       coalesce(sum(data_bytes - live_bytes), 0) AS dead_bytes,
       round(avg(100.0 * pack_bytes / nullif(target_bytes, 0)), 1) AS avg_fill_pct,
       coalesce(sum(encoded_size), 0) AS encoded_bytes,
       round(sum(encoded_size)::numeric / nullif(sum(live_bytes), 0), 2) AS encoded_per_live_byte,
       coalesce(sum(cost), 0) AS cost
  FROM {schema}.packs
 WHERE state = 'stored';

-- Values in Postgres waiting for a pack.
CREATE VIEW {schema}.staged_backlog AS
SELECT count(*) AS entries,
       coalesce(sum(size), 0) AS bytes,
       count(*) FILTER (WHERE claim_pack_id IS NOT NULL) AS claimed,
       min(staged_at) AS oldest,
       max(staged_at) AS newest,
       extract(epoch FROM now() - min(staged_at)) AS oldest_age_seconds
  FROM {schema}.entries
 WHERE pack_id IS NULL;

-- Reads that could not return intact bytes (DATA_LOSS): bytes that failed verification on every
-- aggregator ('corrupt') or a blob the aggregators no longer know while indexed ('lost').
-- Rare by construction; `walrusds stats` counts them and shows the latest.
CREATE TABLE {schema}.data_loss_events (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    kind    text NOT NULL CHECK (kind IN ('corrupt', 'lost')),
    key     bytea NOT NULL,
    blob_id text,
    detail  text NOT NULL,
    node    text
);
