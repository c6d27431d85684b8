-- asymm: since 0.2.0
-- ---------------------------------------------------------------------------------------------
-- Addresses.

-- Whether an address type names a relation (or a column of one) with this relkind.
CREATE FUNCTION asymm._relkind_matches(target_type text, relkind "char") RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE regexp_replace(target_type, ' column$', '')
           WHEN 'table' THEN relkind IN ('r', 'p')
           WHEN 'view' THEN relkind = 'v'
           WHEN 'materialized view' THEN relkind = 'm'
           WHEN 'foreign table' THEN relkind = 'f'
           WHEN 'index' THEN relkind IN ('i', 'I') AND target_type = 'index'
           ELSE false END
$$;
COMMENT ON FUNCTION asymm._relkind_matches(text, "char") IS 'Whether a relation kind fits an address type (table, view, index, ... or a column of one); internal';

-- The object an address names in this database, without raising: NULL when it does not exist.
CREATE FUNCTION asymm._address_object(target_type text, target_names text[], target_args text[],
                                      OUT classid oid, OUT objid oid, OUT objsubid integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel oid;
BEGIN
    IF target_type IN ('function', 'procedure') THEN
        IF cardinality(target_names) <> 2 THEN RETURN; END IF;
        objid := to_regprocedure(format('%I.%I(%s)', target_names[1], target_names[2],
                                        array_to_string(target_args, ',')));
        IF objid IS NOT NULL AND EXISTS (SELECT 1 FROM pg_proc p WHERE p.oid = objid
                                           AND p.prokind = CASE target_type WHEN 'function' THEN 'f' ELSE 'p' END) THEN
            classid := 'pg_proc'::regclass; objsubid := 0;
        ELSE
            objid := NULL;
        END IF;
        RETURN;
    END IF;
    IF target_type = 'query' OR cardinality(target_names) < 2 THEN RETURN; END IF;
    SELECT c.oid INTO rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = target_names[1] AND c.relname = target_names[2]
       AND asymm._relkind_matches(target_type, c.relkind);
    IF rel IS NULL THEN RETURN; END IF;
    IF target_type LIKE '% column' THEN
        IF cardinality(target_names) <> 3 THEN RETURN; END IF;
        SELECT a.attnum INTO objsubid FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attname = target_names[3] AND a.attnum > 0 AND NOT a.attisdropped;
        IF objsubid IS NULL THEN RETURN; END IF;
    ELSE
        IF cardinality(target_names) <> 2 THEN RETURN; END IF;
        objsubid := 0;
    END IF;
    classid := 'pg_class'::regclass;
    objid := rel;
END
$$;
COMMENT ON FUNCTION asymm._address_object(text, text[], text[]) IS 'Resolve a portable address to (classid, objid, objsubid), or NULLs when the object is missing (never raises); internal';

-- Whether a cached OID still denotes an object of the address's type.
CREATE FUNCTION asymm._cache_valid(target_type text, classid oid, objid oid, objsubid integer) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE
    WHEN classid = 'pg_proc'::regclass THEN
        EXISTS (SELECT 1 FROM pg_proc p WHERE p.oid = objid
                   AND p.prokind = CASE target_type WHEN 'function' THEN 'f' WHEN 'procedure' THEN 'p' END)
    WHEN classid = 'pg_class'::regclass THEN
        EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = objid AND asymm._relkind_matches(target_type, c.relkind))
        AND (objsubid = 0) = (target_type NOT LIKE '% column')
        AND (objsubid = 0 OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = objid
                                       AND a.attnum = objsubid AND NOT a.attisdropped))
    ELSE false END
$$;
COMMENT ON FUNCTION asymm._cache_valid(text, oid, oid, integer) IS 'Whether a cached OID still names an object of the annotated kind; internal';

-- Where an annotation's target is now: the cache if still valid (follows renames), else the address.
CREATE FUNCTION asymm._locate(entry_id uuid, target_type text, target_names text[], target_args text[],
                              OUT classid oid, OUT objid oid, OUT objsubid integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT c.classid, c.objid, c.objsubid INTO classid, objid, objsubid
      FROM asymm.annotation_target_cache c WHERE c.entry_id = _locate.entry_id;
    IF FOUND AND asymm._cache_valid(target_type, classid, objid, objsubid) THEN
        RETURN;
    END IF;
    SELECT a.classid, a.objid, a.objsubid INTO classid, objid, objsubid
      FROM asymm._address_object(target_type, target_names, target_args) a;
END
$$;
COMMENT ON FUNCTION asymm._locate(uuid, text, text[], text[]) IS 'Current (classid, objid, objsubid) of an annotation target, or NULLs if it is missing (unresolved); internal';

-- A readable name for an object or, when missing, for its address.
CREATE FUNCTION asymm._target_label(target_type text, target_names text[], target_args text[],
                                    classid oid, objid oid, objsubid integer) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE
    WHEN target_type = 'query' THEN 'query ' || target_names[1]
    WHEN objid IS NULL THEN
        array_to_string(ARRAY(SELECT quote_ident(n) FROM unnest(target_names) n), '.')
        || CASE WHEN target_type IN ('function', 'procedure')
                THEN '(' || array_to_string(target_args, ', ') || ')' ELSE '' END
    WHEN classid = 'pg_proc'::regclass THEN objid::regprocedure::text
    WHEN objsubid > 0 THEN objid::regclass::text || '.'
        || quote_ident((SELECT attname FROM pg_attribute WHERE attrelid = objid AND attnum = objsubid))
    ELSE objid::regclass::text END
$$;
COMMENT ON FUNCTION asymm._target_label(text, text[], text[], oid, oid, integer) IS 'Readable name of an annotation target (its address when the target is missing); internal';

-- Fill the OID cache of new or re-addressed entries when their target exists.  During a restore
-- the rows arrive before post-data objects (indexes); those are resolved at their CREATE.
CREATE FUNCTION asymm._annotation_cache_fill() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found_classid oid; found_objid oid; found_objsubid integer;
BEGIN
    IF NEW.target_type = 'query' THEN
        RETURN NULL;
    END IF;
    SELECT a.classid, a.objid, a.objsubid INTO found_classid, found_objid, found_objsubid
      FROM asymm._address_object(NEW.target_type, NEW.target_names, NEW.target_args) a;
    IF found_objid IS NOT NULL THEN
        INSERT INTO asymm.annotation_target_cache (entry_id, classid, objid, objsubid)
        VALUES (NEW.id, found_classid, found_objid, found_objsubid)
        ON CONFLICT (entry_id) DO UPDATE SET classid = excluded.classid, objid = excluded.objid,
                                             objsubid = excluded.objsubid;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION asymm._annotation_cache_fill() IS 'Trigger: caches the OID of a new annotation target when it exists; internal';

CREATE TRIGGER annotation_entries_cache
AFTER INSERT OR UPDATE OF target_type, target_names, target_args ON asymm.annotation_entries
FOR EACH ROW EXECUTE FUNCTION asymm._annotation_cache_fill();
