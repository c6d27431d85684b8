-- asymm: since 0.2.0
-- ---------------------------------------------------------------------------------------------
-- Lifecycle.  Both event triggers must never make user DDL fail: every error becomes a WARNING.

-- Keep addresses current after renames and moves (the OID cache follows the object; the address
-- is what pg_dump carries), and resolve entries whose target has just appeared (an index created
-- after the data of a restore).
CREATE FUNCTION asymm._annotations_refresh(touched oid[], everything boolean) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    addr record;
    changed integer := 0;
BEGIN
    FOR r IN
        SELECT e.id, e.target_type, e.target_names, e.target_args, c.classid, c.objid, c.objsubid
          FROM asymm.annotation_entries e JOIN asymm.annotation_target_cache c ON c.entry_id = e.id
         WHERE everything OR c.objid = ANY (touched)
            OR (c.classid = 'pg_class'::regclass
                AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = c.objid AND i.indrelid = ANY (touched)))
    LOOP
        IF NOT asymm._cache_valid(r.target_type, r.classid, r.objid, r.objsubid) THEN
            CONTINUE;
        END IF;
        SELECT * INTO addr FROM pg_identify_object_as_address(r.classid, r.objid, r.objsubid);
        IF addr.object_names IS NOT NULL AND (addr.type, addr.object_names, addr.object_args)
               IS DISTINCT FROM (r.target_type, r.target_names, r.target_args) THEN
            UPDATE asymm.annotation_entries SET target_type = addr.type, target_names = addr.object_names,
                   target_args = addr.object_args
             WHERE id = r.id;
            changed := changed + 1;
        END IF;
    END LOOP;
    -- entries whose target was missing (or whose cache went stale): resolve by address
    -- (stale caches are only re-checked on a full refresh: _locate() already ignores them)
    WITH pending AS MATERIALIZED (
        SELECT e.id, e.target_type, e.target_names, e.target_args
          FROM asymm.annotation_entries e
          LEFT JOIN asymm.annotation_target_cache c ON c.entry_id = e.id
         WHERE e.target_type <> 'query'
           AND (c.entry_id IS NULL
                OR (everything AND NOT asymm._cache_valid(e.target_type, c.classid, c.objid, c.objsubid))))
    INSERT INTO asymm.annotation_target_cache (entry_id, classid, objid, objsubid)
    SELECT p.id, a.classid, a.objid, a.objsubid
      FROM pending p CROSS JOIN LATERAL asymm._address_object(p.target_type, p.target_names, p.target_args) a
     WHERE a.objid IS NOT NULL
    ON CONFLICT (entry_id) DO UPDATE SET classid = excluded.classid, objid = excluded.objid, objsubid = excluded.objsubid;
    RETURN changed;
END
$$;
COMMENT ON FUNCTION asymm._annotations_refresh(oid[], boolean) IS 'Rewrite the stored address of annotations whose target was renamed or moved, and resolve newly created targets; internal';

CREATE FUNCTION asymm._annotations_ddl_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    touched oid[];
    everything boolean;
BEGIN
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM asymm.annotation_entries) THEN
            RETURN;
        END IF;
        SELECT array_agg(c.objid), coalesce(bool_or(c.classid = 'pg_namespace'::regclass), false)
          INTO touched, everything
          FROM pg_event_trigger_ddl_commands() c;
        PERFORM asymm._annotations_refresh(coalesce(touched, '{}'), everything);
    EXCEPTION WHEN others THEN
        RAISE WARNING 'asymm: could not refresh annotation addresses after %: %', tg_tag, sqlerrm;
    END;
END
$$;
COMMENT ON FUNCTION asymm._annotations_ddl_end() IS 'Event trigger function: keeps annotation addresses current after renames and moves (never fails the DDL)';

CREATE EVENT TRIGGER asymm_annotations_ddl_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW', 'ALTER FOREIGN TABLE', 'ALTER INDEX',
                 'ALTER FUNCTION', 'ALTER PROCEDURE', 'ALTER SCHEMA', 'CREATE INDEX', 'CREATE TABLE',
                 'CREATE VIEW', 'CREATE MATERIALIZED VIEW', 'CREATE FUNCTION', 'CREATE PROCEDURE')
    EXECUTE FUNCTION asymm._annotations_ddl_end();
COMMENT ON EVENT TRIGGER asymm_annotations_ddl_end IS 'asymm: annotations follow renames and schema moves of their targets';

CREATE FUNCTION asymm._annotations_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    BEGIN
        IF to_regclass('asymm.annotation_entries') IS NULL
           OR NOT EXISTS (SELECT 1 FROM asymm.annotation_entries) THEN
            RETURN;
        END IF;
        DELETE FROM asymm.annotation_entries e
         USING pg_event_trigger_dropped_objects() d
         WHERE d.classid IN ('pg_class'::regclass, 'pg_proc'::regclass)
           AND (EXISTS (SELECT 1 FROM asymm.annotation_target_cache c
                         WHERE c.entry_id = e.id AND c.classid = d.classid AND c.objid = d.objid
                           AND (d.objsubid = 0 OR c.objsubid = d.objsubid))
                OR (d.objsubid = 0 AND e.target_type = d.object_type
                    AND e.target_names = d.address_names AND e.target_args = d.address_args)
                -- a dropped table's columns: the table's kind and name (a function may have the same
                -- {schema, name} address)
                OR (d.objsubid = 0 AND d.classid = 'pg_class'::regclass
                    AND e.target_type = d.object_type || ' column'
                    AND e.target_names[1:2] = d.address_names AND cardinality(d.address_names) = 2)
                OR (d.objsubid <> 0 AND e.target_type = d.object_type
                    AND e.target_names = d.address_names));
    EXCEPTION WHEN others THEN
        RAISE WARNING 'asymm: could not remove annotations of dropped objects after %: %', tg_tag, sqlerrm;
    END;
END
$$;
COMMENT ON FUNCTION asymm._annotations_sql_drop() IS 'Event trigger function: removes the annotations of dropped tables, views, columns, indexes and functions (never fails the DDL)';

CREATE EVENT TRIGGER asymm_annotations_sql_drop ON sql_drop
    EXECUTE FUNCTION asymm._annotations_sql_drop();
COMMENT ON EVENT TRIGGER asymm_annotations_sql_drop IS 'asymm: annotations disappear with their target';
