-- Index advisor: settings and the suggestions table SQL users read.
SET client_min_messages = warning;
CREATE EXTENSION asymm CASCADE;
RESET client_min_messages;

SELECT name, value, value_type FROM asymm.settings WHERE name LIKE 'advisor.%' ORDER BY name;
SELECT asymm.set_setting('advisor.budget_mb', 'lots');
-- the write bound is a number like its neighbours: 'off' is refused, a negative value turns it off
SELECT asymm.set_setting('advisor.max_write_regression', 'off');
SELECT asymm.set_setting('advisor.max_write_regression', '-1');
SELECT asymm.reset_setting('advisor.max_write_regression');

INSERT INTO asymm.index_suggestions (run_id, table_name, columns, index_name, definition, estimated_benefit, size_bytes, queryids)
VALUES ('00000000-0000-0000-0000-000000000001', 'public.t', '{a}', 'asymm_t_a', 'CREATE INDEX asymm_t_a ON public.t USING btree (a)', 10, 8192, '{1,2}')
RETURNING suggestion_id, status, verdict;
\set VERBOSITY terse
UPDATE asymm.index_suggestions SET status = 'maybe';
\set VERBOSITY default
INSERT INTO asymm.index_suggestion_baselines (suggestion_id, queryid, calls, total_exec_time) VALUES (1, 1, 10, 25.0);
SELECT index_name, status FROM asymm.index_suggestions_latest;
DELETE FROM asymm.index_suggestions;
SELECT count(*) AS baselines_left FROM asymm.index_suggestion_baselines;

DROP EXTENSION asymm;
