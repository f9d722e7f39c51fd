-- walrusds index, version 1.
--
-- {schema} is replaced by the configured schema, quoted with psycopg.sql.Identifier; nothing
-- else is substituted. Braces that belong to SQL must be doubled.

-- The dataset's identity: one row, written when the schema is created.
CREATE TABLE {schema}.dataset (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    name       text NOT NULL,
    id         uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per packfile (one Walrus blob). Blob-level facts live here once, never on entries.
--   building   claimed entries are being packed and uploaded (lease_until bounds the attempt)
--   stored     the blob is certified and entries point at it
--   retired    no longer referenced (compacted away or lapsed); never paid again
--   lost       the blob expired or vanished while entries still pointed at it
--   abandoned  a build that was given up before its commit; its entries went back to staging
CREATE TABLE {schema}.packs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state            text NOT NULL DEFAULT 'building'
                     CHECK (state IN ('building', 'stored', 'retired', 'lost', 'abandoned')),
    blob_id          text,
    -- size of the packfile (values + trailer + footer) and of the values alone
    pack_bytes       bigint NOT NULL DEFAULT 0 CHECK (pack_bytes >= 0),
    data_bytes       bigint NOT NULL DEFAULT 0 CHECK (data_bytes >= 0),
    entry_count      integer NOT NULL DEFAULT 0 CHECK (entry_count >= 0),
    -- maintained by the entries triggers below: what is still referenced
    live_bytes       bigint NOT NULL DEFAULT 0 CHECK (live_bytes >= 0),
    live_entries     integer NOT NULL DEFAULT 0 CHECK (live_entries >= 0),
    registered_epoch integer,
    end_epoch        integer,
    encoded_size     bigint,
    cost             bigint,
    lease_owner      text,
    lease_until      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    stored_at        timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (state <> 'stored' OR (blob_id IS NOT NULL AND end_epoch IS NOT NULL))
);
CREATE INDEX packs_stored_end_epoch ON {schema}.packs (end_epoch) WHERE state = 'stored';
CREATE INDEX packs_building ON {schema}.packs (lease_until) WHERE state = 'building';
CREATE INDEX packs_blob_id ON {schema}.packs (blob_id);

-- The index: one row per key. A staged entry holds its bytes in `value`; a packed entry points
-- at (pack_id, pack_offset) instead. `claim_pack_id` marks a staged entry that a flusher is
-- packing right now; overwriting or deleting the entry clears the claim, so the flusher's
-- commit skips it.
CREATE TABLE {schema}.entries (
    key           bytea PRIMARY KEY,
    size          bigint NOT NULL CHECK (size >= 0),
    digest        bytea NOT NULL CHECK (length(digest) = 32),
    value         bytea,
    pack_id       bigint REFERENCES {schema}.packs (id),
    pack_offset   bigint CHECK (pack_offset >= 0),
    claim_pack_id bigint,
    staged_at     timestamptz,
    CHECK ((value IS NULL) = (pack_id IS NOT NULL)),
    CHECK ((pack_id IS NULL) = (pack_offset IS NULL)),
    CHECK (value IS NULL OR length(value) = size)
);
-- Values are mostly incompressible block data: store them out of line without trying pglz.
ALTER TABLE {schema}.entries ALTER COLUMN value SET STORAGE EXTERNAL;
-- Staged backlog, oldest first: what flushers claim from and what DiskUsage adds up.
CREATE INDEX entries_staged ON {schema}.entries (staged_at, key) INCLUDE (size)
    WHERE pack_id IS NULL;
CREATE INDEX entries_pack ON {schema}.entries (pack_id, pack_offset) WHERE pack_id IS NOT NULL;

-- Live counters of packs follow every change of entries.pack_id, whichever path makes it
-- (Put over a packed key, Delete, flush commit, compaction repoint, an operator's SQL).
CREATE FUNCTION {schema}.entries_pack_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.pack_id IS NOT NULL THEN
        UPDATE {schema}.packs
           SET live_bytes = live_bytes - OLD.size, live_entries = live_entries - 1
         WHERE id = OLD.pack_id;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.pack_id IS NOT NULL THEN
        UPDATE {schema}.packs
           SET live_bytes = live_bytes + NEW.size, live_entries = live_entries + 1
         WHERE id = NEW.pack_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER entries_pack_moved_update AFTER UPDATE OF pack_id ON {schema}.entries
    FOR EACH ROW WHEN (OLD.pack_id IS DISTINCT FROM NEW.pack_id)
    EXECUTE FUNCTION {schema}.entries_pack_moved();
CREATE TRIGGER entries_pack_moved_delete AFTER DELETE ON {schema}.entries
    FOR EACH ROW WHEN (OLD.pack_id IS NOT NULL)
    EXECUTE FUNCTION {schema}.entries_pack_moved();
CREATE TRIGGER entries_pack_moved_insert AFTER INSERT ON {schema}.entries
    FOR EACH ROW WHEN (NEW.pack_id IS NOT NULL)
    EXECUTE FUNCTION {schema}.entries_pack_moved();
