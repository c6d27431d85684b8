-- asymm: since 0.2.0
-- Schema drift (SPEC section 6): the DDL log written by event triggers, baselines of the schema,
-- and the comparison of a baseline with the live catalog.
--
-- Event triggers are a fast hint, not the truth (they do not fire under
-- session_replication_role = replica, can be disabled, and some commands carry no identity), so
-- drift itself is always computed by a full catalog diff: asymm.drift() compares a stored
-- snapshot with a fresh one and only borrows who/when from the DDL log when it has a matching row.

INSERT INTO asymm.setting_defaults (name, default_value, value_type, min_value, max_value, allowed_values, pattern, description) VALUES
    ('drift.lock_timeout', '2s', 'interval', '1 ms', '1 hour', NULL, '^[0-9]{1,9}(\.[0-9]{1,6})? ?(us|ms|s|min|h|d)$', 'lock_timeout set before every statement of a drift migration plan'),
    ('drift.reconcile_every', '10 s', 'interval', '10 ms', '1 day', NULL, NULL, 'How often the daemon compares every baseline with the catalog'),
    ('drift.restore_indexes', 'false', 'boolean', NULL, NULL, NULL, NULL, 'Opt-in: the daemon re-creates a dropped baseline index with CREATE INDEX CONCURRENTLY');

-- ---------------------------------------------------------------------------------------------
-- The DDL log
-- ---------------------------------------------------------------------------------------------
CREATE TABLE asymm.ddl_log (
    id              bigserial PRIMARY KEY,
    logged_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    txid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event           text NOT NULL CHECK (event IN ('ddl_command_end', 'sql_drop', 'table_rewrite')),
    command_tag     text NOT NULL,
    object_type     text,
    schema_name     text,
    object_identity text,
    classid         oid,
    objid           oid,
    objsubid        integer,
    role_name       name NOT NULL,
    session_role    name NOT NULL,
    statement       text,
    backend_pid     integer NOT NULL DEFAULT pg_backend_pid(),
    application_name text,
    detail          jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE asymm.ddl_log IS 'Every DDL command seen by the asymm_drift_* event triggers: who, when, tag, object identity, statement text, transaction';
CREATE INDEX ddl_log_objid ON asymm.ddl_log (objid);
CREATE INDEX ddl_log_identity ON asymm.ddl_log (object_identity);

CREATE FUNCTION asymm._drift_event() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- SECURITY DEFINER changes current_user to the owner; the role that issued the DDL is the
    -- SET ROLE value when there is one, else the session user.
    who name := CASE WHEN current_setting('role') = 'none' THEN session_user
                     ELSE current_setting('role')::name END;
    query text := current_query();
    app text := current_setting('application_name', true);
    rel oid;
BEGIN
    -- asymm's own scripts (CREATE/ALTER/DROP EXTENSION asymm) are not user DDL; only when that is
    -- all the query string holds: "CREATE EXTENSION IF NOT EXISTS asymm; DROP TABLE t" would
    -- otherwise hide the DROP (a no-op CREATE EXTENSION needs no privilege).
    IF query ~* '^\s*(create|alter|drop)\s+extension\s+(if\s+(not\s+)?exists\s+)?"?asymm"?(\s[^;]*)?;?\s*$' THEN
        RETURN;
    END IF;
    IF TG_EVENT = 'ddl_command_end' THEN
        INSERT INTO asymm.ddl_log (event, command_tag, object_type, schema_name, object_identity,
                                   classid, objid, objsubid, role_name, session_role, statement,
                                   application_name)
        SELECT TG_EVENT, c.command_tag, c.object_type, c.schema_name, c.object_identity,
               c.classid, c.objid, c.objsubid, who, session_user, query, app
          FROM pg_event_trigger_ddl_commands() AS c
         WHERE NOT c.in_extension
           AND c.schema_name IS DISTINCT FROM 'asymm';
    ELSIF TG_EVENT = 'sql_drop' THEN
        IF EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() d
                    WHERE d.object_type = 'extension' AND d.object_identity = 'asymm') THEN
            RETURN;
        END IF;
        INSERT INTO asymm.ddl_log (event, command_tag, object_type, schema_name, object_identity,
                                   classid, objid, objsubid, role_name, session_role, statement,
                                   application_name, detail)
        SELECT TG_EVENT, TG_TAG, d.object_type, d.schema_name, d.object_identity,
               d.classid, d.objid, d.objsubid, who, session_user, query, app,
               jsonb_build_object('original', d.original, 'normal', d.normal,
                                  'is_temporary', d.is_temporary, 'address_names', d.address_names)
          FROM pg_event_trigger_dropped_objects() AS d
         WHERE d.schema_name IS DISTINCT FROM 'asymm'
           AND (d.original OR d.normal)
           AND NOT d.is_temporary;
    ELSIF TG_EVENT = 'table_rewrite' THEN
        rel := pg_event_trigger_table_rewrite_oid();
        INSERT INTO asymm.ddl_log (event, command_tag, object_type, schema_name, object_identity,
                                   classid, objid, objsubid, role_name, session_role, statement,
                                   application_name, detail)
        SELECT TG_EVENT, TG_TAG, o.type, o.schema, o.identity, 'pg_class'::regclass, rel, 0,
               who, session_user, query, app,
               jsonb_build_object('reason', pg_event_trigger_table_rewrite_reason())
          FROM pg_identify_object('pg_class'::regclass, rel, 0) AS o
         WHERE o.schema IS DISTINCT FROM 'asymm';
    END IF;
EXCEPTION WHEN OTHERS THEN
    -- Never make the user's DDL fail because of bookkeeping.
    RAISE WARNING 'asymm: could not record % (%) in asymm.ddl_log: %', TG_TAG, TG_EVENT, SQLERRM;
END
$$;
COMMENT ON FUNCTION asymm._drift_event() IS 'Event-trigger handler: writes asymm.ddl_log; warns instead of failing the DDL';

CREATE EVENT TRIGGER asymm_drift_ddl_command_end ON ddl_command_end EXECUTE FUNCTION asymm._drift_event();
COMMENT ON EVENT TRIGGER asymm_drift_ddl_command_end IS 'asymm: records created and altered objects in asymm.ddl_log';
CREATE EVENT TRIGGER asymm_drift_sql_drop ON sql_drop EXECUTE FUNCTION asymm._drift_event();
COMMENT ON EVENT TRIGGER asymm_drift_sql_drop IS 'asymm: records dropped objects in asymm.ddl_log';
CREATE EVENT TRIGGER asymm_drift_table_rewrite ON table_rewrite EXECUTE FUNCTION asymm._drift_event();
COMMENT ON EVENT TRIGGER asymm_drift_table_rewrite IS 'asymm: records table rewrites (with their reason) in asymm.ddl_log';

-- ---------------------------------------------------------------------------------------------
-- Snapshots and baselines
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION asymm._drift_acl(acl aclitem[]) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce(jsonb_agg(DISTINCT CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(x.grantee)) END
                          || ':' || x.privilege_type || CASE WHEN x.is_grantable THEN ':grant' ELSE '' END), '[]'::jsonb)
  FROM aclexplode(acl) AS x
$$;
COMMENT ON FUNCTION asymm._drift_acl(aclitem[]) IS 'An ACL as a sorted list of grantee:privilege[:grant], independent of grantors';

-- One element per object: kind, key (OID-based, stable across renames inside one database),
-- parent key, local name, schema, identity (portable, quoted), qname (quoted name usable in DDL)
-- and props (compared; keys starting with "_" are kept for plans, never compared).
CREATE FUNCTION asymm._drift_snapshot(schemas text[], extra_nsp oid[] DEFAULT '{}') RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH nsp AS (
    SELECT n.oid, n.nspname, n.nspowner, n.nspacl FROM pg_namespace n
     WHERE (n.nspname = ANY (schemas) OR n.oid = ANY (extra_nsp)
            OR (schemas IS NULL AND n.nspname NOT IN ('asymm', 'information_schema')
                AND n.nspname !~ '^pg_'))
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                          AND d.objid = n.oid AND d.deptype = 'e')
),
member AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e'),
rel AS (
    SELECT c.*, n.nspname, format('%I.%I', n.nspname, c.relname) AS qname
      FROM pg_class c JOIN nsp n ON n.oid = c.relnamespace
     WHERE NOT EXISTS (SELECT 1 FROM member m WHERE m.classid = 'pg_class'::regclass AND m.objid = c.oid)
),
items AS (
    SELECT jsonb_build_object('kind', 'schema', 'key', 'nsp:' || n.oid, 'oid', n.oid, 'parent', NULL,
               'name', n.nspname, 'schema', n.nspname, 'identity', format('%I', n.nspname),
               'qname', format('%I', n.nspname),
               'props', jsonb_build_object('owner', pg_get_userbyid(n.nspowner),
                   'acl', asymm._drift_acl(coalesce(n.nspacl, acldefault('n', n.nspowner))))) AS item
      FROM nsp n
    UNION ALL
    SELECT jsonb_build_object('kind', 'table', 'key', 'rel:' || c.oid, 'oid', c.oid,
               'parent', 'nsp:' || c.relnamespace, 'name', c.relname, 'schema', c.nspname,
               'identity', c.qname, 'qname', c.qname,
               'props', jsonb_build_object(
                   'relkind', c.relkind, 'owner', pg_get_userbyid(c.relowner),
                   'acl', asymm._drift_acl(coalesce(c.relacl, acldefault('r', c.relowner))),
                   'persistence', c.relpersistence,
                   'partition_key', CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
                   'partition_of', (SELECT format('%I.%I', pn.nspname, pc.relname)
                                      FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent
                                      JOIN pg_namespace pn ON pn.oid = pc.relnamespace
                                     WHERE i.inhrelid = c.oid AND c.relispartition),
                   'partition_bound', CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END))
      FROM rel c WHERE c.relkind IN ('r', 'p')
    UNION ALL
    SELECT jsonb_build_object('kind', 'column', 'key', 'att:' || a.attrelid || ':' || a.attnum,
               'oid', a.attrelid, 'parent', 'rel:' || a.attrelid, 'name', a.attname, 'schema', c.nspname,
               'identity', c.qname || '.' || quote_ident(a.attname), 'qname', quote_ident(a.attname),
               'props', jsonb_build_object(
                   'type', format_type(a.atttypid, a.atttypmod),
                   'notnull', a.attnotnull,
                   'default', CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END,
                   'generated', CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END,
                   'identity', nullif(a.attidentity::text, ''),
                   'collation', CASE WHEN a.attcollation <> t.typcollation
                                     THEN (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                                             JOIN pg_namespace cn ON cn.oid = co.collnamespace
                                            WHERE co.oid = a.attcollation) END,
                   '_attnum', a.attnum,
                   '_inherited', a.attinhcount > 0))
      FROM rel c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      JOIN pg_type t ON t.oid = a.atttypid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE c.relkind IN ('r', 'p')
    UNION ALL
    SELECT jsonb_build_object('kind', 'constraint', 'key', 'con:' || k.oid, 'oid', k.oid,
               'parent', 'rel:' || k.conrelid, 'name', k.conname, 'schema', c.nspname,
               'identity', quote_ident(k.conname) || ' on ' || c.qname, 'qname', quote_ident(k.conname),
               'props', jsonb_build_object(
                   'type', k.contype, 'def', pg_get_constraintdef(k.oid), 'validated', k.convalidated,
                   '_index_def', CASE WHEN k.contype IN ('p', 'u') THEN pg_get_indexdef(k.conindid) END,
                   '_table', c.qname, '_partitioned', c.relkind = 'p'))
      FROM pg_constraint k JOIN rel c ON c.oid = k.conrelid
     WHERE k.contype IN ('c', 'f', 'p', 'u', 'x') AND k.conparentid = 0 AND k.conislocal
    UNION ALL
    SELECT jsonb_build_object('kind', 'index', 'key', 'rel:' || ic.oid, 'oid', ic.oid,
               'parent', 'rel:' || i.indrelid, 'name', ic.relname, 'schema', ic.nspname,
               'identity', ic.qname, 'qname', ic.qname,
               'props', jsonb_build_object(
                   'def', substring(pg_get_indexdef(ic.oid) FROM 'USING .*$'),
                   'unique', i.indisunique,
                   'valid', i.indisvalid,
                   '_ddl', pg_get_indexdef(ic.oid),
                   '_table', tc.qname, '_partitioned', ic.relkind = 'I'))
      FROM pg_index i JOIN rel ic ON ic.oid = i.indexrelid JOIN rel tc ON tc.oid = i.indrelid
     WHERE NOT ic.relispartition
       AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                          AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
    UNION ALL
    SELECT jsonb_build_object('kind', 'view', 'key', 'rel:' || c.oid, 'oid', c.oid,
               'parent', 'nsp:' || c.relnamespace, 'name', c.relname, 'schema', c.nspname,
               'identity', c.qname, 'qname', c.qname,
               'props', jsonb_build_object(
                   'relkind', c.relkind, 'def', pg_get_viewdef(c.oid), 'owner', pg_get_userbyid(c.relowner),
                   'acl', asymm._drift_acl(coalesce(c.relacl, acldefault('r', c.relowner)))))
      FROM rel c WHERE c.relkind IN ('v', 'm')
    UNION ALL
    SELECT jsonb_build_object('kind', 'sequence', 'key', 'rel:' || c.oid, 'oid', c.oid,
               'parent', 'nsp:' || c.relnamespace, 'name', c.relname, 'schema', c.nspname,
               'identity', c.qname, 'qname', c.qname,
               'props', jsonb_build_object(
                   'type', format_type(s.seqtypid, NULL), 'start', s.seqstart, 'increment', s.seqincrement,
                   'min', s.seqmin, 'max', s.seqmax, 'cycle', s.seqcycle, 'cache', s.seqcache,
                   'owned_by', (SELECT format('%s.%I', dc.oid::regclass::text, da.attname)
                                  FROM pg_depend d JOIN pg_class dc ON dc.oid = d.refobjid
                                  JOIN pg_attribute da ON da.attrelid = d.refobjid AND da.attnum = d.refobjsubid
                                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                   AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a'),
                   'owner', pg_get_userbyid(c.relowner),
                   'acl', asymm._drift_acl(coalesce(c.relacl, acldefault('s', c.relowner)))))
      FROM rel c JOIN pg_sequence s ON s.seqrelid = c.oid
     WHERE c.relkind = 'S'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'i')
    UNION ALL
    SELECT jsonb_build_object('kind', 'function', 'key', 'proc:' || p.oid, 'oid', p.oid,
               'parent', 'nsp:' || p.pronamespace, 'name', p.proname, 'schema', n.nspname,
               'identity', format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
               'qname', format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
               'props', jsonb_build_object(
                   'prokind', p.prokind, 'language', l.lanname, 'result', pg_get_function_result(p.oid),
                   'arguments', pg_get_function_arguments(p.oid),
                   'source', p.prosrc, 'volatility', p.provolatile, 'strict', p.proisstrict,
                   'security_definer', p.prosecdef, 'config', p.proconfig,
                   'owner', pg_get_userbyid(p.proowner),
                   'acl', asymm._drift_acl(coalesce(p.proacl, acldefault('f', p.proowner))),
                   '_ddl', pg_get_functiondef(p.oid)))
      FROM pg_proc p JOIN nsp n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
     WHERE p.prokind IN ('f', 'p')
       AND NOT EXISTS (SELECT 1 FROM member m WHERE m.classid = 'pg_proc'::regclass AND m.objid = p.oid)
    UNION ALL
    SELECT jsonb_build_object('kind', 'trigger', 'key', 'trg:' || g.oid, 'oid', g.oid,
               'parent', 'rel:' || g.tgrelid, 'name', g.tgname, 'schema', c.nspname,
               'identity', quote_ident(g.tgname) || ' on ' || c.qname, 'qname', quote_ident(g.tgname),
               'props', jsonb_build_object(
                   'def', replace(replace(pg_get_triggerdef(g.oid), ' ON ' || c.qname || ' ', ' ON <table> '),
                                  'TRIGGER ' || quote_ident(g.tgname) || ' ', 'TRIGGER <name> '),
                   'enabled', g.tgenabled,
                   '_ddl', pg_get_triggerdef(g.oid), '_table', c.qname))
      FROM pg_trigger g JOIN rel c ON c.oid = g.tgrelid
     WHERE NOT g.tgisinternal AND g.tgparentid = 0
)
SELECT coalesce(jsonb_agg(item ORDER BY item ->> 'kind', item ->> 'identity'), '[]'::jsonb) FROM items
$$;
COMMENT ON FUNCTION asymm._drift_snapshot(text[], oid[]) IS 'The schema objects drift tracks (tables, columns, constraints, indexes, views, sequences, functions, triggers, schemas) as one jsonb array';

CREATE TABLE asymm.drift_baselines (
    name         text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,63}$'),
    schemas      text[],
    database_oid oid NOT NULL,
    captured_at  timestamptz NOT NULL DEFAULT now(),
    captured_by  name NOT NULL DEFAULT current_user,
    last_ddl_id  bigint NOT NULL DEFAULT 0,
    snapshot     jsonb NOT NULL
);
COMMENT ON TABLE asymm.drift_baselines IS 'Named schema baselines captured by asymm.baseline(); kept by pg_dump';
SELECT pg_catalog.pg_extension_config_dump('asymm.drift_baselines', '');

CREATE TABLE asymm.drift_findings (
    baseline    text NOT NULL REFERENCES asymm.drift_baselines (name) ON DELETE CASCADE ON UPDATE CASCADE,
    fingerprint text NOT NULL,
    item        jsonb NOT NULL,
    detection   text NOT NULL CHECK (detection IN ('event', 'reconciliation')),
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    PRIMARY KEY (baseline, fingerprint)
);
COMMENT ON TABLE asymm.drift_findings IS 'Drift recorded by asymm.drift_reconcile() (the daemon), with when it was first and last seen';


-- A baseline of nothing would report "no drift" forever: refuse every schema list that cannot be
-- what the caller meant (empty, NULL or duplicate names, a schema that does not exist, a system or
-- extension schema, which the snapshot leaves out), before the old baseline is replaced.
CREATE FUNCTION asymm._drift_check_schemas(schemas text[]) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad text;
BEGIN
    IF schemas IS NULL THEN
        RETURN;  -- every user schema
    END IF;
    IF cardinality(schemas) = 0 OR array_ndims(schemas) <> 1 THEN
        RAISE EXCEPTION 'a baseline needs at least one schema'
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Name the schemas in a one-dimensional array, or pass NULL for every user schema.';
    END IF;
    IF array_position(schemas, NULL) IS NOT NULL OR '' = ANY (schemas) THEN
        RAISE EXCEPTION 'a baseline schema name cannot be NULL or empty'
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Name existing schemas (case-sensitive).';
    END IF;
    SELECT s INTO bad FROM unnest(schemas) s GROUP BY s HAVING count(*) > 1 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'schema % is named twice', asymm._shown(bad)
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Name each schema once.';
    END IF;
    SELECT string_agg(asymm._shown(s), ', ' ORDER BY s) INTO bad
      FROM unnest(schemas) s WHERE NOT EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = s);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'schema % does not exist', bad
              USING ERRCODE = 'invalid_schema_name',
                    HINT = 'Schema names are case-sensitive; SELECT nspname FROM pg_namespace lists them.';
    END IF;
    SELECT string_agg(format('"%s"', n.nspname), ', ' ORDER BY n.nspname) INTO bad
      FROM pg_namespace n
     WHERE n.nspname = ANY (schemas)
       AND (n.nspname ~ '^pg_' OR n.nspname IN ('information_schema', 'asymm')
            OR EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                          AND d.objid = n.oid AND d.deptype = 'e'));
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'schema % cannot be baselined: it belongs to the system or to an extension', bad
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'A baseline covers the schemas of the application; extensions have their own versions.';
    END IF;
END
$$;
COMMENT ON FUNCTION asymm._drift_check_schemas(text[]) IS 'Refuse a baseline schema list that would capture nothing meaningful (empty, duplicate, missing, system or extension schemas)';

CREATE FUNCTION asymm.baseline(name text, schemas text[] DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    snap jsonb;
    baseline_name text := name;
BEGIN
    IF baseline_name IS NULL OR baseline_name !~ '^[A-Za-z0-9_.:-]{1,63}$' THEN
        RAISE EXCEPTION 'invalid baseline name %', asymm._shown(baseline_name)
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'A baseline name is 1 to 63 letters, digits, "_", ".", ":" or "-".';
    END IF;
    PERFORM asymm._drift_check_schemas(schemas);
    snap := asymm._drift_snapshot(schemas);
    INSERT INTO asymm.drift_baselines AS b (name, schemas, database_oid, snapshot, last_ddl_id)
    VALUES (baseline_name, schemas,
            (SELECT oid FROM pg_database WHERE datname = current_database()), snap,
            coalesce((SELECT max(id) FROM asymm.ddl_log), 0))
    ON CONFLICT ON CONSTRAINT drift_baselines_pkey DO UPDATE
       SET schemas = excluded.schemas, database_oid = excluded.database_oid, snapshot = excluded.snapshot,
           captured_at = now(), captured_by = current_user, last_ddl_id = excluded.last_ddl_id;
    UPDATE asymm.drift_findings SET resolved_at = now()
     WHERE baseline = baseline_name AND resolved_at IS NULL;
    RETURN jsonb_array_length(snap);
END
$$;
COMMENT ON FUNCTION asymm.baseline(text, text[]) IS 'Capture (or move) the named schema baseline; schemas NULL means every user schema. Returns the number of objects';

CREATE FUNCTION asymm.drift_accept(name text) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    scope text[];
BEGIN
    SELECT b.schemas INTO scope FROM asymm.drift_baselines b WHERE b.name = drift_accept.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no baseline named %', asymm._shown(drift_accept.name)
              USING ERRCODE = 'undefined_object', HINT = 'SELECT name FROM asymm.drift_baselines lists them.';
    END IF;
    -- Accepting a dropped schema means the baseline stops covering it; a baseline none of whose
    -- schemas remains would capture nothing (asymm.baseline() refuses it).
    IF scope IS NOT NULL THEN
        SELECT array_agg(s ORDER BY o) INTO scope
          FROM unnest(scope) WITH ORDINALITY AS u (s, o)
         WHERE EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = u.s);
        IF scope IS NULL THEN
            RAISE EXCEPTION 'none of the schemas of baseline "%" exists any more', drift_accept.name
                  USING ERRCODE = 'invalid_schema_name',
                        HINT = 'Capture it again with asymm.baseline(name, schemas), or delete it from asymm.drift_baselines.';
        END IF;
    END IF;
    RETURN asymm.baseline(drift_accept.name, scope);
END
$$;
COMMENT ON FUNCTION asymm.drift_accept(text) IS 'Accept the current schema as the new state of the named baseline';

-- The comparison itself (PL/Python, control/asymm/drift/compare.py): pairs objects by OID key
-- within the same database, then by identity; reports renames and moves as such; attaches a plan
-- back to the baseline.
CREATE FUNCTION asymm._drift_compare(base jsonb, cur jsonb, same_db boolean, lock_timeout text DEFAULT '2s')
RETURNS jsonb
LANGUAGE plpython3u STABLE
SET search_path = pg_catalog, pg_temp
AS $plpython$
-- asymm: include control/asymm/drift/compare.py
return compare(base, cur, same_db, lock_timeout, plpy)
$plpython$;
COMMENT ON FUNCTION asymm._drift_compare(jsonb, jsonb, boolean, text) IS 'Compare two snapshots: drift items with kind, severity, hazards and the statements that go back to the first';

CREATE FUNCTION asymm._drift_items(baseline_name text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b asymm.drift_baselines;
    extra oid[];
BEGIN
    SELECT * INTO b FROM asymm.drift_baselines WHERE name = baseline_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no baseline named %', asymm._shown(baseline_name)
              USING ERRCODE = 'undefined_object',
                    HINT = 'Capture one with SELECT asymm.baseline(name); SELECT name FROM asymm.drift_baselines lists them.';
    END IF;
    -- A renamed schema is still in scope: follow the baseline's schema OIDs.
    SELECT coalesce(array_agg((e ->> 'oid')::oid), '{}') INTO extra
      FROM jsonb_array_elements(b.snapshot) e WHERE e ->> 'kind' = 'schema';
    RETURN asymm._drift_compare(
        b.snapshot,
        asymm._drift_snapshot(b.schemas, CASE WHEN b.schemas IS NULL THEN '{}' ELSE extra END),
        b.database_oid = (SELECT oid FROM pg_database WHERE datname = current_database()),
        asymm.setting('drift.lock_timeout'));
END
$$;
COMMENT ON FUNCTION asymm._drift_items(text) IS 'Raw drift items of one baseline (with their plan statements) as jsonb';

CREATE FUNCTION asymm.drift(name text DEFAULT NULL)
RETURNS TABLE (baseline text, kind text, object_type text, identity text, baseline_identity text,
               property text, old_value jsonb, new_value jsonb, severity text, hazards text[],
               who name, changed_at timestamptz, command_tag text, statement text, txid xid8,
               detection text, plan jsonb)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT b.name, i ->> 'kind', i ->> 'object_type', i ->> 'identity', i ->> 'baseline_identity',
       i ->> 'property', i -> 'old', i -> 'new', i ->> 'severity',
       ARRAY(SELECT jsonb_array_elements_text(i -> 'hazards')),
       l.role_name, l.logged_at, l.command_tag,
       -- the statement text only to a login role that may read asymm.ddl_log itself: a DDL's text can
       -- hold a password (ALTER ROLE ... PASSWORD sent in the same query string), and a reader may not
       CASE WHEN pg_catalog.has_table_privilege(session_user, 'asymm.ddl_log', 'SELECT') THEN l.statement END,
       l.txid,
       CASE WHEN l.id IS NULL THEN 'reconciliation' ELSE 'event' END,
       i -> 'plan'
  FROM asymm.drift_baselines b
 CROSS JOIN LATERAL jsonb_array_elements(asymm._drift_items(b.name)) AS i
  LEFT JOIN LATERAL (
        SELECT * FROM asymm.ddl_log l
         WHERE l.id > b.last_ddl_id
           AND (l.objid IN (SELECT (jsonb_array_elements_text(i -> 'match_oids'))::oid)
                OR l.object_identity IN (SELECT jsonb_array_elements_text(i -> 'match_identities')))
         ORDER BY l.object_identity IN (i ->> 'identity', i ->> 'baseline_identity') DESC, l.id DESC
         LIMIT 1) AS l ON true
 WHERE drift.name IS NULL OR b.name = drift.name
 ORDER BY b.name, CASE i ->> 'kind' WHEN 'removed' THEN 0 WHEN 'renamed' THEN 1 WHEN 'moved' THEN 2
                                     WHEN 'changed' THEN 3 WHEN 'invalid' THEN 4 ELSE 5 END,
          i ->> 'object_type', i ->> 'identity', i ->> 'property'
$$;
COMMENT ON FUNCTION asymm.drift(text) IS 'Differences between a baseline (every baseline when NULL) and the live schema, with severity, hazards, who/when from the DDL log and the plan back';

CREATE FUNCTION asymm.drift_plan(name text)
RETURNS TABLE (step integer, phase integer, statement text, transactional boolean, online boolean, hazards text[])
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT (row_number() OVER (ORDER BY (s.value ->> 'phase')::int, s.ord, s.pos))::int,
       (s.value ->> 'phase')::int, s.value ->> 'sql', (s.value ->> 'transactional')::boolean,
       (s.value ->> 'online')::boolean, ARRAY(SELECT jsonb_array_elements_text(s.value -> 'hazards'))
  FROM (SELECT p.value, i.ord, p.ordinality AS pos
          FROM jsonb_array_elements(asymm._drift_items(drift_plan.name)) WITH ORDINALITY AS i(item, ord)
         CROSS JOIN LATERAL jsonb_array_elements(i.item -> 'plan') WITH ORDINALITY AS p) AS s
 ORDER BY 1
$$;
COMMENT ON FUNCTION asymm.drift_plan(text) IS 'Dependency-ordered statements that bring the schema back to the named baseline (online forms first)';

CREATE FUNCTION asymm.drift_sql(name text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce(string_agg(
           CASE WHEN cardinality(p.hazards) > 0
                THEN '-- hazards: ' || array_to_string(p.hazards, ', ') || E'\n' ELSE '' END
           || CASE WHEN NOT p.transactional THEN E'-- cannot run inside a transaction block\n' ELSE '' END
           || format('SET lock_timeout = %L;', asymm.setting('drift.lock_timeout')) || E'\n'
           || p.statement || ';', E'\n' ORDER BY p.step), '-- no drift')
  FROM asymm.drift_plan(drift_sql.name) p
$$;
COMMENT ON FUNCTION asymm.drift_sql(text) IS 'The migration plan of asymm.drift_plan() as one psql script, each statement preceded by its lock_timeout';

CREATE FUNCTION asymm.drift_reconcile() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fresh integer := 0;
    n integer;
BEGIN
    WITH d AS (
        SELECT d.baseline, md5(concat_ws('|', d.kind, d.object_type, d.identity, d.property, d.new_value::text)) AS fp,
               to_jsonb(d) - 'plan' AS item, d.detection
          FROM asymm.drift() d
    ), ins AS (
        INSERT INTO asymm.drift_findings AS f (baseline, fingerprint, item, detection)
        SELECT baseline, fp, item, detection FROM d
        ON CONFLICT (baseline, fingerprint) DO UPDATE
           SET last_seen = now(), resolved_at = NULL, item = excluded.item
        RETURNING (xmax = 0) AS inserted
    ), gone AS (
        UPDATE asymm.drift_findings f SET resolved_at = now()
         WHERE f.resolved_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM d WHERE d.baseline = f.baseline AND d.fp = f.fingerprint)
        RETURNING 1
    )
    SELECT count(*) FILTER (WHERE inserted), (SELECT count(*) FROM gone) INTO fresh, n FROM ins;
    RETURN fresh;
END
$$;
COMMENT ON FUNCTION asymm.drift_reconcile() IS 'Full catalog diff of every baseline, recorded in asymm.drift_findings (daemon task); returns the number of new findings';
