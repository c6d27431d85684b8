-- asymm: since 0.2.0
-- Redis sync: change capture into a thin outbox, consumed by the daemon.
--
-- Design, in short (docs/sync.md has the full argument):
-- * capture: per tracked table, statement-level AFTER triggers with transition tables write ONE
--   outbox row per statement (table, op, xid, keys text[]), so a 200k-row INSERT ... SELECT adds
--   one row holding an array of keys instead of 200k rows; one C function (asymm._sync_capture,
--   extension/src/sync.c) serves every tracked table;
-- * the outbox row carries pg_current_xact_id(); the daemon only consumes rows whose xid is below
--   the xmin of its snapshot (every such transaction has finished, so no row below it can still
--   appear), which is what makes an out-of-commit-order transaction safe;
-- * the outbox is LIST-partitioned into two slots that alternate with time; a slot whose rows are
--   all consumed is TRUNCATEd (no dead tuples, no vacuum debt) instead of DELETEd.

INSERT INTO asymm.setting_defaults (name, default_value, value_type, min_value, max_value, allowed_values, pattern, description) VALUES
    ('sync.sensitive_mode', 'drop', 'text', NULL, NULL, '{drop,hmac}', NULL,
     'What happens to columns named sensitive in asymm.track(): drop (never sent) or hmac (keyed HMAC-SHA256, key from ASYMM_SYNC_HMAC_KEY)'),
    ('sync.batch_rows', '2000', 'integer', '1', '100000', NULL, NULL, 'Outbox rows the sync worker reads per batch'),
    ('sync.backfill_chunk', '5000', 'integer', '1', '1000000', NULL, NULL, 'Rows per backfill chunk (each chunk is read in its own snapshot)'),
    ('sync.key_prefix', 'asymm', 'text', NULL, NULL, NULL, '^[A-Za-z0-9_.:/@-]{1,64}$',
     'Prefix of every Redis key the sync writes: <prefix>:{schema.table}:<key> (%, { and } in names percent-encoded, and . in the schema); give each database syncing into a shared Redis its own (e.g. asymm:<dbname>); no braces'),
    ('sync.tombstone_ttl', '1 day', 'interval', '1 s', '30 days', NULL, NULL, 'How long a delete tombstone stays in Redis (must outlive any in-flight read-through fill)'),
    ('sync.busy_interval', '10 ms', 'interval', '0', '10 s', NULL, NULL,
     'While changes keep coming, sync passes start this far apart (at most one pulse): shorter lowers the commit-to-Redis lag, longer spends less CPU per synced key (a pass has a fixed cost)');

-- Tracked tables.  A config table (pg_dump keeps it); regclass dumps as a name, so it survives a
-- dump/restore even though OIDs change.
CREATE TABLE asymm.sync_tables (
    rel             regclass PRIMARY KEY,
    key_columns     text[] NOT NULL,
    key_types       text[] NOT NULL,
    sensitive       text[] NOT NULL DEFAULT '{}',
    tracked_at      timestamptz NOT NULL DEFAULT now(),
    backfill_state  text NOT NULL DEFAULT 'pending' CHECK (backfill_state IN ('pending', 'running', 'done', 'failed')),
    backfill_cursor text,
    epoch           text,
    backfilled_at   timestamptz,
    rows_backfilled bigint NOT NULL DEFAULT 0,
    redis_name      text,
    applied         bigint,
    column_signature text,
    sync_error      text,
    sync_error_at   timestamptz
);
COMMENT ON COLUMN asymm.sync_tables.applied IS 'The highest version the sync worker had Redis acknowledge for this table when it last stored its position (Redis keeps its own mark in the table''s meta hash): a Redis mark below it means Redis came back from an older snapshot, and the table is copied again';
COMMENT ON COLUMN asymm.sync_tables.column_signature IS 'The table''s live columns when its keys were written (asymm._sync_column_signature): when they change, the table is copied again';
COMMENT ON COLUMN asymm.sync_tables.sync_error IS 'Why the daemon could not read this table (backfill_state failed: its Redis keys are cleared, so readers go to PostgreSQL, and it is copied again once a retry works); NULL once it syncs';
COMMENT ON COLUMN asymm.sync_tables.redis_name IS 'The schema and table names its Redis keys were written under, as a JSON array (jsonb_build_array(schema, table)::text; the daemon encodes them into the key, see the README); when a rename makes it differ from the table''s names, the keys under the old name are cleared and the table is copied again';
COMMENT ON TABLE asymm.sync_tables IS 'Tables whose changes asymm mirrors into Redis (asymm.track), with their key and backfill progress';
SELECT pg_catalog.pg_extension_config_dump('asymm.sync_tables', '');

-- Which columns of a tracked table are sensitive, by identity (attnum) in THIS database: the names
-- in asymm.sync_tables.sensitive are portable (pg_dump keeps them) but a RENAME COLUMN changes
-- them, so the ddl_command_end trigger renames them after the pinned attnums
-- (asymm._sync_follow_sensitive).  Not dumped, like annotation_target_cache: a restored table has
-- other oids (and no dropped columns, so other attnums); an empty cache is re-pinned from the names.
-- (An oid kept in sync_tables instead could match by chance in another cluster, and would then
-- rename the sensitive list after the wrong columns.)
CREATE TABLE asymm.sync_sensitive_pins (
    rel      regclass PRIMARY KEY REFERENCES asymm.sync_tables (rel) ON DELETE CASCADE,
    attnums  int2[] NOT NULL
);
COMMENT ON TABLE asymm.sync_sensitive_pins IS 'attnums of the sensitive columns of each tracked table in this database: a cache re-pinned from asymm.sync_tables.sensitive, never dumped';

-- The outbox.  Thin rows: which table, which keys, which operation, which transaction.
CREATE TABLE asymm.sync_outbox (
    slot  smallint NOT NULL,
    xid   xid8 NOT NULL,
    rel   oid NOT NULL,
    op    "char" NOT NULL,
    keys  text[]
) PARTITION BY LIST (slot);
COMMENT ON TABLE asymm.sync_outbox IS 'Captured changes awaiting the sync worker: one row per statement (keys as text[]); partitioned in two slots that are truncated, not deleted, once consumed';
CREATE TABLE asymm.sync_outbox_0 PARTITION OF asymm.sync_outbox FOR VALUES IN (0);
COMMENT ON TABLE asymm.sync_outbox_0 IS 'Outbox slot 0 (written during even 10-second periods, truncated once consumed)';
CREATE TABLE asymm.sync_outbox_1 PARTITION OF asymm.sync_outbox FOR VALUES IN (1);
COMMENT ON TABLE asymm.sync_outbox_1 IS 'Outbox slot 1 (written during odd 10-second periods, truncated once consumed)';
CREATE INDEX sync_outbox_xid ON asymm.sync_outbox (xid);
-- A bulk statement's keys make one large array: lz4 compresses it several times faster than the
-- default pglz, which was about half of the capture's cost in a 200k-row INSERT ... SELECT (perf).
-- A server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE asymm.sync_outbox ALTER COLUMN keys SET COMPRESSION lz4;  -- (not passed on to partitions)
    ALTER TABLE asymm.sync_outbox_0 ALTER COLUMN keys SET COMPRESSION lz4;
    ALTER TABLE asymm.sync_outbox_1 ALTER COLUMN keys SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'asymm: this server has no lz4; the sync outbox compresses with pglz';
END
$$;

-- The consumer position and health: one row.
CREATE TABLE asymm.sync_state (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position       xid8 NOT NULL,
    batches        bigint NOT NULL DEFAULT 0,
    rows_applied   bigint NOT NULL DEFAULT 0,
    keys_applied   bigint NOT NULL DEFAULT 0,
    last_batch_at  timestamptz,
    lag_ms         double precision,
    lag_at         timestamptz,
    last_error     text,
    last_error_at  timestamptz,
    resyncs        bigint NOT NULL DEFAULT 0,
    truncations    bigint NOT NULL DEFAULT 0,
    fence          bigint NOT NULL DEFAULT 0,
    redis_warning  text
);
COMMENT ON COLUMN asymm.sync_state.fence IS 'Fencing token: bumped by each sync worker that takes the sync lock; Redis refuses the writes of a worker holding a lower one (a deposed leader)';
COMMENT ON COLUMN asymm.sync_state.redis_warning IS 'What the sync worker found wrong with the Redis configuration when it connected (e.g. a maxmemory-policy that can evict tombstones), NULL if nothing';
COMMENT ON TABLE asymm.sync_state IS 'Sync consumer position (every outbox row with xid below it is applied to Redis) and health counters';
INSERT INTO asymm.sync_state (position) VALUES (pg_snapshot_xmin(pg_current_snapshot()));
