-- asymm: since 0.2.0
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
