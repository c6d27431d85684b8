-- asymm: since 0.2.0
-- Reader roles, and the one 0.1.0 function that ran with its caller's search_path.
--
-- 0.1.0's asymm.grant_reader() granted every STABLE or IMMUTABLE function whose name does not
-- start with "_", and SELECT on the views: volatility is not what a function does (a VOLATILE
-- report such as asymm.coherence() writes nothing; a STABLE SECURITY DEFINER function could reveal
-- what its owner may read), the views call internal functions, and the reports read tables.  So a
-- reader was refused asymm top, annotations, coherence, graph, impact, drift, advise, verify and
-- duplicates.  Now the list is explicit: every function named below (all its overloads) reads and
-- writes nothing but the backend-local state of the call itself, and every table named below holds
-- reports or history, never a secret.  Not granted: asymm.ddl_log (the full text of every DDL
-- statement: CREATE USER MAPPING ... OPTIONS (password ...) is DDL), the sync outbox (row keys of
-- tables the reader may not read), and everything that writes.  A user table's rows are never
-- made readable through asymm: asymm.find_duplicates() runs with the reader's own rights.

ALTER FUNCTION asymm.plpython_version() SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION asymm.grant_reader(grantee regrole) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    readers CONSTANT text[] := ARRAY[
        -- core
        'setting', 'version', 'plpython_version', 'status',
        -- annotations: the view, resolve, the vocabulary, fingerprints (internals the view and
        -- resolve() call with the caller's rights)
        'annotation_vocabulary', 'normalize_query', 'query_fingerprint', 'amplify', 'resolve',
        '_annotation_rank', '_annotation_problem', '_relkind_matches', '_address_object', '_cache_valid',
        '_locate', '_target_label', '_tuple', '_ranked', '_resolve_address', '_address_of',
        '_column_address', '_query_address', '_parse_target', '_session_lookup',
        -- Semantic Sonar (verdicts only; infer() writes annotations).  Statements are planned as
        -- their authors (asymm._explain_as): a reader plans only its own and its roles' statements.
        'coherence', 'coherence_verdicts', 'generic_plan', '_generic_plan', 'plan_cost_class', '_plan_cost_class',
        '_pgss_queries', '_plan_as_refusal', '_explain_as', '_param_types_as', '_shown',
        '_plannable', '_relation_rows', '_observed_lineage',
        -- telemetry and state reports
        'query_history', 'query_report', 'slow_queries', 'smoothness', '_pg_stat_statements_schema',
        'find_duplicates', 'state_report', 'index_health', '_row_state_columns', '_refuse_row_security',
        -- sync and drift reports
        'sync_status', 'sync_key_text', 'drift', 'drift_plan', 'drift_sql', '_drift_items', '_drift_compare',
        '_drift_snapshot', '_drift_acl'];
    tables CONSTANT text[] := ARRAY[
        'setting_defaults', 'setting_values', 'daemons',
        'annotation_entries', 'annotation_target_cache', 'annotation_conflicts',
        'queries', 'query_stats', 'query_stats_minute', 'telemetry_state', 'state_history',
        'index_suggestions', 'index_suggestion_baselines',
        'sync_tables', 'sync_sensitive_pins', 'sync_state', 'drift_baselines', 'drift_findings'];
    grantee_name name := asymm._role_name(grantee);
    fn regprocedure;
    rel regclass;
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA asymm TO %I', grantee_name);
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = 'asymm'::regnamespace AND p.proname = ANY (readers)
         ORDER BY p.oid
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', fn, grantee_name);
    END LOOP;
    FOR rel IN
        SELECT c.oid::regclass FROM pg_class c
         WHERE c.relnamespace = 'asymm'::regnamespace
           AND (c.relkind IN ('v', 'm') OR (c.relkind IN ('r', 'p') AND c.relname = ANY (tables)))
         ORDER BY c.oid
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO %I', rel, grantee_name);
    END LOOP;
END
$$;
COMMENT ON FUNCTION asymm.grant_reader(regrole) IS 'Let a role use the read-only part of asymm: schema usage, the report functions and views, SELECT on the report and history tables (never on asymm.ddl_log or the sync outbox); nothing that writes';
