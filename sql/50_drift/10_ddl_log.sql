-- asymm: since 0.2.0
-- Schema drift: the DDL log written by event triggers, baselines of the schema,
-- and the comparison of a baseline with the live catalog.
--
-- Event triggers are a fast hint, not the truth (they do not fire under
-- session_replication_role = replica, can be disabled, and some commands carry no identity), so
-- drift itself is always computed by a full catalog diff: asymm.drift() compares a stored
-- snapshot with a fresh one and only borrows who/when from the DDL log when it has a matching row.

INSERT INTO asymm.setting_defaults (name, default_value, value_type, min_value, max_value, allowed_values, pattern, description) VALUES
    ('drift.lock_timeout', '2s', 'interval', '1 ms', '1 hour', NULL, '^[0-9]{1,9}(\.[0-9]{1,6})? ?(us|ms|s|min|h|d)$', 'lock_timeout set before every statement of a drift migration plan'),
    ('drift.reconcile_every', '10 s', 'interval', '10 ms', '1 day', NULL, NULL, 'How often the daemon compares every baseline with the catalog'),
    ('drift.restore_indexes', 'false', 'boolean', NULL, NULL, NULL, NULL, 'Opt-in: the daemon re-creates a dropped baseline index with CREATE INDEX CONCURRENTLY');

-- ---------------------------------------------------------------------------------------------
-- The DDL log
-- ---------------------------------------------------------------------------------------------
CREATE TABLE asymm.ddl_log (
    id              bigserial PRIMARY KEY,
    logged_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    txid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event           text NOT NULL CHECK (event IN ('ddl_command_end', 'sql_drop', 'table_rewrite')),
    command_tag     text NOT NULL,
    object_type     text,
    schema_name     text,
    object_identity text,
    classid         oid,
    objid           oid,
    objsubid        integer,
    role_name       name NOT NULL,
    session_role    name NOT NULL,
    statement       text,
    backend_pid     integer NOT NULL DEFAULT pg_backend_pid(),
    application_name text,
    detail          jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE asymm.ddl_log IS 'Every DDL command seen by the asymm_drift_* event triggers: who, when, tag, object identity, statement text, transaction';
CREATE INDEX ddl_log_objid ON asymm.ddl_log (objid);
CREATE INDEX ddl_log_identity ON asymm.ddl_log (object_identity);

CREATE FUNCTION asymm._drift_event() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- SECURITY DEFINER changes current_user to the owner; the role that issued the DDL is the
    -- SET ROLE value when there is one, else the session user.
    who name := CASE WHEN current_setting('role') = 'none' THEN session_user
                     ELSE current_setting('role')::name END;
    query text := current_query();
    app text := current_setting('application_name', true);
    rel oid;
BEGIN
    -- asymm's own scripts (CREATE/ALTER/DROP EXTENSION asymm) are not user DDL; only when that is
    -- all the query string holds: "CREATE EXTENSION IF NOT EXISTS asymm; DROP TABLE t" would
    -- otherwise hide the DROP (a no-op CREATE EXTENSION needs no privilege).
    IF query ~* '^\s*(create|alter|drop)\s+extension\s+(if\s+(not\s+)?exists\s+)?"?asymm"?(\s[^;]*)?;?\s*$' THEN
        RETURN;
    END IF;
    IF TG_EVENT = 'ddl_command_end' THEN
        INSERT INTO asymm.ddl_log (event, command_tag, object_type, schema_name, object_identity,
                                   classid, objid, objsubid, role_name, session_role, statement,
                                   application_name)
        SELECT TG_EVENT, c.command_tag, c.object_type, c.schema_name, c.object_identity,
               c.classid, c.objid, c.objsubid, who, session_user, query, app
          FROM pg_event_trigger_ddl_commands() AS c
         WHERE NOT c.in_extension
           AND c.schema_name IS DISTINCT FROM 'asymm'
           AND coalesce(c.schema_name, '') !~ '^pg_(toast_)?temp';  -- a session's own objects
    ELSIF TG_EVENT = 'sql_drop' THEN
        IF EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() d
                    WHERE d.object_type = 'extension' AND d.object_identity = 'asymm') THEN
            RETURN;
        END IF;
        INSERT INTO asymm.ddl_log (event, command_tag, object_type, schema_name, object_identity,
                                   classid, objid, objsubid, role_name, session_role, statement,
                                   application_name, detail)
        SELECT TG_EVENT, TG_TAG, d.object_type, d.schema_name, d.object_identity,
               d.classid, d.objid, d.objsubid, who, session_user, query, app,
               jsonb_build_object('original', d.original, 'normal', d.normal,
                                  'is_temporary', d.is_temporary, 'address_names', d.address_names)
          FROM pg_event_trigger_dropped_objects() AS d
         WHERE d.schema_name IS DISTINCT FROM 'asymm'
           AND (d.original OR d.normal)
           AND NOT d.is_temporary;
    ELSIF TG_EVENT = 'table_rewrite' THEN
        rel := pg_event_trigger_table_rewrite_oid();
        INSERT INTO asymm.ddl_log (event, command_tag, object_type, schema_name, object_identity,
                                   classid, objid, objsubid, role_name, session_role, statement,
                                   application_name, detail)
        SELECT TG_EVENT, TG_TAG, o.type, o.schema, o.identity, 'pg_class'::regclass, rel, 0,
               who, session_user, query, app,
               jsonb_build_object('reason', pg_event_trigger_table_rewrite_reason())
          FROM pg_identify_object('pg_class'::regclass, rel, 0) AS o
         WHERE o.schema IS DISTINCT FROM 'asymm'
           AND coalesce(o.schema, '') !~ '^pg_(toast_)?temp';
    END IF;
EXCEPTION WHEN OTHERS THEN
    -- Never make the user's DDL fail because of bookkeeping.
    RAISE WARNING 'asymm: could not record % (%) in asymm.ddl_log: %', TG_TAG, TG_EVENT, SQLERRM;
END
$$;
COMMENT ON FUNCTION asymm._drift_event() IS 'Event-trigger handler: writes asymm.ddl_log; warns instead of failing the DDL';

CREATE EVENT TRIGGER asymm_drift_ddl_command_end ON ddl_command_end EXECUTE FUNCTION asymm._drift_event();
COMMENT ON EVENT TRIGGER asymm_drift_ddl_command_end IS 'asymm: records created and altered objects in asymm.ddl_log';
CREATE EVENT TRIGGER asymm_drift_sql_drop ON sql_drop EXECUTE FUNCTION asymm._drift_event();
COMMENT ON EVENT TRIGGER asymm_drift_sql_drop IS 'asymm: records dropped objects in asymm.ddl_log';
CREATE EVENT TRIGGER asymm_drift_table_rewrite ON table_rewrite EXECUTE FUNCTION asymm._drift_event();
COMMENT ON EVENT TRIGGER asymm_drift_table_rewrite IS 'asymm: records table rewrites (with their reason) in asymm.ddl_log';
