-- asymm: since 0.2.0
-- Keeping Redis exact through DDL on tracked tables (issue 16, points 4 and 5): column changes,
-- and partitions written, attached, detached, truncated or dropped on their own.  Called from the
-- event triggers and asymm.track()/untrack() in sql/40_sync/.

-- Columns.  The sync writes each row as JSON of all its columns, so ADD COLUMN (with or without a
-- DEFAULT), DROP COLUMN, ALTER COLUMN ... TYPE and RENAME COLUMN change the document of every
-- existing row without an INSERT/UPDATE the capture would see.  asymm.sync_tables keeps a
-- signature of the table's live columns (attnum, name, type); the ddl_command_end event trigger
-- compares it with the catalog and queues a backfill when it differs.  attnum is part of it: a
-- column dropped and re-added under the same name and type in one ALTER TABLE has new values.
CREATE FUNCTION asymm._sync_column_signature(rel regclass) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(string_agg(format('%s %I %s', a.attnum, a.attname, format_type(a.atttypid, a.atttypmod)),
                               ', ' ORDER BY a.attnum), '')
      FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
$$;
COMMENT ON FUNCTION asymm._sync_column_signature(regclass) IS 'The live columns of a table (attnum, name, type) as one text: a change means every Redis document of the table is stale; internal';

CREATE FUNCTION asymm._sync_follow_columns() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
    changed integer := 0;
BEGIN
    FOR t IN
        SELECT s.rel, s.sensitive, asymm._sync_column_signature(s.rel) AS sig,
               (SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord)
                  FROM unnest(s.key_columns) WITH ORDINALITY AS k(name, ord)
                  JOIN pg_attribute a ON a.attrelid = s.rel AND a.attname = k.name
                                     AND a.attnum > 0 AND NOT a.attisdropped) AS types,
               cardinality(s.key_columns) AS nkeys
          FROM asymm.sync_tables s
         WHERE EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = s.rel)
           AND s.column_signature IS DISTINCT FROM asymm._sync_column_signature(s.rel)
         ORDER BY s.rel::oid
    LOOP
        IF cardinality(t.types) = t.nkeys THEN
            -- key_types follow too (ALTER COLUMN ... TYPE of a key column): the worker casts key text to them
            UPDATE asymm.sync_tables s
               SET column_signature = t.sig, key_types = t.types, backfill_state = 'pending', backfill_cursor = NULL
             WHERE s.rel = t.rel;
        ELSE
            -- A key column renamed or dropped: the triggers' arguments name it, so every write would
            -- fail, and so would a backfill.  Track the table again (its primary key now); should
            -- that fail (no primary key left), leave it as it is and say so.
            BEGIN
                PERFORM asymm.track(t.rel, t.sensitive);
            EXCEPTION WHEN others THEN
                RAISE WARNING 'asymm: tracked table %: a key column is gone and it could not be tracked again: %',
                      t.rel, sqlerrm
                      USING HINT = 'Writes to it fail until SELECT asymm.track() succeeds on it, or asymm.untrack() it.';
                CONTINUE;
            END;
        END IF;
        changed := changed + 1;
    END LOOP;
    IF changed > 0 THEN
        PERFORM asymm.sync_notify();
    END IF;
    RETURN changed;
END
$$;
COMMENT ON FUNCTION asymm._sync_follow_columns() IS 'Tracked tables whose columns changed since their keys were written (ADD/DROP/ALTER TYPE/RENAME COLUMN): queue a backfill (count of tables); internal (event trigger)';

-- Partitions.  PostgreSQL fires a partitioned table's statement triggers only for statements on
-- the table itself; a statement on a partition fires the partition's.  So tracking a partitioned
-- table also puts the capture triggers on each of its partitions, at every level, and the ones
-- created or attached later (ddl_command_end); the C capture records their changes under the
-- tracked table (extension/src/sync.c, capture_target).  Which partitions carry them, and for
-- which tracked table, is recorded here: after DETACH PARTITION or DROP TABLE the catalog no
-- longer says whose partition it was.  Rows that leave the tracked table that way (or by TRUNCATE
-- of a partition) queue a 'P' (prune) outbox row for it: the worker walks the table's Redis keys
-- and writes tombstones for those whose rows are gone (control/asymm/sync/engine.py, _prune).
CREATE TABLE asymm.sync_partitions (
    part  regclass PRIMARY KEY,
    root  regclass NOT NULL
);
COMMENT ON TABLE asymm.sync_partitions IS 'Partitions (every level) of tracked partitioned tables that carry capture triggers, and the tracked table they belong to';
SELECT pg_catalog.pg_extension_config_dump('asymm.sync_partitions', '');

-- Put the capture triggers on a partition (the tracked table's key columns as arguments), or
-- take them off (install false).
CREATE FUNCTION asymm._sync_partition_triggers(part regclass, root regclass, install boolean) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text;
    trig name;
BEGIN
    FOR trig IN SELECT tgname FROM pg_trigger WHERE tgrelid = part AND tgname LIKE 'asymm\_sync\_%' AND NOT tgisinternal LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trig, part);
    END LOOP;
    IF NOT install THEN
        RETURN;
    END IF;
    SELECT string_agg(quote_literal(c), ', ' ORDER BY o) INTO args
      FROM asymm.sync_tables t, unnest(t.key_columns) WITH ORDINALITY AS u(c, o) WHERE t.rel = root;
    EXECUTE format('CREATE TRIGGER asymm_sync_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_capture(%s)', part, args);
    EXECUTE format('CREATE TRIGGER asymm_sync_upd AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows'
                   ' NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_capture(%s)', part, args);
    EXECUTE format('CREATE TRIGGER asymm_sync_del AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_capture(%s)', part, args);
    EXECUTE format('CREATE TRIGGER asymm_sync_trunc AFTER TRUNCATE ON %s FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION asymm._sync_truncated()', part);
    PERFORM asymm._sync_fire_always(part);
END
$$;
COMMENT ON FUNCTION asymm._sync_partition_triggers(regclass, regclass, boolean) IS 'Install (or remove) the capture triggers of a partition of a tracked table; internal';

-- Bring the partitions' triggers in line with the catalog: every partition (all levels, foreign
-- tables excepted: no transition tables there) of every tracked partitioned table gets them, and
-- every recorded one that is no longer there (detached, or its tracked table untracked) loses
-- them.  A partition attached with rows has its keys queued as 'I' outbox rows (they entered the
-- tracked table without any INSERT; the worker re-reads them); one that left queues a 'P' row.
-- with_rows false (asymm.track: the backfill copies what is there) queues no keys.
CREATE FUNCTION asymm._sync_follow_partitions(with_rows boolean DEFAULT true) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
    key_expr text;
    moved integer := 0;
BEGIN
    -- gone: no longer a partition of the tracked table recorded for it
    FOR p IN
        SELECT s.part, s.root, (c.oid IS NOT NULL) AS still_exists,
               EXISTS (SELECT 1 FROM asymm.sync_tables t WHERE t.rel = s.root) AS root_tracked
          FROM asymm.sync_partitions s LEFT JOIN pg_class c ON c.oid = s.part
         WHERE c.oid IS NULL OR NOT EXISTS (SELECT 1 FROM asymm.sync_tables t WHERE t.rel = s.root)
            OR s.part::oid NOT IN (SELECT x.relid::oid FROM pg_partition_tree(s.root) x WHERE x.level > 0)
         ORDER BY s.part::oid
    LOOP
        IF p.still_exists THEN
            PERFORM asymm._sync_partition_triggers(p.part, p.root, false);
        END IF;
        IF p.root_tracked THEN
            INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)
            VALUES (asymm.sync_slot(), pg_current_xact_id(), p.root, 'P', NULL);
        END IF;
        DELETE FROM asymm.sync_partitions s WHERE s.part::oid = p.part::oid;
        moved := moved + 1;
    END LOOP;
    -- new: partitions of tracked tables without their triggers (created, attached, or tracked now)
    FOR p IN
        SELECT x.relid::regclass AS part, t.rel AS root, c.relkind, t.key_columns
          FROM asymm.sync_tables t JOIN pg_class r ON r.oid = t.rel AND r.relkind = 'p'
         CROSS JOIN LATERAL pg_partition_tree(t.rel) x JOIN pg_class c ON c.oid = x.relid
         WHERE x.level > 0 AND c.relkind IN ('r', 'p')
           AND NOT EXISTS (SELECT 1 FROM asymm.sync_partitions s WHERE s.part = x.relid::regclass)
         ORDER BY x.relid
    LOOP
        PERFORM asymm._sync_partition_triggers(p.part, p.root, true);
        INSERT INTO asymm.sync_partitions (part, root) VALUES (p.part, p.root);
        IF with_rows AND p.relkind = 'r' THEN
            -- the key text as the capture computes it (control/asymm/sync/tables.py, key_expr); only
            -- keys leave this statement, and the worker reads the rows with its own rights
            SELECT CASE WHEN cardinality(p.key_columns) = 1 THEN format('t.%I::text', p.key_columns[1])
                        ELSE format('jsonb_build_array(%s)::text',
                                    (SELECT string_agg(format('t.%I', k), ', ' ORDER BY o)
                                       FROM unnest(p.key_columns) WITH ORDINALITY AS u(k, o))) END
              INTO key_expr;
            EXECUTE format('INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)'
                           ' SELECT asymm.sync_slot(), pg_current_xact_id(), $1, ''I'', array_agg(k.key)'
                           '   FROM (SELECT %s AS key, (row_number() OVER () - 1) / 10000 AS chunk FROM ONLY %s t) k'
                           '  GROUP BY k.chunk', key_expr, p.part)
              USING p.root::oid;
        END IF;
        moved := moved + 1;
    END LOOP;
    IF moved > 0 THEN
        PERFORM asymm.sync_notify();
    END IF;
    RETURN moved;
END
$$;
COMMENT ON FUNCTION asymm._sync_follow_partitions(boolean) IS 'Partitions of tracked tables get (or lose) the capture triggers; rows entering with ATTACH are queued, rows leaving with DETACH queue a prune (count of partitions changed); internal';

-- Partitions dropped (DROP TABLE, DROP ... CASCADE), called from the sql_drop event trigger: their
-- rows left the tracked table, which is pruned (unless it went too).
CREATE FUNCTION asymm._sync_forget_dropped_partitions() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pruned integer;
BEGIN
    WITH gone AS (
        DELETE FROM asymm.sync_partitions s
         USING pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = s.part::oid
        RETURNING s.root),
    queued AS (
        INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)
        SELECT DISTINCT asymm.sync_slot(), pg_current_xact_id(), g.root::oid, 'P'::"char", NULL::text[]
          FROM gone g WHERE EXISTS (SELECT 1 FROM asymm.sync_tables t WHERE t.rel = g.root)
        RETURNING 1)
    SELECT count(*) INTO pruned FROM queued;
    IF pruned > 0 THEN
        PERFORM asymm.sync_notify();
    END IF;
    RETURN pruned;
END
$$;
COMMENT ON FUNCTION asymm._sync_forget_dropped_partitions() IS 'Dropped partitions of tracked tables: queue a prune of the tracked table (count of tables); internal (sql_drop event trigger)';
