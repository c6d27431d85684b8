-- asymm: since 0.2.0
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
        RAISE EXCEPTION 'invalid key for %: %', rel, left(message, 200) || CASE WHEN length(message) > 200 THEN format('... (%s characters)', length(message)) ELSE '' END USING ERRCODE = state,
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
