-- asymm: since 0.2.0
-- Telemetry (UX-Sonar): pg_stat_statements history as deltas, retention, and the reports built on it.
--
-- Shape of the data:
--   asymm.queries          one row per (dbid, userid, queryid): the query text, stored once
--   asymm.query_counters   the last counters seen per pg_stat_statements entry (to compute deltas)
--   asymm.query_stats      raw deltas, one row per query that moved per snapshot, hourly partitions
--   asymm.query_stats_minute  the same rolled up per minute, daily partitions
--   asymm.telemetry_state  one row: what the last snapshot saw (dealloc, stats_reset) and watermarks
-- Partitions are created ahead of time by asymm.snapshot() (cheap check every call) and by
-- asymm.telemetry_retention(); old ones are dropped whole, never deleted row by row.

INSERT INTO asymm.setting_defaults (name, default_value, value_type, min_value, max_value, allowed_values, pattern, description) VALUES
    ('telemetry.raw_retention', '24 hours', 'interval', '1 hour', '366 days', NULL, NULL, 'How long raw per-snapshot deltas (asymm.query_stats) are kept before their hourly partitions are dropped'),
    ('telemetry.rollup_retention', '30 days', 'interval', '1 day', '3660 days', NULL, NULL, 'How long per-minute rollups (asymm.query_stats_minute) are kept before their daily partitions are dropped'),
    ('telemetry.partitions_ahead', '2 hours', 'interval', '1 hour', '7 days', NULL, NULL, 'History partitions are created this far ahead of the current time'),
    ('telemetry.rollup_batch_minutes', '5', 'integer', '1', '1440', NULL, NULL, 'At most this many minutes of raw deltas are rolled up per asymm.telemetry_retention() call (bounds its run time)'),
    ('telemetry.slow_threshold_ms', '100', 'number', '0', '86400000', NULL, NULL, 'Default threshold (ms) above which a sample''s mean latency counts its calls as slow'),
    ('telemetry.spike_factor', '3', 'number', '1', '1000', NULL, NULL, 'smoothness(): a sample is a latency spike when its mean exceeds this many times the query''s median sample mean'),
    ('telemetry.spike_min_ms', '1', 'number', '0', '86400000', NULL, NULL, 'smoothness(): samples with a mean below this many ms are never spikes (micro-second noise)'),
    ('telemetry.exclude_roles', '', 'text', NULL, NULL, NULL, '^([^,[:cntrl:]]{1,64}(,[^,[:cntrl:]]{1,64})*)?$', 'Comma-separated role names whose statements are not recorded (e.g. the role the daemon uses)'),
    ('telemetry.all_databases', 'false', 'boolean', NULL, NULL, NULL, NULL, 'Record statements of every database in the cluster, not only the current one'),
    ('telemetry.state_max_rows', '1000000', 'integer', '0', '1000000000000', NULL, NULL, 'state_report() skips tables estimated larger than this (it reads every row)');

-- Query texts, once per (dbid, userid, queryid).  "own" marks asymm's own statements (text that
-- calls into schema asymm): they are left out of what asymm reports.
CREATE TABLE asymm.queries (
    dbid       oid NOT NULL,
    userid     oid NOT NULL,
    queryid    bigint NOT NULL,
    query      text,
    own        boolean NOT NULL DEFAULT false,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dbid, userid, queryid)
);
COMMENT ON TABLE asymm.queries IS 'Text of every statement asymm has recorded, stored once per (dbid, userid, queryid); own = asymm''s own statement';

-- Last counters seen for each pg_stat_statements entry (its key includes toplevel).
CREATE TABLE asymm.query_counters (
    dbid      oid NOT NULL,
    userid    oid NOT NULL,
    queryid   bigint NOT NULL,
    toplevel  boolean NOT NULL,
    calls     bigint NOT NULL,
    total_ms  double precision NOT NULL,
    rows      bigint NOT NULL,
    shared_blks_hit  bigint NOT NULL,
    shared_blks_read bigint NOT NULL,
    seen_at   timestamptz NOT NULL,
    PRIMARY KEY (dbid, userid, queryid, toplevel)
) WITH (fillfactor = 50);  -- rewritten every tick: room for HOT updates
COMMENT ON TABLE asymm.query_counters IS 'Last cumulative counters asymm.snapshot() saw per pg_stat_statements entry, the base of the next delta';

CREATE TABLE asymm.telemetry_state (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_snapshot_at timestamptz,
    last_dealloc     bigint,
    last_stats_reset timestamptz,
    snapshots        bigint NOT NULL DEFAULT 0,
    resets_seen      bigint NOT NULL DEFAULT 0,
    deallocs_seen    bigint NOT NULL DEFAULT 0,
    raw_partitions_until    timestamptz,
    minute_partitions_until timestamptz,
    raw_floor        timestamptz,
    rolled_up_until  timestamptz,
    entries          bigint
);
COMMENT ON TABLE asymm.telemetry_state IS 'One row: what the last snapshot saw (dealloc, stats_reset), counts of resets/evictions, partition and rollup watermarks';
INSERT INTO asymm.telemetry_state DEFAULT VALUES;

-- Column order keeps the tuple at 64 data bytes without padding.
CREATE TABLE asymm.query_stats (
    sampled_at timestamptz NOT NULL,
    queryid    bigint NOT NULL,
    calls      bigint NOT NULL,
    total_ms   double precision NOT NULL,
    rows       bigint NOT NULL,
    shared_blks_hit  bigint NOT NULL,
    shared_blks_read bigint NOT NULL,
    dbid       oid NOT NULL,
    userid     oid NOT NULL
) PARTITION BY RANGE (sampled_at);
COMMENT ON TABLE asymm.query_stats IS 'Raw telemetry: per snapshot, the deltas of every statement whose pg_stat_statements counters moved (hourly partitions)';
-- Each partition gets its own index, the parent none: an index on the parent (an extension member)
-- would be attached to the partitions, which are not members, and pg_dump | pg_restore would create
-- each partition's index a second time ("relation ..._sampled_at_idx already exists").
CREATE TABLE asymm.query_stats_default PARTITION OF asymm.query_stats DEFAULT;
CREATE INDEX ON asymm.query_stats_default USING brin (sampled_at);
COMMENT ON TABLE asymm.query_stats_default IS 'Catches raw samples outside every hourly partition (should stay empty: partitions are created ahead)';

CREATE TABLE asymm.query_stats_minute (
    minute     timestamptz NOT NULL,
    queryid    bigint NOT NULL,
    calls      bigint NOT NULL,
    total_ms   double precision NOT NULL,
    rows       bigint NOT NULL,
    shared_blks_hit  bigint NOT NULL,
    shared_blks_read bigint NOT NULL,
    max_mean_ms double precision NOT NULL,
    samples    integer NOT NULL,
    dbid       oid NOT NULL,
    userid     oid NOT NULL
) PARTITION BY RANGE (minute);
COMMENT ON TABLE asymm.query_stats_minute IS 'Telemetry rolled up per minute and statement (daily partitions); max_mean_ms is the worst snapshot mean in the minute';
CREATE TABLE asymm.query_stats_minute_default PARTITION OF asymm.query_stats_minute DEFAULT;
CREATE INDEX ON asymm.query_stats_minute_default USING brin (minute);
COMMENT ON TABLE asymm.query_stats_minute_default IS 'Catches per-minute rows outside every daily partition (should stay empty)';

-- Creates the hourly raw partitions and daily minute partitions covering [now, now + ahead].
-- SECURITY DEFINER: a daemon role (asymm.grant_daemon) needs no CREATE on schema asymm; it can only
-- ever create these partitions, at most a month ahead.
CREATE FUNCTION asymm.ensure_telemetry_partitions(ahead interval DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    horizon timestamptz := now() + coalesce(ahead, asymm.setting('telemetry.partitions_ahead')::interval);
    lower_bound timestamptz;
    created integer := 0;
    part text;
BEGIN
    IF horizon IS NULL OR horizon < now() OR horizon > now() + interval '31 days' THEN
        RAISE EXCEPTION 'ahead must be between 0 and 31 days (got %)', coalesce(ahead::text, 'NULL')
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass an interval such as ''2 hours''.';
    END IF;
    lower_bound := date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    WHILE lower_bound <= horizon LOOP
        part := 'query_stats_' || to_char(lower_bound AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24');
        IF to_regclass(format('asymm.%I', part)) IS NULL THEN
            EXECUTE format('CREATE TABLE asymm.%I PARTITION OF asymm.query_stats FOR VALUES FROM (%L) TO (%L)',
                           part, lower_bound, lower_bound + interval '1 hour');
            EXECUTE format('CREATE INDEX ON asymm.%I USING brin (sampled_at)', part);
            created := created + 1;
        END IF;
        lower_bound := lower_bound + interval '1 hour';
    END LOOP;
    UPDATE asymm.telemetry_state SET raw_partitions_until = lower_bound,
           raw_floor = coalesce(raw_floor, date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC');

    lower_bound := date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    WHILE lower_bound <= horizon + interval '1 day' LOOP
        part := 'query_stats_minute_' || to_char(lower_bound AT TIME ZONE 'UTC', 'YYYYMMDD');
        IF to_regclass(format('asymm.%I', part)) IS NULL THEN
            EXECUTE format('CREATE TABLE asymm.%I PARTITION OF asymm.query_stats_minute FOR VALUES FROM (%L) TO (%L)',
                           part, lower_bound, lower_bound + interval '1 day');
            EXECUTE format('CREATE INDEX ON asymm.%I USING brin (minute)', part);
            created := created + 1;
        END IF;
        lower_bound := lower_bound + interval '1 day';
    END LOOP;
    UPDATE asymm.telemetry_state SET minute_partitions_until = lower_bound;
    RETURN created;
END
$$;
COMMENT ON FUNCTION asymm.ensure_telemetry_partitions(interval) IS 'Create the telemetry history partitions (hourly raw, daily per-minute) up to now() + ahead; returns how many were created';

-- pg_stat_statements lives in whatever schema it was installed into; callers put that schema on
-- their own search_path (a function's SET search_path is restored when it returns).
CREATE FUNCTION asymm._pg_stat_statements_schema() RETURNS name
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nsp name;
BEGIN
    SELECT n.nspname INTO nsp FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pg_stat_statements';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the pg_stat_statements extension is not installed in this database'
              USING ERRCODE = 'undefined_object', HINT = 'CREATE EXTENSION pg_stat_statements (and preload it in shared_preload_libraries).';
    END IF;
    RETURN nsp;
END
$$;
COMMENT ON FUNCTION asymm._pg_stat_statements_schema() IS 'Internal: the schema pg_stat_statements is installed in (errors with a hint if it is not)';
