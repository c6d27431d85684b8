-- asymm: since 0.2.0
-- Redis sync (SPEC section 5): change capture into a thin outbox, consumed by the daemon.
--
-- Design, in short (control/asymm/sync/__init__.py has the full argument):
-- * capture: per tracked table, statement-level AFTER triggers with transition tables write ONE
--   outbox row per statement (table, op, xid, keys text[]), so a 200k-row INSERT ... SELECT adds
--   one row holding an array of keys instead of 200k rows;
-- * the outbox row carries pg_current_xact_id(); the daemon only consumes rows whose xid is below
--   the xmin of its snapshot (every such transaction has finished, so no row below it can still
--   appear), which is what makes an out-of-commit-order transaction safe;
-- * the outbox is LIST-partitioned into two slots that alternate with time; a slot whose rows are
--   all consumed is TRUNCATEd (no dead tuples, no vacuum debt) instead of DELETEd.

INSERT INTO asymm.setting_defaults (name, default_value, value_type, description) VALUES
    ('sync.sensitive_mode', 'drop', 'text',
     'What happens to columns named sensitive in asymm.track(): drop (never sent) or hmac (keyed HMAC-SHA256, key from ASYMM_SYNC_HMAC_KEY)'),
    ('sync.batch_rows', '2000', 'integer', 'Outbox rows the sync worker reads per batch'),
    ('sync.backfill_chunk', '5000', 'integer', 'Rows per backfill chunk (each chunk is read in its own snapshot)'),
    ('sync.key_prefix', 'asymm', 'text',
     'Prefix of every Redis key the sync writes: <prefix>:{schema.table}:<key>; give each database syncing into a shared Redis its own (e.g. asymm:<dbname>); no braces'),
    ('sync.tombstone_ttl', '1 day', 'interval', 'How long a delete tombstone stays in Redis (must outlive any in-flight read-through fill)');

-- Tracked tables.  A config table (pg_dump keeps it); regclass dumps as a name, so it survives a
-- dump/restore even though OIDs change.
CREATE TABLE asymm.sync_tables (
    rel             regclass PRIMARY KEY,
    key_columns     text[] NOT NULL,
    key_types       text[] NOT NULL,
    sensitive       text[] NOT NULL DEFAULT '{}',
    tracked_at      timestamptz NOT NULL DEFAULT now(),
    backfill_state  text NOT NULL DEFAULT 'pending' CHECK (backfill_state IN ('pending', 'running', 'done')),
    backfill_cursor text,
    epoch           text,
    backfilled_at   timestamptz,
    rows_backfilled bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE asymm.sync_tables IS 'Tables whose changes asymm mirrors into Redis (asymm.track), with their key and backfill progress';
SELECT pg_catalog.pg_extension_config_dump('asymm.sync_tables', '');

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
    truncations    bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE asymm.sync_state IS 'Sync consumer position (every outbox row with xid below it is applied to Redis) and health counters';
INSERT INTO asymm.sync_state (position) VALUES (pg_snapshot_xmin(pg_current_snapshot()));

-- The slot writers use now: alternates every 10 s.  Inlined into the capture statement.
CREATE FUNCTION asymm.sync_slot() RETURNS smallint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ((extract(epoch FROM now())::bigint / 10) % 2)::smallint $$;
COMMENT ON FUNCTION asymm.sync_slot() IS 'Outbox slot (0 or 1) written by transactions that start now; the other one is truncated once consumed';

CREATE FUNCTION asymm.sync_notify() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- A transaction-local flag: pg_notify runs at most once per transaction (a subtransaction that
    -- rolls back undoes both the flag and its notification).
    IF current_setting('asymm.sync_notified', true) IS DISTINCT FROM 'on' THEN
        PERFORM pg_notify('asymm_sync', '');
        PERFORM set_config('asymm.sync_notified', 'on', true);
    END IF;
END
$$;
COMMENT ON FUNCTION asymm.sync_notify() IS 'Wake the sync worker: one payload-free NOTIFY asymm_sync per transaction';

-- Writers add rows to the outbox with their own rights (the generated capture functions are
-- SECURITY INVOKER, see asymm.track()); row security narrows what a non-owner may insert to what
-- capture writes: rows of its own transaction, for INSERT/UPDATE/DELETE.  The extension owner
-- (heartbeats, TRUNCATE, dropped tables, all through SECURITY DEFINER functions) bypasses it.
ALTER TABLE asymm.sync_outbox_0 ENABLE ROW LEVEL SECURITY;
ALTER TABLE asymm.sync_outbox_1 ENABLE ROW LEVEL SECURITY;
CREATE POLICY capture ON asymm.sync_outbox_0 FOR INSERT TO PUBLIC
    WITH CHECK (slot = 0 AND op IN ('I', 'U', 'D') AND xid = pg_catalog.pg_current_xact_id());
COMMENT ON POLICY capture ON asymm.sync_outbox_0 IS 'Writers of tracked tables may only add I/U/D rows of their own transaction';
CREATE POLICY capture ON asymm.sync_outbox_1 FOR INSERT TO PUBLIC
    WITH CHECK (slot = 1 AND op IN ('I', 'U', 'D') AND xid = pg_catalog.pg_current_xact_id());
COMMENT ON POLICY capture ON asymm.sync_outbox_1 IS 'Writers of tracked tables may only add I/U/D rows of their own transaction';

-- Whether the sync worker waits for a NOTIFY (true) or is draining the outbox anyway (false).
-- Unlogged: a flag flipped on every idle/busy transition needs no WAL; after a crash it is empty,
-- which capture treats as "notify".
CREATE UNLOGGED TABLE asymm.sync_wake (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    listening boolean NOT NULL
);
COMMENT ON TABLE asymm.sync_wake IS 'Set by the sync worker: capture NOTIFYs only while it waits (listening), not while it drains';
INSERT INTO asymm.sync_wake (listening) VALUES (true);

-- TRUNCATE capture: rare, so a plain SECURITY DEFINER function (op 'T' is the one capture row
-- writers cannot add themselves: the worker clears the table's keys on it).
CREATE FUNCTION asymm._sync_truncated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)
    VALUES (asymm.sync_slot(), pg_current_xact_id(), TG_RELID, 'T', NULL);
    PERFORM asymm.sync_notify();
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION asymm._sync_truncated() IS 'TRUNCATE trigger of tracked tables: queues a T outbox row (the worker clears the table''s Redis keys)';

-- Capture functions are found through the triggers that use them, not by name: after a
-- pg_dump/pg_restore a function is still named after the OID its table had in the source database.
CREATE FUNCTION asymm._sync_drop_orphan_captures(keep regprocedure) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f regprocedure;
    n integer := 0;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = 'asymm'::regnamespace AND p.proname LIKE '\_sync\_capture\_%'
                AND p.prorettype = 'trigger'::regtype AND p.oid IS DISTINCT FROM keep::oid
                AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgfoid = p.oid)
                AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                                   AND d.objid = p.oid AND d.deptype = 'e') LOOP
        EXECUTE format('DROP FUNCTION %s', f);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION asymm._sync_drop_orphan_captures(regprocedure) IS 'Drop generated capture functions no trigger uses any more (untrack, re-track, dropped tables)';

CREATE FUNCTION asymm.track(rel regclass, sensitive text[] DEFAULT '{}') RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols text[];
    types text[];
    kind "char";
    keyexpr_new text;
    keyexpr_old text;
    joincond text;
    fn text := format('asymm._sync_capture_%s', rel::oid);
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
    SELECT s INTO bad FROM unnest(sensitive) s
     WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = s
                                                     AND a.attnum > 0 AND NOT a.attisdropped);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'sensitive: column "%" does not exist in %', bad, rel
              USING ERRCODE = 'undefined_column', HINT = 'Name existing columns of the table.';
    END IF;
    IF sensitive && cols THEN
        RAISE EXCEPTION 'sensitive: primary key columns cannot be sensitive (%)', array_to_string(cols, ', ')
              USING ERRCODE = 'invalid_parameter_value', HINT = 'The key is part of the Redis key name; leave it out.';
    END IF;
    IF array_length(cols, 1) = 1 THEN
        keyexpr_new := format('n.%I::pg_catalog.text', cols[1]);
        keyexpr_old := format('o.%I::pg_catalog.text', cols[1]);
    ELSE
        SELECT format('pg_catalog.jsonb_build_array(%s)::pg_catalog.text', string_agg(format('n.%I', c), ', ')),
               format('pg_catalog.jsonb_build_array(%s)::pg_catalog.text', string_agg(format('o.%I', c), ', '))
          INTO keyexpr_new, keyexpr_old FROM unnest(cols) c;
    END IF;

    -- One generated function per table: its statements are static SQL (planned once per session),
    -- which is what keeps bulk statements cheap (a single generic function would have to reach the
    -- key columns through to_jsonb(row) or EXECUTE: measured 1.7x slower on a 200k-row INSERT).
    -- The body names no OID (TG_RELID), so pg_dump/pg_restore carries it over unchanged; the
    -- function is not an extension member (pg_dump must dump it with the triggers that use it), so a
    -- plain DROP EXTENSION refuses while tables are tracked: see asymm.untrack().
    --
    -- It runs on every INSERT/UPDATE/DELETE statement, so it is as lean as PL/pgSQL gets:
    -- * SECURITY INVOKER and no SET clause: a SET search_path (mandatory for SECURITY DEFINER) makes
    --   every call save and restore the GUC, measured ~30 us of a ~250 us pgbench transaction.
    --   Every name is schema-qualified instead; what an unqualified operator resolves to under the
    --   caller's own search_path runs with the caller's own rights only.  Writers need INSERT on the
    --   outbox slots, granted to PUBLIC below and narrowed by row security (asymm.sync_outbox_0/1):
    --   a row a non-owner inserts must carry its own transaction's xid and op I, U or D.  A forged
    --   row can thus only name keys of some table; the worker re-reads those keys' current rows, so
    --   the worst it causes is extra work, never a wrong or lost value (TRUNCATE, table drops and
    --   heartbeats, which the worker does trust, come from SECURITY DEFINER functions only).
    -- * statement-level triggers with transition tables: one outbox row per statement;
    -- * inserts straight into the slot's partition (no tuple routing);
    -- * NOTIFY only when the worker says it is waiting (asymm.sync_wake.listening): while it drains,
    --   a write storm would otherwise signal it on every commit for nothing (NOTIFY takes a global
    --   lock at commit).  PostgreSQL folds identical notifications of one transaction into one, so
    --   a multi-statement transaction still notifies once.  Correctness does not depend on it: the
    --   worker also polls every pulse.
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$s() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER
AS $body$
DECLARE
    k pg_catalog.text[];
BEGIN
    IF TG_OP = 'UPDATE' THEN
        SELECT pg_catalog.array_agg(u.k) INTO k
          FROM (SELECT %3$s AS k FROM new_rows n UNION ALL SELECT %4$s FROM old_rows o) u;
    ELSIF TG_OP = 'INSERT' THEN
        SELECT pg_catalog.array_agg(%3$s) INTO k FROM new_rows n;
    ELSE
        SELECT pg_catalog.array_agg(%4$s) INTO k FROM old_rows o;
    END IF;
    IF k IS NULL THEN
        RETURN NULL;
    END IF;
    IF (pg_catalog.date_part('epoch', pg_catalog.now())::bigint / 10) %% 2 = 0 THEN  -- = asymm.sync_slot()
        INSERT INTO asymm.sync_outbox_0 (slot, xid, rel, op, keys)
        VALUES (0, pg_catalog.pg_current_xact_id(), TG_RELID, pg_catalog.left(TG_OP, 1)::"char", k);
    ELSE
        INSERT INTO asymm.sync_outbox_1 (slot, xid, rel, op, keys)
        VALUES (1, pg_catalog.pg_current_xact_id(), TG_RELID, pg_catalog.left(TG_OP, 1)::"char", k);
    END IF;
    IF (SELECT w.listening FROM asymm.sync_wake w) IS NOT FALSE THEN  -- no row (crash-reset unlogged table): notify
        PERFORM pg_catalog.pg_notify('asymm_sync', '');
    END IF;
    RETURN NULL;
END
$body$ $f$, fn, rel::oid, keyexpr_new, keyexpr_old);
    EXECUTE format('COMMENT ON FUNCTION %s() IS %L', fn,
                   format('asymm sync capture for %s (generated by asymm.track)', rel));

    FOR trig IN SELECT tgname FROM pg_trigger WHERE tgrelid = rel AND tgname LIKE 'asymm\_sync\_%' LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trig, rel);
    END LOOP;
    PERFORM asymm._sync_drop_orphan_captures(to_regprocedure(fn || '()'));
    EXECUTE format('CREATE TRIGGER asymm_sync_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION %s()', rel, fn);
    EXECUTE format('CREATE TRIGGER asymm_sync_upd AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows'
                   ' NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION %s()', rel, fn);
    EXECUTE format('CREATE TRIGGER asymm_sync_del AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION %s()', rel, fn);
    EXECUTE format('CREATE TRIGGER asymm_sync_trunc AFTER TRUNCATE ON %s FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION asymm._sync_truncated()', rel);
    -- The capture function runs with the writer's rights (see above): writers may add I/U/D rows
    -- of their own transaction to the outbox and read the worker's wake flag.  Granted here rather
    -- than at install time because 99_privileges.sql revokes everything from PUBLIC at its end.
    GRANT USAGE ON SCHEMA asymm TO PUBLIC;
    GRANT INSERT ON asymm.sync_outbox_0, asymm.sync_outbox_1 TO PUBLIC;
    GRANT SELECT ON asymm.sync_wake TO PUBLIC;

    -- (Re)tracking starts a fresh backfill: the daemon reads the table in snapshots taken after
    -- this transaction commits, and every change not visible to them is in the outbox.
    INSERT INTO asymm.sync_tables AS t (rel, key_columns, key_types, sensitive)
    VALUES (rel, cols, types, sensitive)
    ON CONFLICT ON CONSTRAINT sync_tables_pkey DO UPDATE
       SET key_columns = excluded.key_columns, key_types = excluded.key_types, sensitive = excluded.sensitive,
           tracked_at = now(), backfill_state = 'pending', backfill_cursor = NULL;
    PERFORM asymm.sync_notify();
END
$$;
COMMENT ON FUNCTION asymm.track(regclass, text[]) IS 'Mirror a table into Redis: installs statement-level capture triggers and queues a backfill; sensitive columns are dropped or HMACed';

CREATE FUNCTION asymm.untrack(rel regclass) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    trig name;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM asymm.sync_tables t WHERE t.rel = untrack.rel) THEN
        RETURN false;
    END IF;
    FOR trig IN SELECT tgname FROM pg_trigger WHERE tgrelid = rel AND tgname LIKE 'asymm\_sync\_%' LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trig, rel);
    END LOOP;
    PERFORM asymm._sync_drop_orphan_captures(NULL);
    DELETE FROM asymm.sync_tables t WHERE t.rel = untrack.rel;
    RETURN true;
END
$$;
COMMENT ON FUNCTION asymm.untrack(regclass) IS 'Stop mirroring a table: removes its capture triggers and function (its Redis keys are left to expire or be cleared by the operator)';

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
        'resyncs', s.resyncs, 'truncations', s.truncations,
        'tables', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'table', t.rel::text, 'key', t.key_columns, 'sensitive', t.sensitive,
                       'backfill', t.backfill_state, 'backfilled_at', t.backfilled_at,
                       'rows_backfilled', t.rows_backfilled) ORDER BY t.rel::text), '[]'::jsonb)
                     FROM asymm.sync_tables t))
      FROM asymm.sync_state s
$$;
COMMENT ON FUNCTION asymm.sync_status() IS 'Redis sync health: position, backlog, lag, last error, tracked tables (read-only)';

-- A tracked table that is dropped (DROP TABLE, DROP SCHEMA ... CASCADE, DROP OWNED): forget its
-- configuration, drop its now unused capture function, and queue an 'X' outbox row carrying the
-- table's name, so the sync worker clears its keys in Redis (the catalog no longer knows the name
-- by then).  Never fails the user's DDL: an error becomes a WARNING.
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
            RETURNING t.rel::oid AS rel, d.schema_name || '.' || d.object_name AS name)
        INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)
        SELECT asymm.sync_slot(), pg_current_xact_id(), g.rel, 'X', ARRAY[g.name] FROM gone g;
        IF FOUND THEN
            PERFORM asymm._sync_drop_orphan_captures(NULL);
            PERFORM asymm.sync_notify();
        END IF;
    EXCEPTION WHEN others THEN
        RAISE WARNING 'asymm: could not forget the dropped tracked table after %: %', tg_tag, sqlerrm
              USING HINT = 'Its row in asymm.sync_tables and its Redis keys may remain; DELETE the row by hand.';
    END;
END
$$;
COMMENT ON FUNCTION asymm._sync_sql_drop() IS 'Event trigger function: a dropped tracked table leaves asymm.sync_tables and has its Redis keys cleared by the sync worker (never fails the DDL)';

CREATE EVENT TRIGGER asymm_sync_sql_drop ON sql_drop
    EXECUTE FUNCTION asymm._sync_sql_drop();
COMMENT ON EVENT TRIGGER asymm_sync_sql_drop IS 'asymm: a dropped tracked table stops being mirrored and its Redis keys are cleared';
