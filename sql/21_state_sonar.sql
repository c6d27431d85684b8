-- asymm: since 0.2.0
-- State Sonar: duplicate rows (by SHA-256 of their values), per-table state report, index health.

-- The SQL expression that hashes one row's chosen columns.  ROW(...)::text is the record's text
-- form, which tells NULL from the empty string; SHA-256 of it is the row's "state".
CREATE FUNCTION asymm._row_state_columns(rel regclass, columns text[] DEFAULT NULL) RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    available text[];
    chosen text[];
    missing text[];
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION 'table must not be NULL' USING ERRCODE = 'null_value_not_allowed',
              HINT = 'Pass a table, for example ''public.orders''::regclass.';
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = rel) NOT IN ('r', 'p', 'm', 'f', 'v') THEN
        RAISE EXCEPTION '"%" is not a table', rel USING ERRCODE = 'wrong_object_type',
              HINT = 'Pass a table, partitioned table, materialized view, foreign table or view.';
    END IF;
    SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO available
      FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped;
    IF columns IS NULL THEN
        -- all non-key columns: everything except the primary key
        SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO chosen
          FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
           AND NOT EXISTS (SELECT 1 FROM pg_index i
                            WHERE i.indrelid = rel AND i.indisprimary AND a.attnum = ANY (i.indkey));
    ELSE
        SELECT array_agg(c) INTO missing FROM unnest(columns) AS c WHERE c IS NULL OR NOT c = ANY (available);
        IF missing IS NOT NULL THEN
            RAISE EXCEPTION 'columns: % not in table %', asymm._shown(array_to_string(missing, ', ', 'NULL'), ''), rel
                  USING ERRCODE = 'undefined_column',
                        HINT = format('Columns of %s: %s (NULL means all non-key columns).', rel, array_to_string(available, ', '));
        END IF;
        chosen := columns;
    END IF;
    IF coalesce(cardinality(chosen), 0) = 0 THEN
        RAISE EXCEPTION 'no columns to compare in %', rel USING ERRCODE = 'invalid_parameter_value',
              HINT = format('Name the columns explicitly; columns of %s: %s.', rel, coalesce(array_to_string(available, ', '), 'none'));
    END IF;
    RETURN chosen;
END
$$;
COMMENT ON FUNCTION asymm._row_state_columns(regclass, text[]) IS 'Internal: the columns that make up a row''s state (given, checked, or all non-primary-key columns)';

-- Reading a user table runs its owner's code only where PostgreSQL puts it on purpose (index
-- expressions as the owner); never with the caller's rights: row_security = off makes a table whose
-- row-level security applies to the caller an error before any policy runs, and the values are
-- shown through their types' output functions (format('%s')), never through a cast to text or json,
-- which any type owner can define.
CREATE FUNCTION asymm.find_duplicates(rel regclass, columns text[] DEFAULT NULL)
RETURNS TABLE (row_hash text, copies bigint, ctids tid[], row_values jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
    chosen text[] := asymm._row_state_columns(rel, columns);
    row_expr text;
    json_expr text;
BEGIN
    PERFORM asymm._refuse_row_security(rel);
    -- A built-in type becomes JSON as usual; a type some role created (its oid is past the built-in
    -- range) through its output function, since its owner may have defined a cast to json.
    SELECT string_agg(format('%I', c), ', ' ORDER BY n),
           string_agg(CASE WHEN a.atttypid < 16384 THEN format('%L, %I', c, c)
                           ELSE format('%L, CASE WHEN %I IS NULL THEN NULL ELSE format(''%%s'', %I) END', c, c, c) END,
                      ', ' ORDER BY n)
      INTO row_expr, json_expr
      FROM unnest(chosen) WITH ORDINALITY AS u(c, n)
      JOIN pg_attribute a ON a.attrelid = rel AND a.attname = u.c;
    RETURN QUERY EXECUTE format(
        'SELECT encode(sha256(convert_to(ROW(%1$s)::text, ''UTF8'')), ''hex''), count(*), '
        '       array_agg(ctid ORDER BY ctid), (array_agg(jsonb_build_object(%2$s) ORDER BY ctid))[1] '
        '  FROM %3$s GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC, 1',
        row_expr, json_expr, rel);
END
$$;
COMMENT ON FUNCTION asymm.find_duplicates(regclass, text[]) IS 'Groups of rows whose chosen columns (default: all non-key columns) are equal, by SHA-256 of the values; with copies, ctids and the values';

CREATE TABLE asymm.state_history (
    relid        oid NOT NULL,
    relation     text NOT NULL,
    measured_at  timestamptz NOT NULL DEFAULT now(),
    row_count    bigint NOT NULL,
    distinct_states bigint NOT NULL,
    PRIMARY KEY (relid, measured_at)
);
COMMENT ON TABLE asymm.state_history IS 'Per table, the row count and number of distinct row states at each asymm.record_state() call';

-- A table whose row-level security applies to the caller: its policies are its owner's code.
CREATE FUNCTION asymm._refuse_row_security(rel regclass) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF row_security_active(rel) THEN
        RAISE EXCEPTION 'table % has row-level security that applies to %: asymm does not run its policies with your rights', rel, current_user
              USING ERRCODE = 'insufficient_privilege',
                    HINT = 'Run it as the table''s owner or as a role with BYPASSRLS.';
    END IF;
END
$$;
COMMENT ON FUNCTION asymm._refuse_row_security(regclass) IS 'Error when the table''s row-level security applies to the current role (its policies would run with that role''s rights); internal';

CREATE FUNCTION asymm.state_report(tables regclass[] DEFAULT NULL)
RETURNS TABLE (relation text, row_count bigint, distinct_states bigint, duplicate_rows bigint,
               duplicate_fraction double precision, previous_distinct_states bigint,
               previous_measured_at timestamptz, distinct_growth bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
    max_rows bigint := asymm.setting('telemetry.state_max_rows')::bigint;
    t record;
    row_expr text;
    n bigint;
    d bigint;
BEGIN
    FOR t IN
        SELECT c.oid::regclass AS rel, c.oid
          FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
         WHERE (tables IS NULL AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                AND ns.nspname NOT IN ('pg_catalog', 'information_schema', 'asymm')
                AND ns.nspname !~ '^pg_(toast|temp)' AND c.reltuples <= max_rows
                AND has_table_privilege(c.oid, 'SELECT') AND NOT row_security_active(c.oid))
            OR c.oid = ANY (tables)
         ORDER BY ns.nspname, c.relname
    LOOP
        PERFORM asymm._refuse_row_security(t.rel);
        SELECT string_agg(format('%I', col), ', ') INTO row_expr
          FROM unnest(asymm._row_state_columns(t.rel)) AS col;
        EXECUTE format('SELECT count(*), count(DISTINCT sha256(convert_to(ROW(%s)::text, ''UTF8''))) FROM %s',
                       row_expr, t.rel) INTO n, d;
        relation := t.rel::text;
        row_count := n;
        distinct_states := d;
        duplicate_rows := n - d;
        duplicate_fraction := CASE WHEN n = 0 THEN 0 ELSE (n - d)::double precision / n END;
        SELECT h.distinct_states, h.measured_at INTO previous_distinct_states, previous_measured_at
          FROM asymm.state_history h WHERE h.relid = t.oid ORDER BY h.measured_at DESC LIMIT 1;
        IF NOT FOUND THEN
            previous_distinct_states := NULL;
            previous_measured_at := NULL;
        END IF;
        distinct_growth := d - previous_distinct_states;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION asymm.state_report(regclass[]) IS 'Per table (default: every user table up to telemetry.state_max_rows rows): rows, distinct row states, duplicate fraction and growth of distinct states since the last asymm.record_state()';

CREATE FUNCTION asymm.record_state(tables regclass[] DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    recorded integer;
BEGIN
    INSERT INTO asymm.state_history (relid, relation, row_count, distinct_states)
    SELECT r.relation::regclass::oid, r.relation, r.row_count, r.distinct_states
      FROM asymm.state_report(tables) r
    ON CONFLICT (relid, measured_at) DO UPDATE SET row_count = excluded.row_count,
                                                   distinct_states = excluded.distinct_states;
    GET DIAGNOSTICS recorded = ROW_COUNT;
    RETURN recorded;
END
$$;
COMMENT ON FUNCTION asymm.record_state(regclass[]) IS 'Store the current state_report() counts in asymm.state_history, the base of distinct_growth';

-- Index health.  Categories:
--   invalid           indisvalid is false (typically a failed CREATE INDEX CONCURRENTLY);
--   unused            no scan since the statistics were reset, not unique, not backing a constraint
--                     (primary key, unique, exclusion, or the target of a foreign key);
--   duplicate         same table, access method, columns, operator classes, collations, options,
--                     expressions and predicate as another index that is kept;
--   prefix_redundant  a btree whose key columns are a leading prefix of another btree's keys on the
--                     same table (same predicate, no expressions), not unique, no constraint.
-- Indexes of partitioned tables and their partitions are left out (they are dropped together).
CREATE FUNCTION asymm.index_health()
RETURNS TABLE (category text, schema_name name, table_name name, index_name name,
               index_size_bytes bigint, index_size text, detail text, drop_statement text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH idx AS (
        SELECT i.indexrelid, i.indrelid, ns.nspname, t.relname AS table_name, c.relname AS index_name,
               am.amname, i.indisvalid, i.indisunique, i.indnkeyatts,
               string_to_array(i.indkey::text, ' ')::int2[] AS keys,
               string_to_array(i.indclass::text, ' ')::oid[] AS classes,
               string_to_array(i.indcollation::text, ' ')::oid[] AS collations,
               string_to_array(i.indoption::text, ' ')::int2[] AS options,
               pg_get_expr(i.indexprs, i.indrelid) AS exprs,
               pg_get_expr(i.indpred, i.indrelid) AS pred,
               EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) AS backs_constraint,
               coalesce(s.idx_scan, 0) AS scans,
               pg_relation_size(i.indexrelid) AS size_bytes
          FROM pg_index i
          JOIN pg_class c ON c.oid = i.indexrelid
          JOIN pg_class t ON t.oid = i.indrelid
          JOIN pg_namespace ns ON ns.oid = c.relnamespace
          JOIN pg_am am ON am.oid = c.relam
          LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = i.indexrelid
         WHERE c.relkind = 'i' AND NOT c.relispartition AND t.relkind IN ('r', 'm')
           AND ns.nspname NOT IN ('pg_catalog', 'information_schema', 'asymm')
           AND ns.nspname !~ '^pg_(toast|temp)'
    ), ranked AS (
        SELECT x.*,
               first_value(x.index_name) OVER w AS keeper_name,
               first_value(x.indisunique) OVER w AS keeper_unique,
               row_number() OVER w AS rank_in_group
          FROM idx x
         WHERE x.indisvalid
        WINDOW w AS (PARTITION BY x.indrelid, x.amname, x.keys, x.classes, x.collations, x.options,
                                  x.exprs, x.pred, x.indnkeyatts
                     ORDER BY x.backs_constraint DESC, x.indisunique DESC, x.indexrelid)
    ), found AS (
        SELECT 'invalid' AS category, x.nspname, x.table_name, x.index_name, x.size_bytes,
               'a failed or unfinished CREATE INDEX: maintained on every write, never used by queries' AS detail
          FROM idx x WHERE NOT x.indisvalid
        UNION ALL
        SELECT 'unused', x.nspname, x.table_name, x.index_name, x.size_bytes,
               format('%s scans since the statistics were reset; backs no constraint', x.scans)
          FROM idx x
         WHERE x.indisvalid AND x.scans = 0 AND NOT x.indisunique AND NOT x.backs_constraint
        UNION ALL
        SELECT 'duplicate', r.nspname, r.table_name, r.index_name, r.size_bytes,
               format('same definition as %I, which is kept', r.keeper_name)
          FROM ranked r
         WHERE r.rank_in_group > 1 AND NOT r.backs_constraint AND (NOT r.indisunique OR r.keeper_unique)
        UNION ALL
        SELECT 'prefix_redundant', a.nspname, a.table_name, a.index_name, a.size_bytes,
               format('its key columns are a leading prefix of %I', b.index_name)
          FROM idx a
          JOIN LATERAL (
                SELECT b.index_name FROM idx b
                 WHERE b.indrelid = a.indrelid AND b.indexrelid <> a.indexrelid AND b.amname = 'btree'
                   AND b.exprs IS NULL AND b.pred IS NOT DISTINCT FROM a.pred AND b.indisvalid
                   AND b.indnkeyatts > a.indnkeyatts
                   AND b.keys[1:a.indnkeyatts] = a.keys[1:a.indnkeyatts]
                   AND b.classes[1:a.indnkeyatts] = a.classes[1:a.indnkeyatts]
                   AND b.collations[1:a.indnkeyatts] = a.collations[1:a.indnkeyatts]
                   AND b.options[1:a.indnkeyatts] = a.options[1:a.indnkeyatts]
                 ORDER BY b.indnkeyatts, b.index_name LIMIT 1) b ON true
         WHERE a.amname = 'btree' AND a.exprs IS NULL AND a.indisvalid
           AND NOT a.indisunique AND NOT a.backs_constraint
    )
    SELECT f.category, f.nspname, f.table_name, f.index_name, f.size_bytes, pg_size_pretty(f.size_bytes),
           f.detail, format('DROP INDEX CONCURRENTLY %I.%I;', f.nspname, f.index_name)
      FROM found f
     ORDER BY f.category, f.nspname, f.table_name, f.index_name
$$;
COMMENT ON FUNCTION asymm.index_health() IS 'Invalid, unused (no scans, no constraint), duplicate and prefix-redundant indexes, each with its size and a DROP INDEX CONCURRENTLY statement';
