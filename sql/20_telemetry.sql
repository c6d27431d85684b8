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
CREATE INDEX query_stats_sampled_at ON asymm.query_stats USING brin (sampled_at);
CREATE TABLE asymm.query_stats_default PARTITION OF asymm.query_stats DEFAULT;
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
CREATE INDEX query_stats_minute_minute ON asymm.query_stats_minute USING brin (minute);
CREATE TABLE asymm.query_stats_minute_default PARTITION OF asymm.query_stats_minute DEFAULT;
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

-- The diff of pg_stat_statements against the last counters, in C (extension/src/telemetry.c):
-- a backend-local mirror of asymm.query_counters, tagged with the snapshot generation, makes a
-- tick cost little more than reading the view.  Only entries that changed are returned.
CREATE FUNCTION asymm._pgss_changes(pgss_schema name, generation bigint, forget boolean, only_db oid, skip_roles oid[])
RETURNS TABLE (dbid oid, userid oid, queryid bigint, toplevel boolean, status "char",
               calls bigint, total_ms double precision, rows bigint, shared_blks_hit bigint, shared_blks_read bigint,
               l_calls bigint, l_total_ms double precision, l_rows bigint, l_hit bigint, l_read bigint)
LANGUAGE C VOLATILE ROWS 500
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asymm_pgss_changes';
COMMENT ON FUNCTION asymm._pgss_changes(name, bigint, boolean, oid, oid[]) IS 'Internal (asymm.snapshot): pg_stat_statements entries that changed since generation: n new, m moved, r restarted, g gone';

-- The snapshot.  Delta rules, per entry (dbid, userid, queryid, toplevel):
--   * not seen before (new, or evicted/reset and re-created since): delta = current counters;
--   * any counter lower than last seen: the entry was reset or evicted and re-created between two
--     snapshots, so the current counters are all new: delta = current counters;
--   * otherwise delta = current - last (never negative, never counted twice).
--   * pg_stat_statements_reset() (stats_reset moved): every last-seen counter is forgotten first.
-- Entries that left pg_stat_statements are forgotten, so a re-created entry starts from zero.
-- The first snapshot only records the baseline (the counters hold history of unknown age).
CREATE FUNCTION asymm.snapshot() RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st asymm.telemetry_state;
    info_dealloc bigint;
    info_reset timestamptz;
    was_reset boolean := false;
    baseline boolean;
    skip_names text[];
    skip_roles oid[];
    only_db oid;
    pgss_schema name := asymm._pg_stat_statements_schema();
    taken timestamptz := now();
    result record;
BEGIN
    SELECT * INTO st FROM asymm.telemetry_state FOR UPDATE;
    IF st.raw_partitions_until IS NULL OR st.raw_partitions_until < taken + interval '10 minutes' THEN
        PERFORM asymm.ensure_telemetry_partitions();
    END IF;
    EXECUTE format('SELECT dealloc, stats_reset FROM %I.pg_stat_statements_info', pgss_schema)
       INTO info_dealloc, info_reset;
    baseline := st.last_snapshot_at IS NULL;
    IF NOT baseline AND info_reset IS DISTINCT FROM st.last_stats_reset THEN
        was_reset := true;
        DELETE FROM asymm.query_counters;
    END IF;
    skip_names := string_to_array(replace(asymm.setting('telemetry.exclude_roles'), ' ', ''), ',');
    SELECT coalesce(array_agg(r.oid), '{}') INTO skip_roles FROM pg_roles r WHERE r.rolname = ANY (skip_names);
    only_db := CASE WHEN asymm.setting('telemetry.all_databases')::boolean THEN NULL
                    ELSE (SELECT oid FROM pg_database WHERE datname = current_database()) END;

    WITH changed AS MATERIALIZED (
        SELECT * FROM asymm._pgss_changes(pgss_schema, st.snapshots, was_reset, only_db, skip_roles)
    ), kept AS (
        UPDATE asymm.query_counters l
           SET calls = c.calls, total_ms = c.total_ms, rows = c.rows, shared_blks_hit = c.shared_blks_hit,
               shared_blks_read = c.shared_blks_read, seen_at = taken
          FROM changed c
         WHERE c.status IN ('m', 'r')
           AND l.dbid = c.dbid AND l.userid = c.userid AND l.queryid = c.queryid AND l.toplevel = c.toplevel
        RETURNING 1
    ), forgotten AS (
        DELETE FROM asymm.query_counters l
         USING changed c
         WHERE c.status = 'g'
           AND l.dbid = c.dbid AND l.userid = c.userid AND l.queryid = c.queryid AND l.toplevel = c.toplevel
        RETURNING 1
    ), added AS (
        INSERT INTO asymm.query_counters
               (dbid, userid, queryid, toplevel, calls, total_ms, rows, shared_blks_hit, shared_blks_read, seen_at)
        SELECT c.dbid, c.userid, c.queryid, c.toplevel, c.calls, c.total_ms, c.rows, c.shared_blks_hit,
               c.shared_blks_read, taken
          FROM changed c
         WHERE c.status = 'n'
        RETURNING 1
    ), written AS (
        INSERT INTO asymm.query_stats (sampled_at, queryid, calls, total_ms, rows, shared_blks_hit, shared_blks_read, dbid, userid)
        SELECT taken, c.queryid,
               sum(CASE WHEN c.status = 'm' THEN c.calls - c.l_calls ELSE c.calls END)::bigint,
               sum(CASE WHEN c.status = 'm' THEN c.total_ms - c.l_total_ms ELSE c.total_ms END),
               sum(CASE WHEN c.status = 'm' THEN c.rows - c.l_rows ELSE c.rows END)::bigint,
               sum(CASE WHEN c.status = 'm' THEN c.shared_blks_hit - c.l_hit ELSE c.shared_blks_hit END)::bigint,
               sum(CASE WHEN c.status = 'm' THEN c.shared_blks_read - c.l_read ELSE c.shared_blks_read END)::bigint,
               c.dbid, c.userid
          FROM changed c
         WHERE NOT baseline AND c.status <> 'g'
         GROUP BY c.dbid, c.userid, c.queryid
        HAVING bool_or(c.calls > coalesce(c.l_calls, 0) OR c.status IN ('n', 'r') AND c.calls > 0
                       OR c.total_ms > coalesce(c.l_total_ms, 0))
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM written) AS written,
           (SELECT count(*) FROM kept) + (SELECT count(*) FROM added) AS moved,
           (SELECT count(*) FROM added) AS new_entries,
           (SELECT count(*) FROM changed WHERE status = 'r') AS restarted,
           (SELECT count(*) FROM forgotten) AS gone
      INTO result;

    -- Texts only when something new appeared: reading them costs a file read per call.
    IF result.new_entries > 0 THEN
        EXECUTE format($q$
            INSERT INTO asymm.queries AS q (dbid, userid, queryid, query, own)
            SELECT s.dbid, s.userid, s.queryid, s.query, coalesce(s.query ~* '\masymm\.', false)
              FROM %I.pg_stat_statements(true) s
             WHERE s.queryid IS NOT NULL AND ($1 IS NULL OR s.dbid = $1)
               AND NOT EXISTS (SELECT 1 FROM asymm.queries e
                                WHERE e.dbid = s.dbid AND e.userid = s.userid AND e.queryid = s.queryid)
            ON CONFLICT DO NOTHING $q$, pgss_schema) USING only_db;
    END IF;

    UPDATE asymm.telemetry_state
       SET last_snapshot_at = taken, last_dealloc = info_dealloc, last_stats_reset = info_reset,
           snapshots = snapshots + 1,
           entries = CASE WHEN was_reset THEN 0 ELSE coalesce(entries, 0) END + result.new_entries - result.gone,
           resets_seen = resets_seen + was_reset::int,
           deallocs_seen = deallocs_seen + CASE WHEN st.last_dealloc IS NOT NULL AND info_dealloc > st.last_dealloc
                                                THEN info_dealloc - st.last_dealloc ELSE 0 END;
    RETURN jsonb_build_object(
        'sampled_at', taken, 'baseline', baseline, 'reset', was_reset,
        'dealloc', coalesce(info_dealloc - st.last_dealloc, 0),
        'written', result.written, 'moved', result.moved, 'new_entries', result.new_entries,
        'restarted', result.restarted, 'gone', result.gone);
END
$$;
COMMENT ON FUNCTION asymm.snapshot() IS 'Append the deltas of every pg_stat_statements entry that moved since the last call to asymm.query_stats; handles resets and evictions';

-- Rolls closed minutes of raw deltas into asymm.query_stats_minute (at most a batch per call),
-- then drops whole partitions older than the retention windows.  Never drops raw data that is not
-- rolled up yet.
-- SECURITY DEFINER for the same reason as ensure_telemetry_partitions: it drops only asymm's own
-- history partitions.
CREATE FUNCTION asymm.telemetry_retention(max_minutes integer DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st asymm.telemetry_state;
    batch integer := coalesce(max_minutes, asymm.setting('telemetry.rollup_batch_minutes')::integer);
    closed timestamptz := date_trunc('minute', now());
    rollup_from timestamptz;
    rollup_to timestamptz;
    rolled bigint := 0;
    raw_cut timestamptz := now() - asymm.setting('telemetry.raw_retention')::interval;
    minute_cut timestamptz := now() - asymm.setting('telemetry.rollup_retention')::interval;
    dropped text[] := '{}';
    part record;
BEGIN
    IF batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'max_minutes must be at least 1 (got %)', batch
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass a positive number of minutes, or NULL for the setting telemetry.rollup_batch_minutes.';
    END IF;
    PERFORM asymm.ensure_telemetry_partitions();
    SELECT * INTO st FROM asymm.telemetry_state FOR UPDATE;
    rollup_from := coalesce(st.rolled_up_until, date_trunc('minute', st.raw_floor), closed);
    rollup_to := least(closed, rollup_from + make_interval(mins => batch));
    IF rollup_to > rollup_from THEN
        INSERT INTO asymm.query_stats_minute
               (minute, queryid, calls, total_ms, rows, shared_blks_hit, shared_blks_read, max_mean_ms, samples, dbid, userid)
        SELECT date_trunc('minute', s.sampled_at), s.queryid, sum(s.calls), sum(s.total_ms), sum(s.rows),
               sum(s.shared_blks_hit), sum(s.shared_blks_read),
               coalesce(max(s.total_ms / nullif(s.calls, 0)), 0), count(*), s.dbid, s.userid
          FROM asymm.query_stats s
         WHERE s.sampled_at >= rollup_from AND s.sampled_at < rollup_to
         GROUP BY 1, s.dbid, s.userid, s.queryid;
        GET DIAGNOSTICS rolled = ROW_COUNT;
        UPDATE asymm.telemetry_state SET rolled_up_until = rollup_to;
        st.rolled_up_until := rollup_to;
    END IF;

    FOR part IN
        SELECT c.oid::regclass AS rel, c.relname, p.parent,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound
          FROM (VALUES ('asymm.query_stats'::regclass), ('asymm.query_stats_minute'::regclass)) AS p(parent)
          JOIN pg_inherits i ON i.inhparent = p.parent
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE NOT (pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT')
         ORDER BY upper_bound
    LOOP
        IF (part.parent = 'asymm.query_stats'::regclass AND part.upper_bound <= raw_cut
                AND part.upper_bound <= coalesce(st.rolled_up_until, '-infinity'))
           OR (part.parent = 'asymm.query_stats_minute'::regclass AND part.upper_bound <= minute_cut) THEN
            EXECUTE format('DROP TABLE %s', part.rel);
            dropped := dropped || part.relname::text;
            IF part.parent = 'asymm.query_stats'::regclass THEN
                UPDATE asymm.telemetry_state SET raw_floor = greatest(raw_floor, part.upper_bound);
            END IF;
        END IF;
    END LOOP;
    RETURN jsonb_build_object('rolled_up_rows', rolled, 'rolled_up_until', st.rolled_up_until,
                              'dropped_partitions', to_jsonb(dropped));
END
$$;
COMMENT ON FUNCTION asymm.telemetry_retention(integer) IS 'Roll raw telemetry up per minute (bounded batch), then drop history partitions past their retention (whole partitions)';

-- History over a window from the finest data available: raw deltas from raw_floor on, per-minute
-- rollups before it.  Own statements (asymm's) are left out.
CREATE FUNCTION asymm.query_history(since interval DEFAULT '15 minutes')
RETURNS TABLE (sampled_at timestamptz, dbid oid, userid oid, queryid bigint, calls bigint,
               total_ms double precision, mean_ms double precision, rows bigint,
               shared_blks_hit bigint, shared_blks_read bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH bounds AS (
        SELECT now() - since AS since_at,
               coalesce((SELECT raw_floor FROM asymm.telemetry_state), '-infinity'::timestamptz) AS raw_floor
    )
    SELECT s.sampled_at, s.dbid, s.userid, s.queryid, s.calls, s.total_ms, s.total_ms / nullif(s.calls, 0),
           s.rows, s.shared_blks_hit, s.shared_blks_read
      FROM asymm.query_stats s, bounds b
     WHERE s.sampled_at >= greatest(b.since_at, b.raw_floor)
       AND NOT EXISTS (SELECT 1 FROM asymm.queries q
                        WHERE q.own AND q.dbid = s.dbid AND q.userid = s.userid AND q.queryid = s.queryid)
    UNION ALL
    SELECT m.minute, m.dbid, m.userid, m.queryid, m.calls, m.total_ms, m.total_ms / nullif(m.calls, 0),
           m.rows, m.shared_blks_hit, m.shared_blks_read
      FROM asymm.query_stats_minute m, bounds b
     WHERE m.minute >= b.since_at AND m.minute < b.raw_floor
       AND NOT EXISTS (SELECT 1 FROM asymm.queries q
                        WHERE q.own AND q.dbid = m.dbid AND q.userid = m.userid AND q.queryid = m.queryid)
$$;
COMMENT ON FUNCTION asymm.query_history(interval) IS 'Telemetry samples of the last `since`: raw snapshot deltas, per-minute rollups where raw data was dropped; asymm''s own statements excluded';

CREATE FUNCTION asymm.query_report(since interval DEFAULT '15 minutes')
RETURNS TABLE (queryid bigint, query text, calls bigint, calls_per_s double precision,
               total_ms double precision, mean_ms double precision, max_sample_mean_ms double precision,
               rows bigint, shared_blks_hit bigint, shared_blks_read bigint, hit_ratio double precision)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT h.queryid, max(q.query), sum(h.calls)::bigint,
           sum(h.calls) / greatest(extract(epoch FROM since), 1e-9)::double precision,
           sum(h.total_ms), sum(h.total_ms) / nullif(sum(h.calls), 0), max(h.mean_ms),
           sum(h.rows)::bigint, sum(h.shared_blks_hit)::bigint, sum(h.shared_blks_read)::bigint,
           sum(h.shared_blks_hit)::double precision / nullif(sum(h.shared_blks_hit) + sum(h.shared_blks_read), 0)
      FROM asymm.query_history(since) h
      LEFT JOIN asymm.queries q ON q.dbid = h.dbid AND q.userid = h.userid AND q.queryid = h.queryid
     GROUP BY h.dbid, h.userid, h.queryid
     ORDER BY sum(h.total_ms) DESC, h.queryid
$$;
COMMENT ON FUNCTION asymm.query_report(interval) IS 'Per statement over the last `since`: calls, throughput (calls/s), total and mean latency, worst snapshot mean, rows and buffer hits';

-- A call counts as slow when the mean latency of its snapshot interval (per statement) is at or
-- above the threshold: snapshots see deltas, not single calls, so this is exact for statements
-- that ran once per interval and an estimate otherwise.
CREATE FUNCTION asymm.slow_queries(threshold_ms double precision DEFAULT 100, since interval DEFAULT '1 hour')
RETURNS TABLE (queryid bigint, query text, slow_calls bigint, calls bigint, mean_ms double precision,
               max_sample_mean_ms double precision, total_ms double precision, last_slow_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF threshold_ms IS NULL OR threshold_ms < 0 THEN
        RAISE EXCEPTION 'threshold_ms must be a non-negative number of milliseconds (got %)', threshold_ms
              USING ERRCODE = 'invalid_parameter_value', HINT = 'For example asymm.slow_queries(100, ''1 hour'').';
    END IF;
    RETURN QUERY
    SELECT h.queryid, max(q.query),
           coalesce(sum(h.calls) FILTER (WHERE h.mean_ms >= threshold_ms), 0)::bigint,
           sum(h.calls)::bigint, sum(h.total_ms) / nullif(sum(h.calls), 0), max(h.mean_ms), sum(h.total_ms),
           max(h.sampled_at) FILTER (WHERE h.mean_ms >= threshold_ms)
      FROM asymm.query_history(since) h
      LEFT JOIN asymm.queries q ON q.dbid = h.dbid AND q.userid = h.userid AND q.queryid = h.queryid
     GROUP BY h.dbid, h.userid, h.queryid
    HAVING max(h.mean_ms) >= threshold_ms
     ORDER BY 3 DESC, 7 DESC, 1;
END
$$;
COMMENT ON FUNCTION asymm.slow_queries(double precision, interval) IS 'Statements with calls at or above threshold_ms (by snapshot-interval mean) during the last `since`';

-- smoothness(since) = (1 - slow_calls / calls) * (1 - spike_calls / calls), in [0, 1].
--   slow_calls:  calls in samples whose mean latency >= telemetry.slow_threshold_ms;
--   spike_calls: calls in the other samples whose mean latency exceeds telemetry.spike_factor times
--                the median sample mean of the same statement in the window, and is at least
--                telemetry.spike_min_ms.
-- 1.0 for a workload without slow calls or spikes (and for an empty window: nothing was rough).
CREATE FUNCTION asymm.smoothness(since interval DEFAULT '15 minutes') RETURNS double precision
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH params AS (
        SELECT asymm.setting('telemetry.slow_threshold_ms')::double precision AS slow_ms,
               asymm.setting('telemetry.spike_factor')::double precision AS factor,
               asymm.setting('telemetry.spike_min_ms')::double precision AS floor_ms
    ), h AS (
        SELECT * FROM asymm.query_history(since) WHERE calls > 0
    ), med AS (
        SELECT dbid, userid, queryid, percentile_cont(0.5) WITHIN GROUP (ORDER BY mean_ms) AS median_ms
          FROM h GROUP BY dbid, userid, queryid
    ), tally AS (
        SELECT sum(h.calls)::double precision AS calls,
               coalesce(sum(h.calls) FILTER (WHERE h.mean_ms >= p.slow_ms), 0)::double precision AS slow,
               coalesce(sum(h.calls) FILTER (WHERE h.mean_ms < p.slow_ms AND h.mean_ms >= p.floor_ms
                                              AND h.mean_ms > p.factor * m.median_ms), 0)::double precision AS spikes
          FROM h JOIN med m USING (dbid, userid, queryid) CROSS JOIN params p
    )
    SELECT CASE WHEN coalesce(calls, 0) = 0 THEN 1.0
                ELSE greatest(0.0, least(1.0, (1 - slow / calls) * (1 - spikes / calls))) END
      FROM tally
$$;
COMMENT ON FUNCTION asymm.smoothness(interval) IS 'Workload smoothness in [0,1]: (1 - slow calls/calls) * (1 - latency-spike calls/calls) over the last `since`; 1.0 = no slow calls, no spikes';
