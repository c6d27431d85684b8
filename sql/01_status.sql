-- asymm: since 0.2.0
-- asymm.status(), which 0.1.0 created, now also says which daemon leads.  CREATE OR REPLACE: the
-- same file creates it on install and redefines it on upgrade from 0.1.0.
--
-- The leader is whoever holds the leader lock now: pg_locks is the truth, a heartbeat is up to a
-- second old.  A lock is held by a backend, not by a daemon, so each daemon records the backend pid
-- of its lock session on every heartbeat (asymm.daemon.service), and the two are matched here.

ALTER TABLE asymm.daemons ADD COLUMN lock_backend_pid integer;
COMMENT ON COLUMN asymm.daemons.lock_backend_pid IS 'Backend pid of the daemon''s leader-lock session, set on every heartbeat: asymm.status() matches it with the holder of the leader lock';

CREATE OR REPLACE FUNCTION asymm.status() RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    preload text := current_setting('shared_preload_libraries', true);
    stale interval := asymm.setting('daemon.stale_after')::interval;
    daemons jsonb;
    holder integer;
BEGIN
    -- The key is asymm.daemon.leader.LEADER_LOCK_KEY (b'asymmLDR' as a bigint).
    SELECT l.pid INTO holder
      FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND ((l.classid::bigint << 32) | l.objid::bigint) = 7022089754892846162;
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'daemon_id', d.daemon_id, 'host', d.host, 'pid', d.pid, 'version', d.version,
               'started_at', d.started_at, 'last_seen', d.last_seen,
               'ticks', d.ticks, 'skipped_ticks', d.skipped_ticks, 'overruns', d.overruns,
               'leader', coalesce(d.lock_backend_pid = holder, false))
               ORDER BY d.started_at), '[]'::jsonb)
      INTO daemons
      FROM asymm.daemons d
     WHERE d.stopped_at IS NULL AND d.last_seen > now() - stale;
    RETURN jsonb_build_object(
        'version', asymm.version(),
        'server_version', current_setting('server_version'),
        'plpython', asymm.plpython_version(),
        'pg_stat_statements_loaded',
            coalesce(preload ~ '(^|[\s,])"?pg_stat_statements"?($|[\s,])', false),
        'hypopg_available',
            EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'),
        'hypopg_installed',
            EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg'),
        'settings_changed', (SELECT count(*) FROM asymm.setting_values),
        'daemons', daemons,
        -- null when no daemon leads; daemon_id null when the lock holder is not a registered
        -- daemon (one older than 0.2.0, or a session that took the lock by hand).
        'leader', CASE WHEN holder IS NOT NULL THEN jsonb_build_object(
            'backend_pid', holder,
            'daemon_id', (SELECT d.daemon_id FROM asymm.daemons d
                           WHERE d.lock_backend_pid = holder AND d.stopped_at IS NULL
                           ORDER BY d.last_seen DESC LIMIT 1)) END);
END
$$;
COMMENT ON FUNCTION asymm.status() IS 'What asymm sees: versions, required libraries, optional extensions, live daemons and which one leads (read-only)';
