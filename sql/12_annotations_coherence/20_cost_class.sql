-- asymm: since 0.2.0
-- Cost class of a plan from its shape (PL/Python): index or primary-key lookup -> O(log n), full
-- scan -> O(n), sort of a scan -> O(n log n), nested loop over two scans -> O(n^2), no scan at all
-- -> O(1); the worst node wins.  Also lists the relations that are scanned in full.  What is not
-- a plan gives {"problem": ...}: an error raised from PL/Python reads as a Python exception, so
-- asymm.plan_cost_class() (below) raises it.
CREATE FUNCTION asymm._plan_cost_class(plan jsonb) RETURNS jsonb
LANGUAGE plpython3u IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $plpython$
-- asymm: include control/asymm/annotations/plan_cost.py
return plan_cost_class(plan)
$plpython$;
COMMENT ON FUNCTION asymm._plan_cost_class(jsonb) IS 'asymm.plan_cost_class() in PL/Python: the cost class, or {problem} when the argument is not a plan; internal';

CREATE FUNCTION asymm.plan_cost_class(plan jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shape jsonb := asymm._plan_cost_class(plan);
BEGIN
    IF shape ? 'problem' THEN
        RAISE EXCEPTION 'invalid plan: %', shape ->> 'problem'
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Pass the "Plan" object of EXPLAIN (FORMAT JSON), as asymm.generic_plan() returns it.';
    END IF;
    RETURN shape;
END
$$;
COMMENT ON FUNCTION asymm.plan_cost_class(jsonb) IS 'κ of a plan from its shape: lookup O(log n), full scan O(n), sort of a scan O(n log n), nested loop over scans O(n^2) (PL/Python); returns {cost, full_scans, reasons}';

-- Estimated rows of a relation (never-analyzed tables have reltuples = -1: use live tuples).
CREATE FUNCTION asymm._relation_rows(rel regclass) RETURNS double precision
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT greatest(c.reltuples, coalesce(s.n_live_tup, 0)::double precision,
                CASE WHEN c.reltuples < 0 THEN 0 ELSE c.reltuples END)
  FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = rel
$$;
COMMENT ON FUNCTION asymm._relation_rows(regclass) IS 'Best estimate of the rows of a relation (reltuples, else live tuples); internal';

-- Observed operations of a table, as lineage words.
CREATE FUNCTION asymm._observed_lineage(rel oid) RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT ARRAY(SELECT w FROM (VALUES (1, 'create', s.n_tup_ins > 0),
                                   (2, 'query', coalesce(s.seq_scan, 0) + coalesce(s.idx_scan, 0) > 0),
                                   (3, 'update', s.n_tup_upd > 0),
                                   (4, 'delete', s.n_tup_del > 0)) AS o(n, w, seen)
              WHERE seen ORDER BY n)
  FROM pg_stat_user_tables s WHERE s.relid = rel
$$;
COMMENT ON FUNCTION asymm._observed_lineage(oid) IS 'Operations pg_stat_user_tables has seen on a table, as lineage words (create, query, update, delete); internal';
