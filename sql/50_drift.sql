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

-- The comparison itself (PL/Python): pairs objects by OID key within the same database, then by
-- identity; reports renames and moves as such; attaches a plan back to the baseline.
CREATE FUNCTION asymm._drift_compare(base jsonb, cur jsonb, same_db boolean, lock_timeout text DEFAULT '2s')
RETURNS jsonb
LANGUAGE plpython3u STABLE
SET search_path = pg_catalog, pg_temp
AS $py$
import json

if base is None or cur is None:
    return None  # as a STRICT function would: nothing to compare
B = json.loads(base)
C = json.loads(cur)
qi = plpy.quote_ident
ql = plpy.quote_literal


def key(o):
    return (o["kind"], o["key"])


def ident_key(o):
    return (o["kind"], o["identity"])


bmap = {key(o): o for o in B}
cmap = {key(o): o for o in C}
pair = {}      # base key -> cur object
rpair = {}     # cur key -> base object
if same_db:
    for k, o in bmap.items():
        if k in cmap:
            pair[k] = cmap[k]
            rpair[k] = o
cur_by_ident = {}
for k, o in cmap.items():
    if k not in rpair:
        cur_by_ident.setdefault(ident_key(o), o)
for k, o in bmap.items():
    if k in pair:
        continue
    c = cur_by_ident.pop(ident_key(o), None)
    if c is not None:
        pair[k] = c
        rpair[key(c)] = o

# Definitions print qualified names: once a schema or relation is renamed, every view, trigger,
# default or partition that mentions it prints differently.  Translate current names back to the
# baseline names before comparing, so one rename is reported once.
renames = []
for k, o in bmap.items():
    c = pair.get(k)
    if c is None or o["kind"] not in ("schema", "table", "view", "sequence", "function"):
        continue
    if o["kind"] == "schema" and o["name"] != c["name"]:
        renames.append((c["qname"] + ".", o["qname"] + "."))
    elif o["kind"] in ("table", "view", "sequence") and o["qname"] != c["qname"]:
        renames.append((c["qname"], o["qname"]))
renames.sort(key=lambda r: -len(r[0]))
TRANSLATED = ("def", "default", "generated", "partition_of", "owned_by", "source")


def translate(value):
    if not isinstance(value, str):
        return value
    for cur_text, base_text in renames:
        value = value.replace(cur_text, base_text)
    return value


base_by_key = {o["key"]: o for o in B}
cur_by_key = {o["key"]: o for o in C}
REL_CHILD = {"column", "constraint", "index", "trigger"}
REL_KW = {"table": "TABLE", "view": "VIEW", "sequence": "SEQUENCE", "index": "INDEX", "function": "FUNCTION",
          "schema": "SCHEMA"}


def kw(o):
    if o["kind"] == "view" and o["props"].get("relkind") == "m":
        return "MATERIALIZED VIEW"
    if o["kind"] == "function" and o["props"].get("prokind") == "p":
        return "PROCEDURE"
    return REL_KW[o["kind"]]


def parent_base(o):
    return base_by_key.get(o["parent"]) if o.get("parent") else None


def parent_paired(o_cur):
    """The baseline partner of a current object's parent, if any."""
    p = o_cur.get("parent")
    if not p:
        return None
    c = cur_by_key.get(p)
    return rpair.get(("table", p)) or rpair.get(("schema", p)) if c is not None else None


def table_now(o_cur):
    """Name of a current object's table once the plan has renamed things back."""
    pb = parent_paired(o_cur)
    return pb["qname"] if pb else cur_by_key[o_cur["parent"]]["qname"]


def schema_name_after(cur_parent_key):
    pb = rpair.get(("schema", cur_parent_key))
    if pb:
        return pb["name"]
    c = cur_by_key.get(cur_parent_key)
    return c["name"] if c else None


items = []


def stmt(phase, sql, hazards=(), transactional=True, online=False):
    return {"phase": phase, "sql": sql, "hazards": list(hazards), "transactional": transactional, "online": online}


def add(kind, obj_b, obj_c, prop, old, new, severity, hazards, plan, detail=""):
    o = obj_b or obj_c
    oids = sorted({int(x["oid"]) for x in (obj_b, obj_c) if x} |
                  {int(x["parent"].split(":")[1]) for x in (obj_b, obj_c)
                   if x and x["kind"] in REL_CHILD and x["parent"]})
    items.append({
        "kind": kind, "object_type": o["kind"],
        "identity": (obj_c or obj_b)["identity"],
        "baseline_identity": obj_b["identity"] if obj_b else None,
        "property": prop, "old": old, "new": new, "severity": severity, "hazards": list(hazards),
        "detail": detail, "plan": plan,
        "match_oids": oids,
        "match_identities": sorted({x["identity"] for x in (obj_b, obj_c) if x}
                                   | {x["identity"].split(" on ", 1)[-1] for x in (obj_b, obj_c)
                                      if x and x["kind"] in ("constraint", "trigger")}
                                   | {x["identity"].rsplit(".", 1)[0] for x in (obj_b, obj_c)
                                      if x and x["kind"] == "column"}
                                   | {x["props"]["partition_of"] for x in (obj_b, obj_c)
                                      if x and x["props"].get("partition_of")}),
    })


# ---- code that a statement runs ----------------------------------------------------------------
# Some ALTER TABLE forms evaluate an expression a role wrote, with the rights of whoever runs the
# statement (ADD COLUMN's default, once, for the "missing value"; a generated column; a domain's
# checks; VALIDATE of a CHECK; ALTER TYPE ... USING; the partition constraint of ATTACH), even on
# an empty table (constant-folding IMMUTABLE calls).  CREATE INDEX and REFRESH run as the table's
# owner and are not listed.  Under the pinned search_path, pg_get_expr() qualifies every function,
# operator and type outside pg_catalog, so a qualified name is another role's code: the plan
# avoids such evaluations where it can and flags the rest with a "runs code of role X" hazard.
import re

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_STRING = re.compile(r"'(?:[^']|'')*'")
_CALL = re.compile(r'(?<![A-Za-z0-9_$."])(' + _IDENT + r')\.(' + _IDENT + r')\s*\(')
_OPERATOR = re.compile(r'OPERATOR\((' + _IDENT + r')\.([^)\s]+)\)')
_CAST = re.compile(r'::(' + _IDENT + r')\.(' + _IDENT + r')')
_owner_plans = {}


def unquote(ident):
    return ident[1:-1].replace('""', '"') if ident.startswith('"') else ident


def catalog_owners(what, schema, name):
    """Owners the catalog knows of a function, operator or type called schema.name."""
    queries = {
        "function": "SELECT DISTINCT pg_get_userbyid(p.proowner) AS o FROM pg_proc p"
                    " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 AND p.proname = $2",
        "operator": "SELECT DISTINCT pg_get_userbyid(p.oprowner) AS o FROM pg_operator p"
                    " JOIN pg_namespace n ON n.oid = p.oprnamespace WHERE n.nspname = $1 AND p.oprname = $2",
        "type": "SELECT DISTINCT pg_get_userbyid(t.typowner) AS o FROM pg_type t"
                " JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1 AND t.typname = $2",
    }
    if what not in _owner_plans:
        _owner_plans[what] = plpy.prepare(queries[what], ["text", "text"])
    return [r["o"] for r in plpy.execute(_owner_plans[what], [schema, name])]


def owners_of(what, schema_q, name_q):
    schema, name = unquote(schema_q), unquote(name_q)
    if what == "function":
        known = sorted({f["props"]["owner"] for f in B
                        if f["kind"] == "function" and f["schema"] == schema and f["name"] == name})
        if known:
            return known
    return sorted(set(catalog_owners(what, schema, name))) or [None]


def expr_code(expr):
    """[(owner, label)] of the other roles' code an expression calls: qualified functions,
    operators and casts outside pg_catalog (a cast may run a cast function or a domain's checks)."""
    if not expr:
        return []
    text = _STRING.sub("''", expr)
    found = []
    for m in _CALL.finditer(text):
        if unquote(m.group(1)) != "pg_catalog":
            found += [(o, f"{m.group(1)}.{m.group(2)}()") for o in owners_of("function", m.group(1), m.group(2))]
    for m in _OPERATOR.finditer(text):
        if unquote(m.group(1)) != "pg_catalog":
            found += [(o, f"OPERATOR({m.group(1)}.{m.group(2)})")
                      for o in owners_of("operator", m.group(1), m.group(2))]
    for m in _CAST.finditer(text):
        if unquote(m.group(1)) != "pg_catalog":
            found += [(o, f"cast to {m.group(1)}.{m.group(2)}") for o in owners_of("type", m.group(1), m.group(2))]
    return found


_domain_plan = []


def type_code(type_text):
    """A domain with CHECK constraints runs them on every value it takes, the first time even
    without a row (loading a domain constant-folds its checks)."""
    if not type_text or "." not in type_text:
        return []
    if not _domain_plan:
        _domain_plan.append(plpy.prepare(
            "SELECT pg_get_userbyid(t.typowner) AS o FROM pg_type t WHERE t.oid = to_regtype($1)"
            "   AND t.typtype = 'd' AND EXISTS (SELECT 1 FROM pg_constraint k"
            "                                    WHERE k.contypid = t.oid AND k.contype = 'c')", ["text"]))
    try:
        rows = plpy.execute(_domain_plan[0], [type_text])
    except plpy.SPIError:
        return []
    return [(r["o"], f"checks of domain {type_text}") for r in rows]


def runs_code(*found_lists):
    """One "runs code of role X: ..." hazard per role, in a stable order."""
    by_owner = {}
    for found in found_lists:
        for owner, label in found:
            labels = by_owner.setdefault(owner, [])
            if label not in labels:
                labels.append(label)
    return [("runs code of role " + qi(owner) if owner else "runs code of an unknown role") + ": "
            + ", ".join(labels) for owner, labels in sorted(by_owner.items(), key=lambda kv: kv[0] or "")]


def table_check_code(table_q):
    """Code of the CHECK constraints of a table (in the baseline or now): an ALTER TYPE re-validates
    those on the column; SET NOT NULL and ATTACH PARTITION constant-fold all of them, to see whether
    they already prove the new constraint."""
    return [x for k in B + C if k["kind"] == "constraint" and k["props"].get("type") == "c"
            and k["props"].get("_table") == table_q for x in expr_code(k["props"].get("def"))]


def partition_key_code(parent_q):
    """A partition key runs its expressions over the rows of a partition being attached."""
    for t in B + C:
        if t["kind"] == "table" and t["qname"] == parent_q and t["props"].get("partition_key"):
            return expr_code(t["props"]["partition_key"])
    return []


# ---- statements that (re)create baseline objects ---------------------------------------------
# Phases: functions are (re)created at 50, before everything that calls them: column defaults
# with code (SET DEFAULT, 52), columns whose generated expression or default must be evaluated
# (52, their NOT NULL at 53), constraints (60-63), indexes (61), views (70), triggers (71).

def column_sql(col, with_default=True):
    p = col["props"]
    s = col["qname"] + " " + p["type"]
    if p.get("collation"):
        s += " COLLATE " + p["collation"]
    if p.get("generated"):
        s += " GENERATED ALWAYS AS (" + p["generated"] + ") STORED"
    if p.get("identity"):
        s += " GENERATED " + ("ALWAYS" if p["identity"] == "a" else "BY DEFAULT") + " AS IDENTITY"
    if p.get("default") is not None and with_default:
        s += " DEFAULT " + p["default"]
    if p.get("notnull"):
        s += " NOT NULL"
    return s


def set_default(table, col):
    """ALTER COLUMN ... SET DEFAULT stores the expression and evaluates nothing."""
    return stmt(52, f"ALTER TABLE {table} ALTER COLUMN {col['qname']} SET DEFAULT {col['props']['default']}")


def add_column(table, col):
    """Re-add a dropped column without evaluating its owner's code where that can be avoided.

    ADD COLUMN ... DEFAULT evaluates a non-volatile default once, at ALTER time, even on an empty
    table: a default that calls another role's code is added afterwards with SET DEFAULT, unless
    the column is NOT NULL (existing rows need its value: flagged, to be run as that role)."""
    p = col["props"]
    code = expr_code(p.get("default"))
    evaluates = bool(p.get("generated")) and bool(expr_code(p["generated"]))
    split = bool(code) and not p.get("notnull")
    plain = dict(col, props=dict(p, notnull=False))
    hazards = ["data loss: the old values cannot be restored"] + runs_code(
        [] if split else code, expr_code(p.get("generated")), type_code(p.get("type")))
    phase = 52 if (code and not split) or evaluates else 40
    plan = [stmt(phase, f"ALTER TABLE {table} ADD COLUMN {column_sql(plain, with_default=not split)}",
                 hazards=hazards)]
    if split:
        plan.append(set_default(table, col))
    if p.get("notnull") and not p.get("identity"):
        plan += not_null_route(table, col["qname"], col["name"], phase=43 if phase == 40 else 53)
    return plan


def not_null_route(table, col_q, col_name, phase=43):
    cname = qi(("asymm_nn_" + col_name)[:63])
    return [
        stmt(phase, f"ALTER TABLE {table} ADD CONSTRAINT {cname} CHECK ({col_q} IS NOT NULL) NOT VALID", online=True),
        stmt(phase, f"ALTER TABLE {table} VALIDATE CONSTRAINT {cname}", online=True),
        stmt(phase, f"ALTER TABLE {table} ALTER COLUMN {col_q} SET NOT NULL", online=True,
             hazards=runs_code(table_check_code(table))),
        stmt(phase, f"ALTER TABLE {table} DROP CONSTRAINT {cname}"),
    ]


def create_constraint(k, fresh_table=False):
    p = k["props"]
    t = p["_table"]
    if p["type"] in ("p", "u") and p.get("_index_def") and not p.get("_partitioned") and not fresh_table:
        idx = p["_index_def"].replace(" INDEX ", " INDEX CONCURRENTLY ", 1)
        idx_name = idx.split(" CONCURRENTLY ", 1)[1].split(" ON ", 1)[0]
        return [stmt(60, idx, transactional=False, online=True),
                stmt(60, f"ALTER TABLE {t} ADD CONSTRAINT {k['qname']} "
                         f"{'PRIMARY KEY' if p['type'] == 'p' else 'UNIQUE'} USING INDEX {idx_name}", online=True)]
    phase = 63 if p["type"] == "f" else (60 if p["type"] in ("p", "u", "x") else 62)
    # A CHECK is added NOT VALID (which evaluates nothing) and then validated, even on a table the
    # plan just created: validating prepares the expression, which constant-folds its calls.
    # (A validated CHECK of a new plain table goes inline into its CREATE TABLE instead.)
    if p["type"] == "c" or (p["type"] == "f" and not fresh_table and not p.get("_partitioned")):
        out = [stmt(phase, f"ALTER TABLE {t} ADD CONSTRAINT {k['qname']} {p['def']} NOT VALID", online=True)]
        if p.get("validated"):
            out.append(stmt(phase, f"ALTER TABLE {t} VALIDATE CONSTRAINT {k['qname']}", online=True,
                            hazards=runs_code(expr_code(p["def"])) if p["type"] == "c" else ()))
        return out
    return [stmt(phase, f"ALTER TABLE {t} ADD CONSTRAINT {k['qname']} {p['def']}",
                 hazards=() if fresh_table else ("long exclusive lock",))]


def create_index(i, fresh_table=False):
    p = i["props"]
    if p.get("_partitioned") or fresh_table:
        return [stmt(61, p["_ddl"], hazards=() if fresh_table else ("blocks writes while building",))]
    return [stmt(61, p["_ddl"].replace(" INDEX ", " INDEX CONCURRENTLY ", 1), transactional=False, online=True)]


def acl_plan(o, old, new, phase=81):
    target = kw(o) + " " + o["qname"]
    if o["kind"] == "view":
        target = "TABLE " + o["qname"]
    out = []
    for entry in sorted(set(new) - set(old)):
        grantee, priv = entry.split(":")[:2]
        out.append(stmt(phase, f"REVOKE {priv} ON {target} FROM {grantee}"))
    for entry in sorted(set(old) - set(new)):
        parts = entry.split(":")
        out.append(stmt(phase, f"GRANT {parts[1]} ON {target} TO {parts[0]}"
                               + (" WITH GRANT OPTION" if len(parts) > 2 else "")))
    return out


def children(base_parent_key, kind):
    return [o for o in B if o.get("parent") == base_parent_key and o["kind"] == kind]


ACL_KIND = {"table": "r", "view": "r", "sequence": "s", "function": "f", "schema": "n"}


def ownership_after_create(o):
    """A re-created object starts with the creator as owner and default privileges: put back
    the baseline owner and grants."""
    p = o["props"]
    if "owner" not in p:
        return []
    out = []
    me = plpy.execute("SELECT current_user AS u")[0]["u"]
    if p["owner"] != me:
        out.append(stmt(80, f"ALTER {kw(o)} {o['qname']} OWNER TO {qi(p['owner'])}"))
    default = json.loads(plpy.execute(
        "SELECT asymm._drift_acl(acldefault(%s, %s::regrole))::text AS a"
        % (ql(ACL_KIND[o["kind"]]), ql(p["owner"])))[0]["a"])
    return out + acl_plan(o, p.get("acl") or [], default)


def create_relation(o):
    return create_relation_only(o) + ownership_after_create(o)


def create_relation_only(o):
    p = o["props"]
    if o["kind"] == "table":
        inline, later = [], []
        if p.get("partition_of"):
            sql = f"CREATE TABLE {o['qname']} PARTITION OF {p['partition_of']} {p['partition_bound']}"
            hazards = runs_code(partition_key_code(p["partition_of"]))
        else:
            cols = sorted(children(o["key"], "column"), key=lambda c: c["props"]["_attnum"])
            # CREATE TABLE evaluates no default or CHECK, but a default must not name a
            # function before the plan re-creates it (phase 50): those are set afterwards.
            later = [c for c in cols if expr_code(c["props"].get("default"))]
            inline = [k for k in children(o["key"], "constraint")
                      if k["props"]["type"] == "c" and k["props"].get("validated")]
            sql = f"CREATE {'UNLOGGED ' if p.get('persistence') == 'u' else ''}TABLE {o['qname']} (" + \
                ", ".join([column_sql(c, with_default=c not in later) for c in cols]
                          + [f"CONSTRAINT {k['qname']} {k['props']['def']}" for k in inline]) + ")"
            if p.get("partition_key"):
                sql += " PARTITION BY " + p["partition_key"]
            # ... but it plans a generated expression and a partition key (checking that they are
            # immutable), which constant-folds their calls.
            hazards = runs_code(expr_code(p.get("partition_key")),
                                *[expr_code(c["props"].get("generated")) for c in cols])
        phase = 32 if not p.get("partition_of") else 33
        out = [stmt(phase, sql, hazards=hazards)] + [set_default(o["qname"], c) for c in later]
        for k in children(o["key"], "constraint"):
            if k not in inline:
                out += create_constraint(k, fresh_table=True)
        for i in children(o["key"], "index"):
            out += create_index(i, fresh_table=True)
        for t in children(o["key"], "trigger"):
            out.append(stmt(71, t["props"]["_ddl"]))
        return out
    if o["kind"] == "view":
        if p["relkind"] == "m":
            # WITH NO DATA, filled by REFRESH once its owner is back: CREATE ... WITH DATA would run
            # the view's query (its functions) with the rights of whoever applies the plan, a
            # superuser; REFRESH runs it as the view's owner, in a security-restricted operation.
            return [stmt(70, f"CREATE MATERIALIZED VIEW {o['qname']} AS {p['def'].rstrip().rstrip(';')} WITH NO DATA"),
                    stmt(82, f"REFRESH MATERIALIZED VIEW {o['qname']}", hazards=("long exclusive lock",))]
        return [stmt(70, f"CREATE VIEW {o['qname']} AS {p['def'].rstrip(';')}")]
    if o["kind"] == "sequence":
        out = [stmt(31, f"CREATE SEQUENCE {o['qname']} AS {p['type']} INCREMENT BY {p['increment']}"
                        f" MINVALUE {p['min']} MAXVALUE {p['max']} START WITH {p['start']} CACHE {p['cache']}"
                        + (" CYCLE" if p["cycle"] else ""))]
        if p.get("owned_by"):
            out.append(stmt(45, f"ALTER SEQUENCE {o['qname']} OWNED BY {p['owned_by']}"))
        return out
    if o["kind"] == "function":
        return [stmt(50, o["props"]["_ddl"])]
    if o["kind"] == "schema":
        return [stmt(30, f"CREATE SCHEMA {o['qname']}")]
    raise ValueError(o["kind"])


def drop_relation(o, for_added=True):
    p = o["props"]
    if o["kind"] == "table":
        return [stmt(91, f"DROP TABLE {o['qname']}", hazards=("data loss",))]
    if o["kind"] == "view":
        return [stmt(11, f"DROP {kw(o)} {o['qname']}")]
    if o["kind"] == "sequence":
        return [stmt(92, f"DROP SEQUENCE {o['qname']}", hazards=("data loss",))]
    if o["kind"] == "function":
        return [stmt(15, f"DROP {kw(o)} {o['qname']}")]
    if o["kind"] == "schema":
        return [stmt(93, f"DROP SCHEMA {o['qname']}")]
    if o["kind"] == "index":
        if p.get("_partitioned"):
            return [stmt(14, f"DROP INDEX {o['qname']}")]
        return [stmt(14, f"DROP INDEX CONCURRENTLY {o['qname']}", transactional=False, online=True)]
    raise ValueError(o["kind"])


# ---- removed -----------------------------------------------------------------------------------
removed_keys = {o["key"] for o in B if key(o) not in pair}
added_keys = {o["key"] for o in C if key(o) not in rpair}

for o in B:
    if key(o) in pair:
        continue
    if o["kind"] in REL_CHILD and o["parent"] in removed_keys:
        continue  # folded into the CREATE TABLE of its table
    p = o["props"]
    if o["kind"] == "column":
        plan = add_column(base_by_key[o["parent"]]["qname"], o)
        add("removed", o, None, None, p, None, "destructive", ["data loss"], plan)
    elif o["kind"] == "constraint":
        add("removed", o, None, None, p["def"], None, "functional", ["constraint dropped"], create_constraint(o))
    elif o["kind"] == "index":
        add("removed", o, None, None, p["def"], None, "functional", ["index dropped"], create_index(o))
    elif o["kind"] == "trigger":
        add("removed", o, None, None, p["def"], None, "functional", ["trigger dropped"],
            [stmt(71, p["_ddl"])])
    elif o["kind"] in ("table", "sequence", "schema"):
        add("removed", o, None, None, None, None, "destructive", ["data loss"] if o["kind"] != "schema" else [],
            create_relation(o))
    else:
        add("removed", o, None, None, None, None, "functional", [], create_relation(o))

# ---- added -------------------------------------------------------------------------------------
for o in C:
    if key(o) in rpair:
        continue
    if o["kind"] in REL_CHILD and o["parent"] in added_keys:
        continue
    p = o["props"]
    if o["kind"] == "column":
        t = table_now(o)
        add("added", None, o, None, None, p, "functional", [],
            [stmt(90, f"ALTER TABLE {t} DROP COLUMN {o['qname']}", hazards=("data loss",))])
    elif o["kind"] == "constraint":
        add("added", None, o, None, None, p["def"], "functional", [],
            [stmt(12 if p["type"] == "f" else 13, f"ALTER TABLE {p['_table']} DROP CONSTRAINT {o['qname']}")])
    elif o["kind"] == "index":
        add("added", None, o, None, None, p["def"], "cosmetic", [], drop_relation(o))
    elif o["kind"] == "trigger":
        add("added", None, o, None, None, p["def"], "functional", [],
            [stmt(10, f"DROP TRIGGER {o['qname']} ON {p['_table']}")])
    else:
        add("added", None, o, None, None, None, "functional", [], drop_relation(o))

# ---- paired: renamed, moved, changed -----------------------------------------------------------
ENABLED = {"O": "ENABLE", "D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}
for o in B:
    c = pair.get(key(o))
    if c is None:
        continue
    bp, cp = o["props"], c["props"]
    kind = o["kind"]
    # moved: a relation or function whose schema is not the partner of the baseline schema
    if kind in ("table", "view", "sequence", "function"):
        sb = pair.get(("schema", o["parent"]))
        moved = (sb["key"] != c["parent"]) if sb else (o["schema"] != c["schema"])
        cur_q = qi(schema_name_after(c["parent"]) or c["schema"]) + "." + \
            (c["qname"].split(".", 1)[1] if kind != "function" else c["qname"].split(".", 1)[1])
        plan = []
        if moved:
            plan.append(stmt(21, f"ALTER {kw(o)} {cur_q} SET SCHEMA {qi(o['schema'])}"))
            cur_q = qi(o["schema"]) + "." + cur_q.split(".", 1)[1]
        if o["name"] != c["name"]:
            plan.append(stmt(21, f"ALTER {kw(o)} {cur_q} RENAME TO {qi(o['name'])}"))
        if moved:
            add("moved", o, c, "schema", o["schema"], c["schema"], "functional", ["breaks dependents"], plan)
        elif plan:
            add("renamed", o, c, "name", o["name"], c["name"], "functional", ["breaks dependents"], plan)
    elif kind == "schema" and o["name"] != c["name"]:
        add("renamed", o, c, "name", o["name"], c["name"], "functional", ["breaks dependents"],
            [stmt(20, f"ALTER SCHEMA {c['qname']} RENAME TO {o['qname']}")])
    elif kind in REL_CHILD and o["name"] != c["name"]:
        t = base_by_key[o["parent"]]["qname"]
        if kind == "column":
            sql = f"ALTER TABLE {t} RENAME COLUMN {c['qname']} TO {o['qname']}"
        elif kind == "constraint":
            sql = f"ALTER TABLE {t} RENAME CONSTRAINT {c['qname']} TO {o['qname']}"
        elif kind == "trigger":
            sql = f"ALTER TRIGGER {c['qname']} ON {t} RENAME TO {o['qname']}"
        else:
            sql = f"ALTER INDEX {qi(o['schema'])}.{qi(c['name'])} RENAME TO {qi(o['name'])}"
        add("renamed", o, c, "name", o["name"], c["name"], "functional" if kind == "column" else "cosmetic",
            ["breaks dependents"] if kind == "column" else [], [stmt(22, sql)])

    # property changes
    for prop in sorted(set(bp) | set(cp)):
        if prop.startswith("_"):
            continue
        old, new = bp.get(prop), cp.get(prop)
        if old == new or (prop in TRANSLATED and old == translate(new)):
            continue
        plan, severity, hazards, k = [], "functional", [], "changed"
        if kind == "column":
            t = base_by_key[o["parent"]]["qname"]
            col = o["qname"]
            if prop == "type":
                hazards = ["table rewrite", "long exclusive lock"]
                # The cast may be another role's (cast function, domain checks), and the rewrite
                # re-validates the table's CHECKs on the column.
                plan = [stmt(41, f"ALTER TABLE {t} ALTER COLUMN {col} TYPE {old} USING {col}::{old}",
                             hazards=["table rewrite", "long exclusive lock", "possible data loss"]
                             + runs_code(type_code(old), expr_code(f"{col}::{old}"), table_check_code(t)))]
            elif prop == "default":
                # SET DEFAULT evaluates nothing; after phase 50, so that its functions exist.
                plan = [stmt(52, f"ALTER TABLE {t} ALTER COLUMN {col} SET DEFAULT {old}") if old is not None
                        else stmt(42, f"ALTER TABLE {t} ALTER COLUMN {col} DROP DEFAULT")]
            elif prop == "notnull":
                if old:
                    plan = not_null_route(t, col, o["name"])
                else:
                    plan = [stmt(43, f"ALTER TABLE {t} ALTER COLUMN {col} DROP NOT NULL")]
                    hazards = ["long exclusive lock"]
            elif prop == "identity":
                if old and not new:
                    plan = [stmt(44, f"ALTER TABLE {t} ALTER COLUMN {col} ADD GENERATED "
                                     f"{'ALWAYS' if old == 'a' else 'BY DEFAULT'} AS IDENTITY")]
                elif new and not old:
                    plan = [stmt(44, f"ALTER TABLE {t} ALTER COLUMN {col} DROP IDENTITY")]
                else:
                    plan = [stmt(44, f"ALTER TABLE {t} ALTER COLUMN {col} SET GENERATED "
                                     f"{'ALWAYS' if old == 'a' else 'BY DEFAULT'}")]
            elif prop == "generated":
                if new and not old:
                    plan = [stmt(44, f"ALTER TABLE {t} ALTER COLUMN {col} DROP EXPRESSION")]
                else:
                    code = runs_code(expr_code(old), expr_code(bp.get("default")), type_code(bp.get("type")))
                    plan = [stmt(44, f"ALTER TABLE {t} DROP COLUMN {col}", hazards=("data loss",)),
                            stmt(52 if code else 44, f"ALTER TABLE {t} ADD COLUMN {column_sql(o)}",
                                 hazards=["table rewrite", "long exclusive lock"] + code)]
                    hazards = ["table rewrite"]
            elif prop == "collation":
                plan = [stmt(41, f"ALTER TABLE {t} ALTER COLUMN {col} TYPE {bp['type']}"
                                 + (f" COLLATE {old}" if old else ' COLLATE "default"'),
                             hazards=["long exclusive lock"] + runs_code(type_code(bp["type"]),
                                                                         table_check_code(t)))]
        elif kind == "constraint":
            t = bp["_table"]
            if prop == "validated" and old and not new:
                k, hazards = "invalid", ["constraint not validated"]
                plan = [stmt(62, f"ALTER TABLE {t} VALIDATE CONSTRAINT {o['qname']}", online=True,
                             hazards=runs_code(expr_code(bp["def"])) if bp.get("type") == "c" else ())]
            elif prop == "validated":
                severity = "cosmetic"
            else:
                plan = [stmt(13, f"ALTER TABLE {cp['_table']} DROP CONSTRAINT {c['qname']}")] + create_constraint(o)
        elif kind == "index":
            if prop == "valid" and old and not new:
                k, hazards = "invalid", ["index invalid"]
                # Drop and rebuild rather than REINDEX: pg_dump leaves invalid indexes out, and an
                # invalid index left by a failed CREATE INDEX CONCURRENTLY is best rebuilt anew.
                plan = [stmt(14, f"DROP INDEX CONCURRENTLY IF EXISTS {qi(o['schema'])}.{qi(c['name'])}",
                             transactional=False, online=True)] + create_index(o)
            elif prop == "valid":
                severity = "cosmetic"
            elif prop in ("def", "unique"):
                if prop == "unique" and "def" in [p2 for p2 in bp if bp.get(p2) != cp.get(p2)]:
                    continue
                hazards = ["index dropped"]
                plan = drop_relation(dict(c, qname=qi(o["schema"]) + "." + qi(o["name"]))) + create_index(o)
        elif kind == "trigger":
            if prop == "enabled":
                plan = [stmt(71, f"ALTER TABLE {bp['_table']} {ENABLED[old]} TRIGGER {o['qname']}")]
            else:
                plan = [stmt(10, f"DROP TRIGGER {c['qname']} ON {cp['_table']}"), stmt(71, bp["_ddl"])]
        elif prop == "owner":
            plan = [stmt(80, f"ALTER {kw(o)} {o['qname']} OWNER TO {qi(old)}")]
            hazards = ["privilege change"]
        elif prop == "acl":
            plan = acl_plan(o, old, new)
            hazards = ["privilege change"]
        elif kind == "view":
            # CREATE OR REPLACE VIEW cannot drop or retype columns: drop and re-create instead.
            plan = [stmt(11, f"DROP {kw(c)} {o['qname']}", hazards=("breaks dependents",))] + create_relation(o)
        elif kind == "function":
            # One statement for all the changes of a function: the first changed property carries it.
            changed = [p2 for p2 in sorted(set(bp) | set(cp)) if not p2.startswith("_")
                       and p2 not in ("owner", "acl") and bp.get(p2) != cp.get(p2)
                       and not (p2 in TRANSLATED and bp.get(p2) == translate(cp.get(p2)))]
            if prop != changed[0]:
                plan = []
            elif {"result", "prokind"} & set(changed):
                plan = [stmt(15, f"DROP {kw(c)} {o['qname']}")] + create_relation(o)
            else:
                plan = [stmt(50, bp["_ddl"])]
        elif kind == "sequence":
            clause = {"type": f"AS {old}", "start": f"START WITH {old}", "increment": f"INCREMENT BY {old}",
                      "min": f"MINVALUE {old}", "max": f"MAXVALUE {old}", "cycle": "CYCLE" if old else "NO CYCLE",
                      "cache": f"CACHE {old}", "owned_by": f"OWNED BY {old or 'NONE'}"}[prop]
            plan = [stmt(45, f"ALTER SEQUENCE {o['qname']} {clause}")]
        elif kind == "table":
            t = o["qname"]
            if prop in ("partition_of", "partition_bound"):
                if prop == "partition_bound" and "partition_of" in [p2 for p2 in bp if bp.get(p2) != cp.get(p2)]:
                    continue
                plan = []
                if new:
                    plan.append(stmt(33, f"ALTER TABLE {cp['partition_of']} DETACH PARTITION {t}"))
                if old:
                    plan.append(stmt(33, f"ALTER TABLE {old if prop == 'partition_of' else bp['partition_of']} "
                                         f"ATTACH PARTITION {t} {bp['partition_bound']}",
                                     hazards=["scans the partition"] + runs_code(partition_key_code(
                                         old if prop == 'partition_of' else bp['partition_of']),
                                         table_check_code(t))))
            elif prop == "persistence":
                plan = [stmt(41, f"ALTER TABLE {t} SET {'UNLOGGED' if old == 'u' else 'LOGGED'}",
                             hazards=("table rewrite", "long exclusive lock"))]
            else:
                plan = []
                severity = "destructive"
                hazards = ["data loss"]
        add(k, o, c, prop, old, new, severity, hazards, plan)

order = {"removed": 0, "renamed": 1, "moved": 2, "changed": 3, "invalid": 4, "added": 5}
items.sort(key=lambda i: (order[i["kind"]], i["object_type"], i["identity"], i["property"] or ""))
return json.dumps(items)
$py$;
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
