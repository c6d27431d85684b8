-- asymm: since 0.2.0
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
                   'row_security', c.relrowsecurity, 'force_row_security', c.relforcerowsecurity,
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
    UNION ALL
    SELECT jsonb_build_object('kind', 'policy', 'key', 'pol:' || y.oid, 'oid', y.oid,
               'parent', 'rel:' || y.polrelid, 'name', y.polname, 'schema', c.nspname,
               'identity', quote_ident(y.polname) || ' on ' || c.qname, 'qname', quote_ident(y.polname),
               'props', jsonb_build_object(
                   'command', y.polcmd, 'permissive', y.polpermissive,
                   'roles', (SELECT jsonb_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END
                                              ORDER BY 1)
                               FROM unnest(y.polroles) AS r),
                   'using', pg_get_expr(y.polqual, y.polrelid), 'check', pg_get_expr(y.polwithcheck, y.polrelid),
                   '_table', c.qname))
      FROM pg_policy y JOIN rel c ON c.oid = y.polrelid
)
SELECT coalesce(jsonb_agg(item ORDER BY item ->> 'kind', item ->> 'identity'), '[]'::jsonb) FROM items
$$;
COMMENT ON FUNCTION asymm._drift_snapshot(text[], oid[]) IS 'The schema objects drift tracks (tables, columns, constraints, indexes, views, sequences, functions, triggers, policies, schemas) as one jsonb array';

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
