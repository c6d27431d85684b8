-- asymm: since 0.2.0
-- Index advisor: suggestions, what was applied, and whether it paid off.
-- The advisor itself runs in the control plane (control/asymm/advisor/); the database keeps its
-- results so that SQL users, the dashboard and a later `asymm verify` can read them.

INSERT INTO asymm.setting_defaults (name, default_value, value_type, min_value, max_value, allowed_values, pattern, description) VALUES
    ('advisor.enabled', 'false', 'boolean', NULL, NULL, NULL, NULL, 'Whether the daemon runs the index advisor on a schedule (suggest only unless advisor.auto_apply)'),
    ('advisor.every', '1 hour', 'interval', '1 min', '30 days', NULL, NULL, 'How often the daemon runs the index advisor when advisor.enabled'),
    ('advisor.auto_apply', 'false', 'boolean', NULL, NULL, NULL, NULL, 'Whether the scheduled advisor also creates its indexes (CREATE INDEX CONCURRENTLY)'),
    ('advisor.budget_mb', '1024', 'integer', '1', '16777216', NULL, NULL, 'Storage budget for the indexes of one advisor run, in MB of HypoPG''s estimate corrected for btree deduplication'),
    ('advisor.max_indexes', '0', 'integer', '0', '1000', NULL, NULL, 'At most this many indexes per advisor run; 0: no cap (the advisor stops when the next index no longer pays)'),
    ('advisor.min_gain_fraction', '0.01', 'number', '0', '1', NULL, NULL, 'The advisor stops when the best next index saves less than this fraction of the workload cost'),
    ('advisor.write_cost_per_row', '0.5', 'number', '0', '1000000', NULL, NULL, 'Maintenance penalty per written row (insert, non-HOT update, delete) and index, in planner cost units'),
    ('advisor.max_write_regression', '0.50', 'number', '-1', '1000', NULL, NULL, 'Refuse an index that makes an INSERT or UPDATE of the workload more than this fraction costlier per call (modelled); a negative value turns the bound off'),
    ('advisor.lock_timeout', '5 s', 'interval', '1 ms', '1 hour', NULL, '^[0-9]{1,9}(\.[0-9]{1,6})? ?(us|ms|s|min|h|d)$', 'lock_timeout for CREATE/DROP INDEX CONCURRENTLY when applying or rolling back'),
    ('advisor.verify_min_calls', '20', 'integer', '1', '1000000000', NULL, NULL, 'asymm verify judges an index only after this many calls of its queries since it was applied'),
    ('advisor.verify_min_improvement', '0.05', 'number', '0', '1', NULL, NULL, 'An index pays off when the mean latency of its queries fell by at least this fraction');

CREATE TABLE asymm.index_suggestions (
    suggestion_id     bigserial PRIMARY KEY,
    run_id            uuid NOT NULL,
    suggested_at      timestamptz NOT NULL DEFAULT now(),
    table_name        text NOT NULL,
    columns           text[] NOT NULL,
    method            text NOT NULL DEFAULT 'btree',
    index_name        text NOT NULL,
    definition        text NOT NULL,
    estimated_benefit double precision NOT NULL,
    size_bytes        bigint NOT NULL,
    queryids          bigint[] NOT NULL DEFAULT '{}',
    status            text NOT NULL DEFAULT 'suggested'
                      CHECK (status IN ('suggested', 'applied', 'failed', 'rolled_back')),
    applied_at        timestamptz,
    error             text,
    verified_at       timestamptz,
    verdict           text CHECK (verdict IN ('paid_off', 'no_gain', 'insufficient_data')),
    verdict_detail    jsonb
);
COMMENT ON TABLE asymm.index_suggestions IS 'Index advisor results: one row per suggested index, with what was applied and the verdict of asymm verify; kept by pg_dump';
COMMENT ON COLUMN asymm.index_suggestions.estimated_benefit IS 'Σ calls × planner cost saved, minus the write-maintenance penalty (planner cost units)';
COMMENT ON COLUMN asymm.index_suggestions.size_bytes IS 'HypoPG''s size estimate corrected for btree deduplication (from n_distinct); for an index priced on a sample copy, its size there scaled to the table';
COMMENT ON COLUMN asymm.index_suggestions.status IS 'suggested, applied (index created), failed (creation failed, leftovers dropped), rolled_back (dropped by asymm verify --rollback)';
COMMENT ON COLUMN asymm.index_suggestions.verdict IS 'asymm verify: paid_off, no_gain, or insufficient_data (too few calls since it was applied)';
CREATE INDEX index_suggestions_status_idx ON asymm.index_suggestions (status, suggested_at);
SELECT pg_catalog.pg_extension_config_dump('asymm.index_suggestions', '');
SELECT pg_catalog.pg_extension_config_dump('asymm.index_suggestions_suggestion_id_seq', '');

-- The "before" side of asymm verify: pg_stat_statements counters of each affected query at the
-- moment its index was applied.  Verify compares the mean latency of the calls made since then
-- with the mean before (or, when asymm.query_stats history exists, with the history's window).
CREATE TABLE asymm.index_suggestion_baselines (
    suggestion_id   bigint NOT NULL REFERENCES asymm.index_suggestions ON DELETE CASCADE,
    queryid         bigint NOT NULL,
    calls           bigint NOT NULL,
    total_exec_time double precision NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (suggestion_id, queryid)
);
COMMENT ON TABLE asymm.index_suggestion_baselines IS 'pg_stat_statements counters (calls, total_exec_time in ms) of each query an applied index was meant to speed up, at apply time';
SELECT pg_catalog.pg_extension_config_dump('asymm.index_suggestion_baselines', '');

CREATE VIEW asymm.index_suggestions_latest AS
SELECT s.*
  FROM asymm.index_suggestions s
 WHERE s.run_id = (SELECT run_id FROM asymm.index_suggestions ORDER BY suggested_at DESC, suggestion_id DESC LIMIT 1)
    OR s.status <> 'suggested';
COMMENT ON VIEW asymm.index_suggestions_latest IS 'The suggestions of the latest advisor run, plus every suggestion that was applied, failed or rolled back';
