-- walrusds index, version 3: pack live counters kept per statement, not per row.
--
-- Version 1 kept packs.live_bytes / live_entries with row-level triggers: committing a pack of
-- 16,000 small values ran 16,000 single-row UPDATEs of the same packs row (5 s against 0.3 s
-- for the commit's own UPDATE, measured on PostgreSQL 15), holding up every staging write
-- meanwhile. The same rule now runs once per statement over its transition tables: each pack's
-- change is summed, then every touched pack row is updated once. The rule is unchanged: a row
-- counts in the pack its pack_id names, whichever path sets, changes or clears it (and a size
-- changed in place by hand is now counted too). The price: every statement on entries runs a
-- trigger function, even one that touches no packed row (a single-row staging upsert took
-- 380-425 us with these triggers against 360 us with none, commit included).

DROP TRIGGER entries_pack_moved_update ON {schema}.entries;
DROP TRIGGER entries_pack_moved_delete ON {schema}.entries;
DROP TRIGGER entries_pack_moved_insert ON {schema}.entries;
DROP FUNCTION {schema}.entries_pack_moved();

-- An INSERT adds its rows to their packs, a DELETE takes them away: the same sum, signed. Both
-- triggers name their transition table changed_rows.
CREATE FUNCTION {schema}.entries_packs_added_or_removed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sign integer := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    UPDATE {schema}.packs p
       SET live_bytes = p.live_bytes + sign * d.bytes,
           live_entries = p.live_entries + sign * d.entries
      FROM (SELECT pack_id, sum(size) AS bytes, count(*) AS entries
              FROM changed_rows WHERE pack_id IS NOT NULL GROUP BY pack_id) d
     WHERE p.id = d.pack_id;
    RETURN NULL;
END
$$;

-- An UPDATE changes a pack's counters by what its rows hold after the statement minus what
-- they held before: a row whose pack_id did not change adds and removes the same amount. This
-- needs no join of the two transition tables (which have no index), and packs whose sums do
-- not change are not touched.
CREATE FUNCTION {schema}.entries_packs_moved_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {schema}.packs p
       SET live_bytes = p.live_bytes + d.bytes, live_entries = p.live_entries + d.entries
      FROM (SELECT pack_id, sum(bytes) AS bytes, sum(entries) AS entries
              FROM (SELECT pack_id, size AS bytes, 1 AS entries
                      FROM new_rows WHERE pack_id IS NOT NULL
                    UNION ALL
                    SELECT pack_id, -size, -1
                      FROM old_rows WHERE pack_id IS NOT NULL) AS moves
             GROUP BY pack_id
            HAVING sum(bytes) <> 0 OR sum(entries) <> 0) d
     WHERE p.id = d.pack_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER entries_packs_moved_insert AFTER INSERT ON {schema}.entries
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.entries_packs_added_or_removed();
CREATE TRIGGER entries_packs_moved_delete AFTER DELETE ON {schema}.entries
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.entries_packs_added_or_removed();
CREATE TRIGGER entries_packs_moved_update AFTER UPDATE ON {schema}.entries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.entries_packs_moved_update();
