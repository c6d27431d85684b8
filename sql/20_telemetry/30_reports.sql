-- asymm: since 0.2.0
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
