-- asymm: since 0.2.0
-- Column types a tracked table may have.  The daemon turns rows into JSON (row_to_json, to_jsonb)
-- and keys into text; both conversions call a cast to json or text when the column's type has one,
-- and the owner of a type may create such casts.  A type owned by a role that is not a superuser is
-- therefore that role's code, run with the daemon's rights on every synced row: a tracked table may
-- not have a column of such a type (looking through domains, arrays, ranges and composite types).
-- Built-in types and the types of extensions a superuser installed (citext, hstore, vector...) are
-- fine: nobody else can give them a cast.
CREATE FUNCTION asymm._sync_untrusted_types(rel regclass) RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH RECURSIVE used(column_name, type_oid, depth) AS (
    SELECT a.attname::text, a.atttypid, 0
      FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT u.column_name, x.inner_type, u.depth + 1
      FROM used u JOIN pg_type t ON t.oid = u.type_oid
      CROSS JOIN LATERAL (
          SELECT t.typbasetype AS inner_type WHERE t.typtype = 'd'
          UNION ALL SELECT t.typelem WHERE t.typelem <> 0 AND t.typsubscript = 'array_subscript_handler'::regproc
          UNION ALL SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = t.oid
          UNION ALL SELECT a.atttypid FROM pg_attribute a
                     WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
      ) x
     WHERE u.depth < 8
)
SELECT array_agg(DISTINCT format('%I (%s, owned by %I)', u.column_name, u.type_oid::regtype, r.rolname)
                 ORDER BY format('%I (%s, owned by %I)', u.column_name, u.type_oid::regtype, r.rolname))
  FROM used u JOIN pg_type t ON t.oid = u.type_oid JOIN pg_roles r ON r.oid = t.typowner
 WHERE NOT r.rolsuper
$$;
COMMENT ON FUNCTION asymm._sync_untrusted_types(regclass) IS 'Columns of a table whose type (through domains, arrays, ranges, composites) belongs to a role that is not a superuser, whose casts would run as the sync daemon; NULL when none; internal';

CREATE FUNCTION asymm._sync_refuse_untrusted_types(rel regclass) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad text[] := asymm._sync_untrusted_types(rel);
BEGIN
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'tracked table %: column % has a type a non-superuser owns', rel, array_to_string(bad, ', ')
              USING ERRCODE = 'insufficient_privilege',
                    HINT = 'The owner of a type can give it a cast to json or text, which the sync daemon would run on every row: use a built-in type or a superuser''s (or untrack the table first).';
    END IF;
END
$$;
COMMENT ON FUNCTION asymm._sync_refuse_untrusted_types(regclass) IS 'Error when a tracked table has a column of a type owned by a non-superuser (see asymm._sync_untrusted_types); internal';
