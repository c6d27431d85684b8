-- asymm: since 0.2.0
-- Redis sync (SPEC section 5): change capture into a thin outbox, consumed by the daemon.
--
-- Design, in short (control/asymm/sync/__init__.py has the full argument):
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

-- The slot writers use now: alternates every 10 s.  The capture function computes the same
-- (extension/src/sync.c, current_slot()).
CREATE FUNCTION asymm.sync_slot() RETURNS smallint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ((extract(epoch FROM now())::bigint / 10) % 2)::smallint $$;
COMMENT ON FUNCTION asymm.sync_slot() IS 'Outbox slot (0 or 1) written by transactions that start now; the other one is truncated once consumed';

-- The same path as the capture's (extension/src/sync.c): the NOTIFY is sent when the transaction
-- commits, at most once, and not at all by one that is PREPAREd (PREPARE TRANSACTION refuses a
-- transaction that has called pg_notify; the worker finds a prepared transaction's changes by its
-- poll, at most a pulse after COMMIT PREPARED).  A subtransaction that rolls back takes its
-- wake-up with it.
CREATE FUNCTION asymm.sync_notify() RETURNS void
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asymm_sync_notify';
COMMENT ON FUNCTION asymm.sync_notify() IS 'Wake the sync worker: one payload-free NOTIFY asymm_sync when the transaction commits (none if it is prepared)';

-- Whether the sync worker waits for a NOTIFY (true) or is draining the outbox anyway (false).
-- Unlogged: a flag flipped on every idle/busy transition needs no WAL; after a crash it is empty,
-- which capture treats as "notify".  Capture caches it per backend and reads it again after each
-- change (trigger below), walking the row's chain of versions: fillfactor 10 makes readers prune
-- the page once it holds ~20 of them, instead of ~200 with the default.
CREATE UNLOGGED TABLE asymm.sync_wake (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    listening boolean NOT NULL
) WITH (fillfactor = 10);
COMMENT ON TABLE asymm.sync_wake IS 'Set by the sync worker: capture NOTIFYs only while it waits (listening), not while it drains';
INSERT INTO asymm.sync_wake (listening) VALUES (true);
-- Capture caches the flag per backend (reading it was a third of the capture function's time):
-- every committed change of it sends a relcache invalidation of the table, which empties those
-- caches (extension/src/sync.c, wake_cached).  TRUNCATE invalidates by itself.
CREATE FUNCTION asymm._sync_wake_changed() RETURNS trigger
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asymm_sync_wake_changed';
COMMENT ON FUNCTION asymm._sync_wake_changed() IS 'Statement trigger of asymm.sync_wake: makes every backend re-read the wake flag once the change commits';
CREATE TRIGGER sync_wake_changed AFTER INSERT OR UPDATE OR DELETE ON asymm.sync_wake
    FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_wake_changed();

-- TRUNCATE capture: rare, so a plain SECURITY DEFINER function (op 'T' makes the worker clear the
-- table's keys; the INSERT/UPDATE/DELETE capture below never writes it).  A partition of a tracked
-- table (sql/43_sync_exact.sql) queues a 'P' for the tracked table instead: the worker tombstones
-- the keys whose rows are gone, those of the other partitions stay.  (TRUNCATE of the tracked
-- table itself fires its partitions' triggers too; the worker skips a prune that a 'T' of the
-- same transaction makes moot.)  The tracked table is found in the catalog, not taken from the
-- trigger.
CREATE FUNCTION asymm._sync_truncated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)
    SELECT asymm.sync_slot(), pg_current_xact_id(), a.relid, CASE WHEN a.relid = TG_RELID THEN 'T' ELSE 'P' END, NULL
      FROM (SELECT TG_RELID AS relid UNION SELECT p.relid FROM pg_partition_ancestors(TG_RELID) p) a  -- (none for a plain table)
     WHERE EXISTS (SELECT 1 FROM asymm.sync_tables t WHERE t.rel = a.relid);
    PERFORM asymm.sync_notify();
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION asymm._sync_truncated() IS 'TRUNCATE trigger of tracked tables and their partitions: queues a T outbox row (the worker clears the table''s Redis keys), or for a partition a P row (the worker removes the keys of rows gone)';

-- The capture of INSERT/UPDATE/DELETE, for every tracked table: a C trigger function
-- (extension/src/sync.c has the full argument).  In short:
-- * statement-level AFTER triggers with transition tables: one outbox row per statement, whose
--   keys are exactly what the worker computes when it re-reads rows (pk::text, or
--   jsonb_build_array(pk...)::text for a composite key); the key columns are the triggers'
--   arguments, set by asymm.track() from the primary key it records in asymm.sync_tables;
-- * the row goes straight into the current slot's partition (heap insert + its index), with no
--   SQL statement to plan or start, and NOTIFY asymm_sync is sent at most once per transaction,
--   only while the worker waits (asymm.sync_wake);
-- * it writes the outbox itself, without SQL, so writers of a tracked table need no right on
--   schema asymm: nothing is granted to PUBLIC.  It refuses to run except as an AFTER ... FOR EACH
--   STATEMENT trigger with its transition tables, and only ever writes I/U/D rows for its own
--   table (TG_RELID) and its own transaction: what it records is what the statement changed.
--   Creating a trigger with it needs EXECUTE on it (revoked from PUBLIC).
-- * an extension member, so pg_dump/pg_restore recreate the triggers (with their arguments)
--   against the restored extension, and DROP EXTENSION refuses while tables are tracked.
--
-- The canonical key text of a row (the one definition; asymm.sync.keys.KEY_SETTINGS mirrors it):
-- pk::text for a one-column key, jsonb_build_array(pk, ...)::text for a composite one, computed
-- with TimeZone = UTC, DateStyle = 'ISO, MDY', IntervalStyle = postgres, extra_float_digits = 1
-- and bytea_output = hex.  Output functions read those settings, so without them two
-- writers with different sessions would name one row by two Redis keys (a timestamptz key under
-- two time zones).  The daemon's connection and asymm.sync_key_text() (what asymm.cache uses for
-- a key it cannot canonicalise itself) set the same values; the capture sets them in C (key_settings
-- in extension/src/sync.c), only for key types whose text reads them (not int, numeric, text, uuid,
-- bool): a SET clause here would save and restore them on every statement (~8 us).
CREATE FUNCTION asymm._sync_capture() RETURNS trigger
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asymm_sync_capture';  -- (it pins the key settings itself, see key_settings in sync.c)
COMMENT ON FUNCTION asymm._sync_capture() IS 'INSERT/UPDATE/DELETE trigger of tracked tables (statement level, transition tables; arguments: the key columns): queues one outbox row of keys per statement';

CREATE FUNCTION asymm.sync_key_text(rel regclass, parts text[]) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC' SET DateStyle = 'ISO, MDY' SET IntervalStyle = 'postgres' SET extra_float_digits = 1
SET bytea_output = 'hex'
AS $$
DECLARE
    types text[];
    expr text;
    result text;
    state text;
    message text;
BEGIN
    SELECT t.key_types INTO types FROM asymm.sync_tables t WHERE t.rel = sync_key_text.rel;
    IF types IS NULL THEN
        RAISE EXCEPTION 'table % is not tracked', rel USING ERRCODE = 'undefined_object',
            HINT = format('Track it first: SELECT asymm.track(%L).', rel::text);
    END IF;
    IF cardinality(parts) IS DISTINCT FROM cardinality(types) OR array_position(parts, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'the key of % has % part(s), got %', rel, cardinality(types), coalesce(cardinality(parts), 0)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Give one non-NULL value per primary-key column, in key order.';
    END IF;
    -- (the types are format_type() names from the catalog, quoted where needed: no caller text)
    IF cardinality(types) = 1 THEN
        expr := format('SELECT ($1[1]::%s)::text', types[1]);
    ELSE
        SELECT format('SELECT jsonb_build_array(%s)::text', string_agg(format('$1[%s]::%s', i, types[i]), ', ' ORDER BY i))
          INTO expr FROM generate_subscripts(types, 1) AS i;
    END IF;
    BEGIN
        EXECUTE expr INTO result USING parts;
    EXCEPTION WHEN data_exception THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
        RAISE EXCEPTION 'invalid key for %: %', rel, message USING ERRCODE = state,
            HINT = format('The key columns are of type %s.', array_to_string(types, ', '));
    END;
    RETURN result;
END
$$;
COMMENT ON FUNCTION asymm.sync_key_text(regclass, text[]) IS 'The canonical key text (the part of a Redis key after the table) of the row whose primary key parts, as text, are given: each part is read by its column type''s input function and written back under the settings the capture uses';

-- A tracked table whose name no longer matches its Redis keys (ALTER TABLE ... RENAME / SET SCHEMA,
-- ALTER SCHEMA ... RENAME): queue an 'X' row carrying the old names (a JSON array [schema, table]:
-- a 'schema.table' text would be ambiguous, "a.b".c against a."b.c"), so the sync worker clears the
-- keys under it (a reader of the old name must not get rows that no longer change), and copy the
-- table again under its new name.  The worker skips the clearing when the old name belongs to a
-- tracked table again by then (renamed back, or another table took it): that table's own backfill
-- resets those keys.
CREATE FUNCTION asymm._sync_forget_old_names() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    moved integer;
BEGIN
    WITH renamed AS (
        UPDATE asymm.sync_tables t
           SET redis_name = jsonb_build_array(n.nspname, c.relname)::text, backfill_state = 'pending',
               backfill_cursor = NULL
          FROM asymm.sync_tables o, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE o.rel = t.rel AND c.oid = t.rel
           AND t.redis_name IS DISTINCT FROM jsonb_build_array(n.nspname, c.relname)::text
        RETURNING t.rel::oid AS rel, o.redis_name AS old_name),
    queued AS (
        INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)
        SELECT asymm.sync_slot(), pg_current_xact_id(), r.rel, 'X', ARRAY[r.old_name]
          FROM renamed r WHERE r.old_name IS NOT NULL)
    SELECT count(*) INTO moved FROM renamed;
    IF moved > 0 THEN
        PERFORM asymm.sync_notify();
    END IF;
    RETURN moved;
END
$$;
COMMENT ON FUNCTION asymm._sync_forget_old_names() IS 'Tracked tables renamed since their keys were written: queue the clearing of the keys under the old name and a new backfill (count of tables)';

CREATE FUNCTION asymm.track(rel regclass, sensitive text[] DEFAULT '{}') RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols text[];
    types text[];
    kind "char";
    args text;
    bad text;
    trig name;
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION 'rel must not be NULL' USING ERRCODE = 'null_value_not_allowed',
              HINT = 'Pass a table, e.g. asymm.track(''public.orders'').';
    END IF;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = rel;
    IF kind NOT IN ('r', 'p') OR rel::oid IN ('asymm.sync_outbox'::regclass, 'asymm.sync_tables'::regclass)
       OR (SELECT relnamespace FROM pg_class WHERE oid = rel)
          IN ('asymm'::regnamespace, 'pg_catalog'::regnamespace, 'information_schema'::regnamespace) THEN
        RAISE EXCEPTION 'rel %: only ordinary user tables can be tracked', rel
              USING ERRCODE = 'wrong_object_type', HINT = 'Pass a plain or partitioned table outside schemas asymm, pg_catalog and information_schema.';
    END IF;
    SELECT array_agg(a.attname::text ORDER BY k.ord), array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord)
      INTO cols, types
      FROM pg_index i
      CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = rel AND i.indisprimary;
    IF cols IS NULL THEN
        RAISE EXCEPTION 'rel %: a tracked table needs a primary key', rel
              USING ERRCODE = 'invalid_table_definition', HINT = 'Add a PRIMARY KEY: Redis keys are built from it.';
    END IF;
    sensitive := coalesce(sensitive, '{}');
    SELECT s INTO bad FROM unnest(sensitive) s  -- (a NULL element is a column that does not exist)
     WHERE s IS NULL OR NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = s
                                                     AND a.attnum > 0 AND NOT a.attisdropped);
    IF FOUND THEN
        RAISE EXCEPTION 'sensitive: column % does not exist in %', asymm._shown(bad), rel
              USING ERRCODE = 'undefined_column', HINT = 'Name existing columns of the table.';
    END IF;
    PERFORM asymm._sync_refuse_untrusted_types(rel);
    IF sensitive && cols THEN
        RAISE EXCEPTION 'sensitive: primary key columns cannot be sensitive (%)', array_to_string(cols, ', ')
              USING ERRCODE = 'invalid_parameter_value', HINT = 'The key is part of the Redis key name; leave it out.';
    END IF;
    -- A partition's changes are recorded under its tracked ancestor (sql/43_sync_exact.sql): one of
    -- a tree at most.
    SELECT t.rel::text INTO bad FROM asymm.sync_tables t
     WHERE t.rel <> track.rel
       AND (t.rel::oid IN (SELECT a.relid::oid FROM pg_partition_ancestors(track.rel) a)
            OR t.rel::oid IN (SELECT x.relid::oid FROM pg_partition_tree(track.rel) x));
    IF FOUND THEN
        RAISE EXCEPTION 'rel %: % is tracked, and a partition and its partitioned table cannot both be', rel, bad
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Track the topmost partitioned table only: it covers all its partitions.';
    END IF;
    -- The capture function learns the key columns from the triggers' arguments, the same list
    -- as asymm.sync_tables.key_columns: capture and worker agree on the key even if the primary
    -- key is later changed (re-tracking picks the new one up).
    SELECT string_agg(quote_literal(c), ', ' ORDER BY o) INTO args FROM unnest(cols) WITH ORDINALITY AS u(c, o);
    FOR trig IN SELECT tgname FROM pg_trigger WHERE tgrelid = rel AND tgname LIKE 'asymm\_sync\_%' LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trig, rel);
    END LOOP;
    EXECUTE format('CREATE TRIGGER asymm_sync_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_capture(%s)', rel, args);
    EXECUTE format('CREATE TRIGGER asymm_sync_upd AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows'
                   ' NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_capture(%s)', rel, args);
    EXECUTE format('CREATE TRIGGER asymm_sync_del AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_capture(%s)', rel, args);
    EXECUTE format('CREATE TRIGGER asymm_sync_trunc AFTER TRUNCATE ON %s FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION asymm._sync_truncated()', rel);

    -- (Re)tracking starts a fresh backfill: the daemon reads the table in snapshots taken after
    -- this transaction commits, and every change not visible to them is in the outbox.
    INSERT INTO asymm.sync_tables AS t (rel, key_columns, key_types, sensitive)
    VALUES (rel, cols, types, sensitive)
    ON CONFLICT ON CONSTRAINT sync_tables_pkey DO UPDATE
       SET key_columns = excluded.key_columns, key_types = excluded.key_types, sensitive = excluded.sensitive,
           tracked_at = now(), backfill_state = 'pending', backfill_cursor = NULL;
    INSERT INTO asymm.sync_sensitive_pins AS p (rel, attnums)
    VALUES (rel, ARRAY(SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = ANY (sensitive)
                          AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum))
    ON CONFLICT ON CONSTRAINT sync_sensitive_pins_pkey DO UPDATE SET attnums = excluded.attnums;
    -- Records the table's Redis name (a new row has none yet), and clears the keys under an old one
    -- (re-tracking a table renamed while the event trigger was off).
    PERFORM asymm._sync_forget_old_names();
    PERFORM asymm._grant_tracked_to_daemons(rel);
    -- Exactness through DDL (sql/43_sync_exact.sql): the columns the keys are written with, and the
    -- capture triggers on every partition (the backfill copies their rows).
    UPDATE asymm.sync_tables t SET column_signature = asymm._sync_column_signature(t.rel) WHERE t.rel = track.rel;
    DELETE FROM asymm.sync_partitions s WHERE s.root = track.rel;  -- (re)installed with the current key
    PERFORM asymm._sync_follow_partitions(false);
    PERFORM asymm.sync_notify();
    PERFORM asymm._sync_fire_always(rel);  -- (last: it is an ALTER TABLE, see sql/44_sync_always.sql)
END
$$;
COMMENT ON FUNCTION asymm.track(regclass, text[]) IS 'Mirror a table into Redis: installs statement-level capture triggers and queues a backfill; sensitive columns are dropped or HMACed';

CREATE FUNCTION asymm.untrack(rel regclass, keep_keys boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    trig name;
    name text;
BEGIN
    SELECT coalesce(t.redis_name, jsonb_build_array(n.nspname, c.relname)::text) INTO name
      FROM asymm.sync_tables t JOIN pg_class c ON c.oid = t.rel JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE t.rel = untrack.rel;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    FOR trig IN SELECT tgname FROM pg_trigger WHERE tgrelid = rel AND tgname LIKE 'asymm\_sync\_%' LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trig, rel);
    END LOOP;
    DELETE FROM asymm.sync_tables t WHERE t.rel = untrack.rel;
    -- The keys go in the background, as for a dropped table (asymm._sync_sql_drop): an 'X' row
    -- with the names they were written under.  The worker skips it if the table is tracked again
    -- by then (its new backfill resets the keys itself).
    IF NOT coalesce(keep_keys, false) THEN
        INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)
        VALUES (asymm.sync_slot(), pg_current_xact_id(), rel, 'X', ARRAY[name]);
        PERFORM asymm.sync_notify();
    END IF;
    PERFORM asymm._sync_follow_partitions();  -- its partitions lose their triggers
    RETURN true;
END
$$;
COMMENT ON FUNCTION asymm.untrack(regclass, boolean) IS 'Stop mirroring a table: removes its capture triggers; the sync worker then removes its Redis keys, unless keep_keys is true';

CREATE FUNCTION asymm.sync_backfill(rel regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE asymm.sync_tables t SET backfill_state = 'pending', backfill_cursor = NULL WHERE t.rel = sync_backfill.rel;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'rel %: not tracked', rel USING ERRCODE = 'undefined_object',
              HINT = 'Track it first with asymm.track(); SELECT rel FROM asymm.sync_tables lists tracked tables.';
    END IF;
    PERFORM asymm.sync_notify();
END
$$;
COMMENT ON FUNCTION asymm.sync_backfill(regclass) IS 'Ask the sync worker to re-copy a tracked table into Redis (consistent with concurrent writes)';

CREATE FUNCTION asymm.sync_heartbeat() RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)
    VALUES (asymm.sync_slot(), pg_current_xact_id(), 0, 'H', ARRAY[(extract(epoch FROM clock_timestamp()))::text]);
    SELECT asymm.sync_notify();
$$;
COMMENT ON FUNCTION asymm.sync_heartbeat() IS 'Commit a timestamp through the outbox; the sync worker measures commit-to-Redis lag when it applies it';

CREATE FUNCTION asymm.sync_status() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object(
        'position', s.position::text,
        'horizon', pg_snapshot_xmin(pg_current_snapshot())::text,
        'backlog_rows', (SELECT count(*) FROM asymm.sync_outbox o WHERE o.xid >= s.position AND o.rel <> 0),
        'backlog_keys', (SELECT coalesce(sum(cardinality(o.keys)), 0) FROM asymm.sync_outbox o
                          WHERE o.xid >= s.position AND o.rel <> 0),
        'batches', s.batches, 'rows_applied', s.rows_applied, 'keys_applied', s.keys_applied,
        'last_batch_at', s.last_batch_at, 'lag_ms', s.lag_ms, 'lag_at', s.lag_at,
        'last_error', s.last_error, 'last_error_at', s.last_error_at,
        'resyncs', s.resyncs, 'truncations', s.truncations, 'redis_warning', s.redis_warning,
        -- What holds the horizon back: the oldest transaction id still running, in ANY database of
        -- the cluster (snapshots are cluster-wide) or prepared (two-phase).  No query text, no role.
        'horizon_held_by', (
            SELECT jsonb_build_object('kind', o.kind, 'database', o.datname, 'pid', o.pid,
                                      'this_database', o.datname = current_database(),
                                      'xid_age', age(o.xid), 'xact_age_s', round(extract(epoch FROM now() - o.since)::numeric, 3))
              FROM (SELECT 'backend'::text AS kind, a.datname, a.pid, a.backend_xid AS xid, a.xact_start AS since
                      FROM pg_stat_activity a WHERE a.backend_xid IS NOT NULL
                    UNION ALL
                    SELECT 'prepared', p.database, NULL, p.transaction, p.prepared FROM pg_prepared_xacts p) o
             ORDER BY age(o.xid) DESC LIMIT 1),
        'tables', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'table', t.rel::text, 'key', t.key_columns, 'sensitive', t.sensitive,
                       'backfill', t.backfill_state, 'backfilled_at', t.backfilled_at,
                       'rows_backfilled', t.rows_backfilled, 'error', t.sync_error,
                       'error_at', t.sync_error_at) ORDER BY t.rel::text), '[]'::jsonb)
                     FROM asymm.sync_tables t))
      FROM asymm.sync_state s
$$;
COMMENT ON FUNCTION asymm.sync_status() IS 'Redis sync health: position, backlog, lag, last error, tracked tables (read-only)';

-- A tracked table that is dropped (DROP TABLE, DROP SCHEMA ... CASCADE, DROP OWNED): forget its
-- configuration (its triggers went with it) and queue an 'X' outbox row carrying the
-- table's schema and name (a JSON array, as in asymm._sync_forget_old_names), so the sync worker
-- clears its keys in Redis (the catalog no longer knows the name by then).  Never fails the user's DDL: an error becomes a WARNING.
CREATE FUNCTION asymm._sync_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    BEGIN
        IF to_regclass('asymm.sync_tables') IS NULL THEN
            RETURN;  -- DROP EXTENSION asymm CASCADE: our tables are gone already
        END IF;
        WITH gone AS (
            DELETE FROM asymm.sync_tables t
             USING pg_event_trigger_dropped_objects() d
             WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = t.rel::oid
            RETURNING t.rel::oid AS rel, jsonb_build_array(d.schema_name, d.object_name)::text AS name)
        INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)
        SELECT asymm.sync_slot(), pg_current_xact_id(), g.rel, 'X', ARRAY[g.name] FROM gone g;
        IF FOUND THEN
            PERFORM asymm.sync_notify();
        END IF;
    EXCEPTION WHEN others THEN
        RAISE WARNING 'asymm: could not forget the dropped tracked table after %: %', tg_tag, sqlerrm
              USING HINT = 'Its row in asymm.sync_tables and its Redis keys may remain; DELETE the row by hand.';
    END;
    -- A dropped partition of a tracked table: its rows are gone from the table (sql/43_sync_exact.sql).
    BEGIN
        IF to_regprocedure('asymm._sync_forget_dropped_partitions()') IS NOT NULL THEN
            PERFORM asymm._sync_forget_dropped_partitions();
        END IF;
    EXCEPTION WHEN others THEN
        RAISE WARNING 'asymm: could not follow the drop of a partition of a tracked table after %: %', tg_tag, sqlerrm
              USING HINT = 'Its rows may stay in Redis: run SELECT asymm.sync_backfill(''<table>'').';
    END;
END
$$;
COMMENT ON FUNCTION asymm._sync_sql_drop() IS 'Event trigger function: a dropped tracked table leaves asymm.sync_tables and has its Redis keys cleared by the sync worker (never fails the DDL)';

CREATE EVENT TRIGGER asymm_sync_sql_drop ON sql_drop
    EXECUTE FUNCTION asymm._sync_sql_drop();
COMMENT ON EVENT TRIGGER asymm_sync_sql_drop IS 'asymm: a dropped tracked table stops being mirrored and its Redis keys are cleared';

-- Sensitivity follows the column, not its name: after any ALTER TABLE, each tracked table's
-- sensitive names become the current names of its pinned columns (a RENAME COLUMN renames them, a
-- DROP COLUMN removes them).  A table with no pin in this database (restored by pg_restore, whose
-- oids and attnums are new) is pinned from its names first.  Changing sync_tables.sensitive
-- changes the sync worker's tables fingerprint, so the worker throws away a batch read with the
-- old list, in the same snapshot as the rename, and rebuilds its statements.
CREATE FUNCTION asymm._sync_follow_sensitive() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    changed integer;
BEGIN
    INSERT INTO asymm.sync_sensitive_pins (rel, attnums)
    SELECT t.rel, ARRAY(SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = t.rel AND a.attname = ANY (t.sensitive)
                           AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
      FROM asymm.sync_tables t
     WHERE NOT EXISTS (SELECT FROM asymm.sync_sensitive_pins p WHERE p.rel = t.rel)
    ON CONFLICT DO NOTHING;
    WITH current AS (
        SELECT p.rel, coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attnum IS NOT NULL), '{}') AS names,
               coalesce(array_agg(a.attnum ORDER BY a.attnum) FILTER (WHERE a.attnum IS NOT NULL), '{}') AS attnums
          FROM asymm.sync_sensitive_pins p
          LEFT JOIN pg_attribute a ON a.attrelid = p.rel AND a.attnum = ANY (p.attnums) AND NOT a.attisdropped
         GROUP BY p.rel),
    pins AS (
        UPDATE asymm.sync_sensitive_pins p SET attnums = c.attnums
          FROM current c WHERE c.rel = p.rel AND p.attnums IS DISTINCT FROM c.attnums)
    UPDATE asymm.sync_tables t SET sensitive = c.names
      FROM current c
     WHERE c.rel = t.rel AND NOT (t.sensitive @> c.names AND c.names @> t.sensitive);
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END
$$;
COMMENT ON FUNCTION asymm._sync_follow_sensitive() IS 'Event trigger helper: the sensitive names of each tracked table follow its pinned columns (renamed, dropped); pins a restored table from its names; internal';

-- Renames (see asymm._sync_forget_old_names).  On PostgreSQL 15 an event trigger function cannot be
-- PL/Python; this one is PL/pgSQL and, like the drop one, never fails the user's DDL for a rename.
CREATE FUNCTION asymm._sync_ddl_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('asymm.sync_firing_always', true) = 'on' THEN
        RETURN;  -- asymm's own ALTER TABLE ... ENABLE ALWAYS TRIGGER (asymm._sync_fire_always)
    END IF;
    BEGIN
        IF to_regclass('asymm.sync_tables') IS NOT NULL THEN
            PERFORM asymm._sync_forget_old_names();
        END IF;
    EXCEPTION WHEN others THEN
        RAISE WARNING 'asymm: could not follow the rename of a tracked table after %: %', tg_tag, sqlerrm
              USING HINT = 'Run SELECT asymm.track(''<table>'') again: keys under the old name stay in Redis until then.';
    END;
    BEGIN
        IF tg_tag = 'ALTER TABLE' AND to_regclass('asymm.sync_tables') IS NOT NULL THEN
            PERFORM asymm._sync_follow_sensitive();
        END IF;
    EXCEPTION WHEN others THEN
        RAISE WARNING 'asymm: could not follow the sensitive columns after %: %', tg_tag, sqlerrm
              USING HINT = 'Run SELECT asymm.track(''<table>'', sensitive => ...) again; until then the sync protects both the old and the new names.';
    END;
    -- Column DDL and partitions of tracked tables (sql/43_sync_exact.sql): never fails the DDL.
    BEGIN
        IF to_regprocedure('asymm._sync_follow_partitions(boolean)') IS NOT NULL
           AND to_regprocedure('asymm._sync_follow_columns()') IS NOT NULL THEN  -- (not while installing)
            PERFORM asymm._sync_follow_partitions();
            PERFORM asymm._sync_follow_columns();
        END IF;
    EXCEPTION WHEN others THEN
        RAISE WARNING 'asymm: could not follow a column or partition change of a tracked table after %: %', tg_tag, sqlerrm
              USING HINT = 'Run SELECT asymm.track(''<table>'') again: its Redis keys may be stale until then.';
    END;
    -- The one DDL this trigger refuses: a tracked table given a column of a type a non-superuser
    -- owns (ALTER TABLE ... ADD COLUMN / ALTER COLUMN ... TYPE), whose casts would run as the daemon.
    IF tg_tag = 'ALTER TABLE' AND to_regclass('asymm.sync_tables') IS NOT NULL THEN
        PERFORM asymm._sync_refuse_untrusted_types(t.rel)
           FROM asymm.sync_tables t
          WHERE t.rel::oid IN (SELECT c.objid FROM pg_event_trigger_ddl_commands() c
                                WHERE c.classid = 'pg_class'::regclass);
    END IF;
END
$$;
COMMENT ON FUNCTION asymm._sync_ddl_end() IS 'Event trigger function: a renamed tracked table has the keys under its old name cleared and is copied again under the new one; refuses only a column of a non-superuser''s type on a tracked table';

CREATE EVENT TRIGGER asymm_sync_ddl_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA', 'CREATE TABLE')
    EXECUTE FUNCTION asymm._sync_ddl_end();
COMMENT ON EVENT TRIGGER asymm_sync_ddl_end IS 'asymm: a tracked table renamed (or moved to another schema, or whose schema is renamed) is mirrored under its new name';
