-- asymm: since 0.2.0
-- Annotations: generic plans, plan-shape cost classes, asymm.infer() and asymm.coherence()
-- (the Semantic Sonar).

-- Statements recorded by pg_stat_statements in this database, wherever that extension lives,
-- with the role that ran each (a statement is only ever planned as that role).
CREATE FUNCTION asymm._pgss_queries()
RETURNS TABLE (queryid bigint, query text, calls bigint, userid oid)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    home name;
BEGIN
    SELECT n.nspname INTO home FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pg_stat_statements';
    IF home IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT s.queryid, s.query, s.calls, s.userid FROM %I.pg_stat_statements(true) s
          WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.toplevel',
        home);
END
$$;
COMMENT ON FUNCTION asymm._pgss_queries() IS 'Top-level statements pg_stat_statements recorded in this database, with the role that ran each (empty when it is absent); internal';

-- ---------------------------------------------------------------------------------------------
-- Planning text asymm did not write (SPEC section 9): only ever as the role that wrote it, in a
-- security-restricted operation, never executed (extension/src/planas.c explains how and why).

CREATE FUNCTION asymm._explain_as(author oid, query text, param_types text[] DEFAULT NULL,
                                  param_values text[] DEFAULT NULL, verbose boolean DEFAULT false,
                                  search_path text DEFAULT NULL)
RETURNS json
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp  -- the statement's own path is set inside, from its author
AS 'MODULE_PATHNAME', 'asymm_explain_as';
COMMENT ON FUNCTION asymm._explain_as(oid, text, text[], text[], boolean, text) IS 'EXPLAIN (FORMAT JSON) of one statement planned as role author in a security-restricted operation, never executed: generic plan without param_values, custom plan with them; search_path NULL = the author''s configured one; returns {param_types, plan}; internal';

CREATE FUNCTION asymm._param_types_as(author oid, query text, param_types text[] DEFAULT NULL,
                                      search_path text DEFAULT NULL)
RETURNS json
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp  -- the statement's own path is set inside, from its author
AS 'MODULE_PATHNAME', 'asymm_param_types_as';
COMMENT ON FUNCTION asymm._param_types_as(oid, text, text[], text) IS 'The types a statement gives its $n (as PREPARE would infer them), analysed as role author in a security-restricted operation, not planned: {param_types, plan: null}; internal';

CREATE FUNCTION asymm._plan_as_refusal(author oid) RETURNS text
LANGUAGE C STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asymm_plan_as_refusal';
COMMENT ON FUNCTION asymm._plan_as_refusal(oid) IS 'Why a statement of role author may not be planned as that role by the current caller (the role no longer exists, or the caller cannot assume it), or NULL when it may; internal';

-- Whether a text is one plannable statement: it is executed only as PREPARE + EXPLAIN EXECUTE,
-- which never runs it, but it must not smuggle a second statement in.
CREATE FUNCTION asymm._plannable(query text) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT n ~ '^(select|with|insert|update|delete|values|table) ' AND position(';' IN n) = 0
  FROM asymm.normalize_query(query) AS n
$$;
COMMENT ON FUNCTION asymm._plannable(text) IS 'Whether a query text is a single SELECT/INSERT/UPDATE/DELETE/WITH/VALUES statement that may be planned; internal';

-- The generic plan of a query (PostgreSQL 15 has no EXPLAIN (GENERIC_PLAN)): planned without
-- values for its $n, as PREPARE + EXPLAIN EXECUTE under plan_cache_mode = force_generic_plan
-- would, but as role author (see asymm._explain_as) and never executed.  Names are looked up with
-- the search_path given, else with the one a new session of the author would have.
CREATE FUNCTION asymm._generic_plan(query text, author oid, search_path text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF query IS NULL OR NOT asymm._plannable(query) THEN
        RAISE EXCEPTION 'invalid query for a generic plan: it must be one SELECT, INSERT, UPDATE, DELETE, WITH or VALUES statement'
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Give the text of one statement, with constants or $n parameters.';
    END IF;
    IF author IS NULL THEN
        RAISE EXCEPTION 'invalid author for a generic plan: NULL'
              USING ERRCODE = 'null_value_not_allowed', HINT = 'Give the role that wrote the statement; it is planned only as that role.';
    END IF;
    RETURN asymm._explain_as(author, query, NULL, NULL, true, _generic_plan.search_path)::jsonb -> 'plan' -> 0 -> 'Plan';
END
$$;
COMMENT ON FUNCTION asymm._generic_plan(text, oid, text) IS 'Generic plan (EXPLAIN JSON) of a query planned as role author; internal (asymm.generic_plan)';

CREATE FUNCTION asymm.generic_plan(query text, author regrole) RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT asymm._generic_plan(query, author, NULL) $$;
COMMENT ON FUNCTION asymm.generic_plan(text, regrole) IS 'Generic plan (EXPLAIN JSON) of a query with $n parameters, planned as role author (the caller must be allowed to SET ROLE to it) with that role''s configured search_path, in a security-restricted operation; never executes it';

-- The caller's own text, planned as the caller with the caller's search_path.  Deliberately not
-- pinned to a search_path, which is what it passes on; every name in it is schema-qualified.
CREATE FUNCTION asymm.generic_plan(query text) RETURNS jsonb
LANGUAGE sql VOLATILE
AS $$ SELECT asymm._generic_plan(query, pg_catalog.to_regrole(pg_catalog.quote_ident(current_user)),
                                 pg_catalog.current_setting('search_path')) $$;
COMMENT ON FUNCTION asymm.generic_plan(text) IS 'Generic plan (EXPLAIN JSON) of a query with $n parameters, planned as the caller with the caller''s search_path (a security-restricted operation: what it runs cannot change role); never executes it';

-- The role a query annotation's text is planned as (SPEC section 9).  A text pg_stat_statements
-- recorded in this database (asymm annotate --queryid, asymm.infer()) belongs to the role that
-- ran it (when several did, the most frequent one the writer may assume); any other text to the
-- role that wrote the annotation.  Kept by pg_dump with the annotation, as a role name.
ALTER TABLE asymm.annotation_entries ADD COLUMN author name;
COMMENT ON COLUMN asymm.annotation_entries.author IS 'Query annotations: the role their text is planned as (the role pg_stat_statements saw run it, else the role that annotated)';

CREATE FUNCTION asymm._annotation_author() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.target_type <> 'query' THEN
        NEW.author := NULL;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.author IS NOT DISTINCT FROM OLD.author THEN
        IF NEW.query_text IS NOT DISTINCT FROM OLD.query_text THEN
            RETURN NEW;
        END IF;
        NEW.author := NULL;  -- a new text: a new author
    END IF;
    IF NEW.author IS NULL THEN
        SELECT coalesce(r.rolname, s.userid::text) INTO NEW.author
          FROM asymm._pgss_queries() s LEFT JOIN pg_roles r ON r.oid = s.userid
         WHERE s.query = NEW.query_text
         ORDER BY coalesce(pg_has_role(s.userid, 'MEMBER'), false) DESC, s.calls DESC
         LIMIT 1;
        NEW.author := coalesce(NEW.author, current_user);
    ELSIF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = NEW.author) AND NOT pg_has_role(NEW.author, 'MEMBER') THEN
        RAISE EXCEPTION 'invalid annotation field author: % may not make % the author of a query annotation', current_user, NEW.author
              USING ERRCODE = 'insufficient_privilege',
                    HINT = 'A query annotation''s text is planned as its author: name only a role you are a member of.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION asymm._annotation_author() IS 'Trigger: records the role a query annotation''s text is planned as, and refuses an author the writer is not a member of; internal';

CREATE TRIGGER annotation_entries_author
BEFORE INSERT OR UPDATE ON asymm.annotation_entries
FOR EACH ROW EXECUTE FUNCTION asymm._annotation_author();

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

-- ---------------------------------------------------------------------------------------------
-- Semantic Sonar.

CREATE FUNCTION asymm.coherence_verdicts()
RETURNS TABLE (annotation_id uuid, target text, target_type text, source text, cost text, lineage text[],
               verdict text, reason text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a record;
    author regrole;
    refusal text;
    stats record;
    shape jsonb;
    planned text;
    tiny_rows double precision := asymm.setting('annotations.tiny_table_rows')::double precision;
    tiny text[];
    missing text[];
    reasons text[];
    bad boolean;
    judged boolean;
BEGIN
    FOR a IN SELECT v.*, l.classid, l.objid, l.objsubid, e.author
               FROM asymm.annotations v
               JOIN asymm.annotation_entries e ON e.id = v.id
               LEFT JOIN LATERAL asymm._locate(v.id, v.target_type, v.target_names, v.target_args) l ON true
              ORDER BY v.target, v.source, v.id
    LOOP
        annotation_id := a.id; target := a.target; target_type := a.target_type; source := a.source;
        cost := a.cost; lineage := a.lineage;
        IF a.target_type = 'query' THEN
            -- planned only as its author (asymm._annotation_author); otherwise not judged at all
            author := to_regrole(quote_ident(a.author));
            refusal := CASE WHEN a.author IS NULL THEN 'no role is recorded to plan it as'
                            WHEN author IS NULL THEN format('role %s no longer exists', quote_ident(a.author))
                            ELSE asymm._plan_as_refusal(author) END;
            IF refusal IS NOT NULL THEN
                verdict := 'not evaluable';
                reason := 'skipped: ' || refusal;
                RETURN NEXT; CONTINUE;
            END IF;
            BEGIN
                shape := asymm.plan_cost_class(asymm._generic_plan(a.query_text, author, NULL));
            EXCEPTION WHEN others THEN
                verdict := 'incoherent';
                reason := 'the query cannot be planned: ' || sqlerrm;
                RETURN NEXT; CONTINUE;
            END;
            planned := shape ->> 'cost';
            IF planned = a.cost THEN
                verdict := 'coherent';
                reason := format('generic plan is %s', planned);
            ELSE
                tiny := ARRAY(SELECT r FROM jsonb_array_elements_text(shape -> 'full_scans') r
                               WHERE to_regclass(r) IS NOT NULL AND asymm._relation_rows(to_regclass(r)) < tiny_rows);
                IF cardinality(tiny) > 0 AND asymm._annotation_rank('cost', a.cost) < asymm._annotation_rank('cost', planned) THEN
                    verdict := 'not evaluable';
                    reason := format('claimed %s, generic plan is %s, but %s has fewer than %s rows: a sequential scan is the right plan for a tiny table',
                                     a.cost, planned, array_to_string(tiny, ', '), tiny_rows);
                ELSE
                    verdict := 'incoherent';
                    reason := format('claimed %s, generic plan is %s (%s)', a.cost, planned,
                                     array_to_string(ARRAY(SELECT jsonb_array_elements_text(shape -> 'reasons')), '; '));
                END IF;
            END IF;
            RETURN NEXT; CONTINUE;
        END IF;
        IF a.objid IS NULL THEN
            verdict := 'incoherent';
            reason := 'the target does not exist (unresolved)';
            RETURN NEXT; CONTINUE;
        END IF;
        IF a.target_type <> 'table' THEN
            verdict := 'coherent';
            reason := 'the target exists (no further check for a ' || a.target_type || ')';
            RETURN NEXT; CONTINUE;
        END IF;
        SELECT s.n_tup_ins, s.n_tup_upd, s.n_tup_del, coalesce(s.seq_scan, 0) AS seq_scan,
               coalesce(s.idx_scan, 0) AS idx_scan
          INTO stats FROM pg_stat_user_tables s WHERE s.relid = a.objid;
        reasons := '{}'; bad := false; judged := false;
        IF stats.n_tup_ins + stats.n_tup_upd + stats.n_tup_del + stats.seq_scan + stats.idx_scan = 0 THEN
            reasons := reasons || 'no operations observed since statistics were reset'::text;
        ELSE
            judged := true;
            missing := ARRAY(SELECT w FROM unnest(asymm._observed_lineage(a.objid)) w
                              WHERE w <> 'query' AND NOT (w = ANY (a.lineage))
                                AND NOT (w = 'create' AND 'insert' = ANY (a.lineage)));
            IF cardinality(missing) > 0 THEN
                bad := true;
                reasons := reasons || format('observed %s but the lineage lacks it', array_to_string(missing, ', '));
            ELSE
                reasons := reasons || format('lineage covers the observed operations (%s)',
                                             array_to_string(asymm._observed_lineage(a.objid), ', '));
            END IF;
        END IF;
        IF asymm._annotation_rank('cost', a.cost) <= asymm._annotation_rank('cost', 'O(log n)')
           AND stats.seq_scan > 0 AND stats.idx_scan = 0 THEN
            IF asymm._relation_rows(a.objid) < tiny_rows THEN
                reasons := reasons || format('claimed %s but only sequential scans seen: not evaluable on a table of fewer than %s rows', a.cost, tiny_rows);
            ELSE
                judged := true; bad := true;
                reasons := reasons || format('claimed %s but the table is only scanned sequentially (%s scans, no index scan)',
                                             a.cost, stats.seq_scan);
            END IF;
        END IF;
        verdict := CASE WHEN bad THEN 'incoherent' WHEN judged THEN 'coherent' ELSE 'not evaluable' END;
        reason := array_to_string(reasons, '; ');
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION asymm.coherence_verdicts() IS 'Semantic Sonar: one verdict (coherent, incoherent, not evaluable) with its reason per annotation; queries are checked against their generic plan';

CREATE FUNCTION asymm.coherence() RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    verdicts jsonb;
    good integer;
    poor integer;
BEGIN
    SELECT coalesce(jsonb_agg(to_jsonb(v)), '[]'::jsonb),
           count(*) FILTER (WHERE v.verdict = 'coherent'),
           count(*) FILTER (WHERE v.verdict = 'incoherent')
      INTO verdicts, good, poor
      FROM asymm.coherence_verdicts() v;
    RETURN jsonb_build_object(
        'score', CASE WHEN good + poor > 0 THEN round(100.0 * good / (good + poor), 1) END,
        'coherent', good, 'incoherent', poor,
        'not_evaluable', jsonb_array_length(verdicts) - good - poor,
        'total', jsonb_array_length(verdicts),
        'goal', 85,
        'verdicts', verdicts);
END
$$;
COMMENT ON FUNCTION asymm.coherence() IS 'Semantic Sonar: coherence score in percent (coherent / evaluable annotations; NULL when none is evaluable; the goal is > 85) with every verdict';

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
    -- Each statement is planned as one role that ran it (SPEC section 9): of the pg_stat_statements
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
