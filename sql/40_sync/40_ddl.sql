-- asymm: since 0.2.0
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
