-- asymm: since 0.3.0
-- A baseline restored by pg_restore (asymm.drift_baselines is dumped, asymm.ddl_log is not) names
-- a DDL log position of the database it came from: in the new database the log starts again, so
-- every DDL made after the restore had an id below it and was reported with no author, as found by
-- reconciliation (issue 19).  A row that arrives from another database is rebased on this log's
-- position at its arrival; its database_oid stays, so that the comparison pairs objects by
-- identity and never by the old database's OIDs.

CREATE FUNCTION asymm._drift_baseline_rebase() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.database_oid IS DISTINCT FROM (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()) THEN
        NEW.last_ddl_id := coalesce((SELECT max(l.id) FROM asymm.ddl_log l), 0);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION asymm._drift_baseline_rebase() IS 'Trigger: a baseline restored from another database starts at this DDL log''s position; internal';
REVOKE EXECUTE ON FUNCTION asymm._drift_baseline_rebase() FROM PUBLIC;

CREATE TRIGGER drift_baselines_rebase
BEFORE INSERT ON asymm.drift_baselines
FOR EACH ROW EXECUTE FUNCTION asymm._drift_baseline_rebase();
