-- asymm: since 0.2.0
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
