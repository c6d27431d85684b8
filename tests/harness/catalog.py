"""Describe what an extension put in a database, so tests can compare installs.

Used by the upgrade test (an upgraded install must equal a fresh one) and the drop test (nothing
may be left behind).
"""

from __future__ import annotations

import psycopg

# Every object outside the system schemas, by its portable identity.
ALL_OBJECTS = """
SELECT DISTINCT (pg_identify_object(classid, objid, objsubid)).type || ' '
       || (pg_identify_object(classid, objid, objsubid)).identity
  FROM (
    SELECT 'pg_class'::regclass, c.oid, 0 FROM pg_class c
     WHERE c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
       AND c.relnamespace::regnamespace::text NOT LIKE 'pg_toast%'
    UNION ALL SELECT 'pg_proc'::regclass, p.oid, 0 FROM pg_proc p
     WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
    UNION ALL SELECT 'pg_type'::regclass, t.oid, 0 FROM pg_type t
     WHERE t.typnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
       AND t.typnamespace::regnamespace::text NOT LIKE 'pg_toast%'
    UNION ALL SELECT 'pg_namespace'::regclass, n.oid, 0 FROM pg_namespace n
    UNION ALL SELECT 'pg_event_trigger'::regclass, e.oid, 0 FROM pg_event_trigger e
    UNION ALL SELECT 'pg_trigger'::regclass, g.oid, 0 FROM pg_trigger g
    UNION ALL SELECT 'pg_constraint'::regclass, k.oid, 0 FROM pg_constraint k
     WHERE k.connamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
    UNION ALL SELECT 'pg_policy'::regclass, y.oid, 0 FROM pg_policy y
    UNION ALL SELECT 'pg_rewrite'::regclass, r.oid, 0 FROM pg_rewrite r
     WHERE r.ev_class >= 16384
  ) AS objects(classid, objid, objsubid)
"""

# The definition of everything inside schema asymm, detailed enough that two installs which
# print the same are the same to every user.
DEFINITIONS = """
SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text || ' acl=' || coalesce(c.relacl::text, '')
       || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '')
  FROM pg_class c WHERE c.relnamespace = 'asymm'::regnamespace
UNION ALL
SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
       || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text
       || ' comment=' || coalesce(col_description(a.attrelid, a.attnum), '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE c.relnamespace = 'asymm'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'view ' || c.oid::regclass || ' ' || pg_get_viewdef(c.oid)
  FROM pg_class c WHERE c.relnamespace = 'asymm'::regnamespace AND c.relkind IN ('v', 'm')
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'asymm'::regnamespace
UNION ALL
SELECT 'constraint ' || k.conrelid::regclass || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid)
  FROM pg_constraint k WHERE k.connamespace = 'asymm'::regnamespace
UNION ALL
SELECT 'function ' || p.oid::regprocedure || ' ' || pg_get_functiondef(p.oid)
       || ' acl=' || coalesce(p.proacl::text, '') || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '')
  FROM pg_proc p WHERE p.pronamespace = 'asymm'::regnamespace AND p.prokind IN ('f', 'p', 'w')
UNION ALL
SELECT 'aggregate ' || p.oid::regprocedure FROM pg_proc p
 WHERE p.pronamespace = 'asymm'::regnamespace AND p.prokind = 'a'
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE NOT t.tgisinternal AND c.relnamespace = 'asymm'::regnamespace
UNION ALL
SELECT 'event trigger ' || e.evtname || ' ' || e.evtevent || ' ' || e.evtfoid::regproc || ' '
       || e.evtenabled::text || ' ' || coalesce(e.evttags::text, '')
  FROM pg_event_trigger e
UNION ALL
SELECT 'type ' || t.oid::regtype || ' ' || t.typtype::text
       || ' ' || coalesce((SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum
                            WHERE enumtypid = t.oid), '')
  FROM pg_type t WHERE t.typnamespace = 'asymm'::regnamespace AND t.typtype IN ('e', 'd', 'c')
   AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid AND c.relkind <> 'c')
UNION ALL
SELECT 'config dump ' || x.cfg::regclass || ' ' || coalesce(x.cond, '')
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(cfg, cond) WHERE e.extname = 'asymm'
UNION ALL
SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid AND d.refclassid = 'pg_extension'::regclass
 WHERE e.extname = 'asymm' AND d.deptype = 'e'
UNION ALL
SELECT 'schema acl ' || coalesce(n.nspacl::text, '') FROM pg_namespace n WHERE n.nspname = 'asymm'
"""


def object_set(conn: psycopg.Connection[tuple[object, ...]]) -> set[str]:
    return {str(row[0]) for row in conn.execute(ALL_OBJECTS)}


def definitions(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    return sorted(str(row[0]) for row in conn.execute(DEFINITIONS))
