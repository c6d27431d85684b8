-- asymm: always
-- Runs at the end of every install and upgrade script, so that whatever a version adds starts
-- locked down: nothing in schema asymm is executable by PUBLIC until a DBA grants it (for the
-- read-only part, asymm.grant_reader()).  Must stay idempotent.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA asymm FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA asymm FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA asymm FROM PUBLIC;

-- Tracked tables' writers insert into the sync outbox with their own rights (asymm.track() grants
-- that, see 40_sync.sql); an upgrade must not take it away from a database that syncs already.
DO $$
BEGIN
    IF to_regclass('asymm.sync_tables') IS NOT NULL AND EXISTS (SELECT 1 FROM asymm.sync_tables) THEN
        GRANT USAGE ON SCHEMA asymm TO PUBLIC;
        GRANT INSERT ON asymm.sync_outbox_0, asymm.sync_outbox_1 TO PUBLIC;
        GRANT SELECT ON asymm.sync_wake TO PUBLIC;
    END IF;
END
$$;
