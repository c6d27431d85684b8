-- asymm: since 0.2.0
-- ---------------------------------------------------------------------------------------------
-- Inference.  Heuristics (documented, deliberately simple):
--  tables:  κ = O(log n) when a primary key or unique index exists, else O(n); λ = observed
--           operations; γ = Stabilization without writes, Optimization when updates+deletes
--           outnumber inserts, else Balance; σ = dataEntity.
--  queries: κ from the generic plan; λ from the statement kind (select -> query, insert -> create,
--           update -> update, delete -> delete); γ = Stabilization for O(1)/O(log n), Balance for
--           O(n), Optimization for worse; σ = dataQuery.
-- Each run adds evidence and amplifies confidence; a target with a user or propagated annotation
-- is never given an inferred one.

CREATE FUNCTION asymm.infer()
RETURNS TABLE (target text, target_type text, cost text, lineage text[], confidence double precision, skipped text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
    q record;
    conf double precision := asymm.setting('annotations.inferred_confidence')::double precision;
    shape jsonb;
    new_id uuid;
    word text;
    refusal text;
BEGIN
    FOR t IN
        SELECT c.oid, s.n_tup_ins, s.n_tup_upd, s.n_tup_del,
               EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique) AS keyed,
               a.type, a.object_names, a.object_args
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
          CROSS JOIN LATERAL pg_identify_object_as_address('pg_class'::regclass, c.oid, 0) a
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'asymm') AND n.nspname NOT LIKE 'pg\_%'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                             AND d.deptype = 'e')
           AND NOT EXISTS (SELECT 1 FROM asymm.annotation_entries e
                            WHERE e.target_type = a.type AND e.target_names = a.object_names
                              AND e.target_args = a.object_args AND e.source <> 'inferred')
         ORDER BY c.oid
    LOOP
        new_id := asymm._annotate_object('pg_class'::regclass, t.oid, 0, 'dataEntity', 'local',
                  CASE WHEN coalesce(t.n_tup_ins + t.n_tup_upd + t.n_tup_del, 0) = 0 THEN 'Stabilization'
                       WHEN t.n_tup_upd + t.n_tup_del > t.n_tup_ins THEN 'Optimization'
                       ELSE 'Balance' END,
                  CASE WHEN t.keyed THEN 'O(log n)' ELSE 'O(n)' END,
                  coalesce(asymm._observed_lineage(t.oid), '{}'), 'inferred', conf);
        RETURN QUERY SELECT v.target, v.target_type, v.cost, v.lineage, v.confidence, NULL::text FROM asymm.annotations v WHERE v.id = new_id;
    END LOOP;
    -- Each statement is planned as one role that ran it: of the pg_stat_statements
    -- entries with the same fingerprint, the most frequent one whose role the caller may assume.
    FOR q IN
        SELECT x.fp, x.query, x.userid, x.calls
          FROM (SELECT DISTINCT ON (y.fp) y.fp, y.query, y.userid, sum(y.calls) OVER (PARTITION BY y.fp) AS calls
                  FROM (SELECT asymm.query_fingerprint(s.query) AS fp, s.query, s.calls, s.userid
                          FROM asymm._pgss_queries() s
                         WHERE s.calls >= asymm.setting('annotations.infer_min_calls')::bigint
                           AND s.query !~* '\masymm\.' AND asymm._plannable(s.query)) y
                 ORDER BY y.fp, coalesce(pg_has_role(y.userid, 'MEMBER'), false) DESC, y.calls DESC, y.query) x
         WHERE NOT EXISTS (SELECT 1 FROM asymm.annotation_entries e
                            WHERE e.target_type = 'query' AND e.target_names = ARRAY[x.fp] AND e.source <> 'inferred')
         ORDER BY x.calls DESC, x.fp
         LIMIT asymm.setting('annotations.infer_max_queries')::integer
    LOOP
        refusal := asymm._plan_as_refusal(q.userid);
        IF refusal IS NULL THEN
            BEGIN
                shape := asymm.plan_cost_class(asymm._generic_plan(q.query, q.userid, NULL));
            EXCEPTION WHEN others THEN
                refusal := 'cannot be planned: ' || sqlerrm;  -- its tables are gone, another role's objects: no claim
            END;
        END IF;
        IF refusal IS NOT NULL THEN
            RETURN QUERY SELECT 'query ' || q.fp, 'query'::text, NULL::text, '{}'::text[], NULL::double precision,
                                'skipped: ' || refusal;
            CONTINUE;
        END IF;
        word := CASE split_part(asymm.normalize_query(q.query), ' ', 1)
                    WHEN 'insert' THEN 'create' WHEN 'update' THEN 'update' WHEN 'delete' THEN 'delete'
                    ELSE 'query' END;
        new_id := asymm.annotate_query(q.query, 'dataQuery', 'local',
                  CASE WHEN shape ->> 'cost' IN ('O(1)', 'O(log n)') THEN 'Stabilization'
                       WHEN shape ->> 'cost' = 'O(n)' THEN 'Balance' ELSE 'Optimization' END,
                  shape ->> 'cost', ARRAY[word], 'inferred', conf);
        RETURN QUERY SELECT v.target, v.target_type, v.cost, v.lineage, v.confidence, NULL::text FROM asymm.annotations v WHERE v.id = new_id;
    END LOOP;
END
$$;
COMMENT ON FUNCTION asymm.infer() IS 'Give unannotated tables and frequent queries inferred annotations (κ from the generic plan shape, planned as the role that ran the query, or keys; λ from observed operations); never touches user or propagated annotations; a query that cannot be planned as its role comes back with skipped = the reason and no annotation';
