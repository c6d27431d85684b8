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
                   'acl', asymm._drift_acl(coalesce(n.nspacl, acldefault('n', n.nspowner))),
                   -- kinds a baseline taken before 0.3.0 did not record (so: not drift when found now)
                   '_tracks', '["type", "extension", "default_acl"]'::jsonb)) AS item
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
    UNION ALL
    SELECT jsonb_build_object('kind', 'type', 'key', 'typ:' || t.oid, 'oid', t.oid,
               'parent', 'nsp:' || t.typnamespace, 'name', t.typname, 'schema', n.nspname,
               'identity', format('%I.%I', n.nspname, t.typname), 'qname', format('%I.%I', n.nspname, t.typname),
               'props', jsonb_build_object(
                   'typtype', t.typtype, 'owner', pg_get_userbyid(t.typowner),
                   'acl', asymm._drift_acl(coalesce(t.typacl, acldefault('T', t.typowner))),
                   'labels', CASE WHEN t.typtype = 'e' THEN
                       (SELECT jsonb_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e
                         WHERE e.enumtypid = t.oid) END,
                   'base', CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
                   'notnull', CASE WHEN t.typtype = 'd' THEN t.typnotnull END,
                   'default', CASE WHEN t.typtype = 'd' THEN pg_get_expr(t.typdefaultbin, 0) END,
                   'checks', CASE WHEN t.typtype = 'd' THEN
                       (SELECT coalesce(jsonb_object_agg(k.conname, pg_get_constraintdef(k.oid)), '{}')
                          FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c') END,
                   'attributes', CASE WHEN t.typtype = 'c' THEN
                       (SELECT jsonb_agg(jsonb_build_array(a.attname, format_type(a.atttypid, a.atttypmod))
                                         ORDER BY a.attnum)
                          FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0
                           AND NOT a.attisdropped) END))
      FROM pg_type t JOIN nsp n ON n.oid = t.typnamespace
     WHERE (t.typtype IN ('e', 'd')
            OR (t.typtype = 'c' AND (SELECT r.relkind FROM pg_class r WHERE r.oid = t.typrelid) = 'c'))
       AND NOT EXISTS (SELECT 1 FROM member m WHERE m.classid = 'pg_type'::regclass AND m.objid = t.oid)
    UNION ALL
    SELECT jsonb_build_object('kind', 'extension', 'key', 'ext:' || e.oid, 'oid', e.oid,
               'parent', 'nsp:' || e.extnamespace, 'name', e.extname, 'schema', n.nspname,
               'identity', quote_ident(e.extname), 'qname', quote_ident(e.extname),
               'props', jsonb_build_object('version', e.extversion, 'schema', n.nspname))
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE n.oid IN (SELECT oid FROM nsp) OR (schemas IS NULL AND n.nspname NOT IN ('asymm', 'pg_catalog'))
    UNION ALL
    -- Default privileges of one role: in a tracked schema, or everywhere (tracked when every schema
    -- is).  Without a schema, a row replaces the built-in defaults ("_default"), which it equals
    -- again when it disappears.
    SELECT jsonb_build_object('kind', 'default_acl', 'key', 'defacl:' || d.oid, 'oid', d.oid,
               'parent', CASE WHEN d.defaclnamespace <> 0 THEN 'nsp:' || d.defaclnamespace END,
               'name', pg_get_userbyid(d.defaclrole) || ' ' || d.defaclobjtype::text, 'schema', n.nspname,
               'identity', 'FOR ROLE ' || quote_ident(pg_get_userbyid(d.defaclrole))
                           || coalesce(' IN SCHEMA ' || quote_ident(n.nspname), '') || ' ON ' ||
                           CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES'
                                WHEN 'f' THEN 'FUNCTIONS' WHEN 'T' THEN 'TYPES' ELSE 'SCHEMAS' END,
               'qname', NULL,
               'props', jsonb_build_object(
                   'acl', asymm._drift_acl(d.defaclacl),
                   '_role', quote_ident(pg_get_userbyid(d.defaclrole)), '_objtype', d.defaclobjtype::text,
                   '_default', CASE WHEN d.defaclnamespace = 0
                                    THEN asymm._drift_acl(acldefault(CASE d.defaclobjtype WHEN 'S' THEN 's'
                                                                     ELSE d.defaclobjtype END, d.defaclrole))
                                    ELSE '[]'::jsonb END))
      FROM pg_default_acl d LEFT JOIN nsp n ON n.oid = d.defaclnamespace
     WHERE n.oid IS NOT NULL OR (d.defaclnamespace = 0 AND schemas IS NULL)
)
SELECT coalesce(jsonb_agg(item ORDER BY item ->> 'kind', item ->> 'identity'), '[]'::jsonb) FROM items
$$;
COMMENT ON FUNCTION asymm._drift_snapshot(text[], oid[]) IS 'The schema objects drift tracks (tables, columns, constraints, indexes, views, sequences, functions, triggers, policies, types, extensions, default privileges, schemas) as one jsonb array';
