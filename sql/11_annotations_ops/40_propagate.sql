-- asymm: since 0.2.0
-- ---------------------------------------------------------------------------------------------
-- ▷ propagate: the effective annotation of a relation flows to its columns, to the views and
-- materialized views that read it (transitively), and to the tables whose foreign keys reference
-- it.  Copies are source = 'propagated'; a target with a user annotation is left alone.

CREATE FUNCTION asymm.propagate(target regclass) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    addr record;
    origin asymm.annotation_entries;
    decay double precision := asymm.setting('annotations.propagation_decay')::double precision;
    dest record;
    dest_addr record;
    copied integer := 0;
BEGIN
    SELECT * INTO addr FROM asymm._address_of('pg_class'::regclass, target, 0);
    SELECT * INTO origin FROM asymm._ranked(addr.target_type, addr.target_names, addr.target_args) LIMIT 1;
    IF origin.id IS NULL THEN
        RAISE EXCEPTION 'invalid annotation field target: % has no annotation to propagate', target
              USING ERRCODE = 'no_data_found', HINT = 'Annotate it first with asymm.annotate().';
    END IF;
    FOR dest IN
        WITH RECURSIVE readers(relid) AS (
            SELECT DISTINCT r.ev_class FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
             WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
               AND d.refobjid = target AND r.ev_class <> target
            UNION
            SELECT r.ev_class FROM readers x JOIN pg_depend d ON d.refobjid = x.relid
              JOIN pg_rewrite r ON r.oid = d.objid
             WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
               AND r.ev_class <> x.relid)
        SELECT 'pg_class'::regclass::oid AS classid, a.attrelid AS objid, a.attnum::integer AS objsubid
          FROM pg_attribute a WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped
        UNION
        SELECT 'pg_class'::regclass::oid, relid, 0 FROM readers
        UNION
        SELECT 'pg_class'::regclass::oid, k.conrelid, 0 FROM pg_constraint k
         WHERE k.contype = 'f' AND k.confrelid = target AND k.conrelid <> target
    LOOP
        SELECT * INTO dest_addr FROM pg_identify_object_as_address(dest.classid, dest.objid, dest.objsubid);
        CONTINUE WHEN dest_addr.object_names IS NULL;
        CONTINUE WHEN EXISTS (SELECT 1 FROM asymm.annotation_entries e
                               WHERE e.target_type = dest_addr.type AND e.target_names = dest_addr.object_names
                                 AND e.target_args = dest_addr.object_args AND e.source = 'user');
        PERFORM asymm._annotate_object(dest.classid, dest.objid, dest.objsubid, origin.symbol, origin.scope,
                                       origin.regime, origin.cost, origin.lineage, 'propagated',
                                       origin.confidence * decay, origin.id);
        copied := copied + 1;
    END LOOP;
    RETURN copied;
END
$$;
COMMENT ON FUNCTION asymm.propagate(regclass) IS '▷: copy the effective annotation of a relation to its columns, reading views and FK-referencing tables as source=propagated (never over a user annotation); returns how many targets received it';

CREATE FUNCTION asymm._propagate_text(target text, caller_path text) RETURNS integer
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT asymm.propagate(CASE WHEN t.classid = 'pg_class'::regclass THEN t.objid::regclass
                                   ELSE target::regclass END)  -- not a relation: the cast names the error
        FROM asymm._parse_target(target, caller_path) t $$;
COMMENT ON FUNCTION asymm._propagate_text(text, text) IS 'asymm.propagate() of a relation named by text, looked up with the caller''s search_path; internal';

-- Not pinned, and immune: every name in it is schema-qualified (see asymm._session_lookup).
CREATE FUNCTION asymm.propagate(target text) RETURNS integer
LANGUAGE sql VOLATILE
AS $$ SELECT asymm._propagate_text(target, pg_catalog.current_setting('search_path')) $$;
COMMENT ON FUNCTION asymm.propagate(text) IS '▷: propagate the effective annotation of a relation named by text';
