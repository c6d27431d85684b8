-- Upgrade 0.2.0 -> 0.3.0: changes to objects that already existed in 0.2.0 (build.py appends the
-- sources new in 0.3.0 and sql/99_privileges.sql).  Each "replace" line becomes the function's
-- current CREATE FUNCTION statement, as CREATE OR REPLACE (its comment and grants are kept).

-- PL/Python bodies now spliced from the control package (same behaviour, new source text).
-- asymm: replace asymm.normalize_query
-- asymm: replace asymm._drift_compare
-- Renames are planned as a permutation: drift_plan orders a phase's statements by their "seq".
-- asymm: replace asymm.drift_plan
-- asymm: replace asymm.drift
-- asymm: replace asymm._annotation_problem
-- asymm: replace asymm._plan_cost_class

-- A comment in the body changed (it cited a document outside the repository).
-- asymm: replace asymm.infer

-- The error for an invalid key part echoes at most 200 characters of the server's message (found
-- by the SQL fuzzer: a 97 kB part came back whole).
-- asymm: replace asymm.sync_key_text

-- The write bound's default rises from 0.10 to 0.50 (issue 18): the objective is the whole
-- workload's time, writes included, and 0.10 refused what a careful DBA builds.  Only the default
-- row changes: a value set with asymm.set_setting() lives in asymm.setting_values and is kept.
UPDATE asymm.setting_defaults SET default_value = '0.50' WHERE name = 'advisor.max_write_regression';

-- The index cap becomes a user limit (issue 18): by default there is none ('0') and the advisor
-- stops on marginal benefit.  Only the default row changes; a value set with asymm.set_setting()
-- lives in asymm.setting_values and is kept.
UPDATE asymm.setting_defaults
   SET default_value = '0', min_value = '0',
       description = 'At most this many indexes per advisor run; 0: no cap (the advisor stops when the next index no longer pays)'
 WHERE name = 'advisor.max_indexes';

-- Index sizes are HypoPG's corrected for btree deduplication (issue 18): the texts say so.
UPDATE asymm.setting_defaults
   SET description = 'Storage budget for the indexes of one advisor run, in MB of HypoPG''s estimate corrected for btree deduplication'
 WHERE name = 'advisor.budget_mb';
COMMENT ON COLUMN asymm.index_suggestions.size_bytes IS 'HypoPG''s size estimate corrected for btree deduplication (from n_distinct); for an index priced on a sample copy, its size there scaled to the table';

-- Telemetry partitions get their own index, the partitioned parents none (issue 19): the parents'
-- indexes were attached to partitions that are no extension members, so pg_dump | pg_restore
-- created each partition's index twice.  Dropping a parent's index drops the attached ones.
DROP INDEX asymm.query_stats_sampled_at;
DROP INDEX asymm.query_stats_minute_minute;
DO $upgrade$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT i.inhrelid::regclass FROM pg_catalog.pg_inherits i
                 WHERE i.inhparent = 'asymm.query_stats'::regclass LOOP
        EXECUTE pg_catalog.format('CREATE INDEX ON %s USING brin (sampled_at)', part);
    END LOOP;
    FOR part IN SELECT i.inhrelid::regclass FROM pg_catalog.pg_inherits i
                 WHERE i.inhparent = 'asymm.query_stats_minute'::regclass LOOP
        EXECUTE pg_catalog.format('CREATE INDEX ON %s USING brin (minute)', part);
    END LOOP;
END
$upgrade$;
-- asymm: replace asymm.ensure_telemetry_partitions

-- Temporary objects are a session's own: the DDL log no longer records them (issue 19).
-- asymm: replace asymm._drift_event

-- Reconciliation repairs the stored address of annotations renamed out of the event triggers'
-- sight (issue 19).
-- asymm: replace asymm.drift_reconcile

-- Snapshots record row-level security and policies (issue 19).
-- asymm: replace asymm._drift_snapshot
COMMENT ON FUNCTION asymm._drift_snapshot(text[], oid[]) IS 'The schema objects drift tracks (tables, columns, constraints, indexes, views, sequences, functions, triggers, policies, types, extensions, default privileges, schemas) as one jsonb array';
