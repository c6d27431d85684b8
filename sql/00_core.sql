-- asymm: since 0.1.0
-- Core: settings, daemon registry, version and health.  Everything else builds on these.

-- The schema is created here, not by the control file, so that it belongs to the extension and
-- DROP EXTENSION removes it (a schema created from the control file is left behind).
CREATE SCHEMA asymm;
COMMENT ON SCHEMA asymm IS 'asymm: a self-tuning companion for PostgreSQL (annotations, telemetry, index advice, Redis sync, schema drift)';

-- Settings are split in two so that pg_dump keeps exactly what a DBA changed: the defaults belong
-- to the extension script (recreated by CREATE EXTENSION on restore), the overrides are a config
-- table whose rows pg_dump carries over.
CREATE TABLE asymm.setting_defaults (
    name          text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_.]*$'),
    default_value text NOT NULL,
    value_type    text NOT NULL CHECK (value_type IN ('text', 'integer', 'number', 'boolean', 'interval')),
    description   text NOT NULL
);
COMMENT ON TABLE asymm.setting_defaults IS 'Every setting asymm knows, with its type, default and meaning (owned by the extension script)';

CREATE TABLE asymm.setting_values (
    name       text PRIMARY KEY REFERENCES asymm.setting_defaults (name) ON DELETE CASCADE,
    value      text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    changed_by name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE asymm.setting_values IS 'Settings changed from their default by asymm.set_setting(); kept by pg_dump';
SELECT pg_catalog.pg_extension_config_dump('asymm.setting_values', '');

INSERT INTO asymm.setting_defaults (name, default_value, value_type, description) VALUES
    ('daemon.pulse_period', '203.7 ms', 'interval', 'Period of the daemon pulse loop (4.909 Hz by default)'),
    ('daemon.heartbeat_every', '1 s', 'interval', 'How often a running daemon records that it is alive in asymm.daemons'),
    ('daemon.stale_after', '10 s', 'interval', 'A daemon not seen for this long is reported as gone');

CREATE VIEW asymm.settings AS
SELECT d.name,
       coalesce(v.value, d.default_value) AS value,
       d.default_value,
       d.value_type,
       v.name IS NOT NULL AS changed,
       v.changed_at,
       v.changed_by,
       d.description
  FROM asymm.setting_defaults d
  LEFT JOIN asymm.setting_values v USING (name);
COMMENT ON VIEW asymm.settings IS 'Effective asymm settings: the default unless changed with asymm.set_setting()';

CREATE FUNCTION asymm.setting(setting_name text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result text;
BEGIN
    SELECT coalesce(v.value, d.default_value) INTO result
      FROM asymm.setting_defaults d LEFT JOIN asymm.setting_values v USING (name)
     WHERE d.name = setting_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown asymm setting "%"', setting_name
              USING ERRCODE = 'undefined_object',
                    HINT = 'SELECT name FROM asymm.settings lists the settings.';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION asymm.setting(text) IS 'Effective value of one asymm setting; errors on an unknown name';

CREATE FUNCTION asymm.set_setting(setting_name text, new_value text) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind text;
BEGIN
    SELECT value_type INTO kind FROM asymm.setting_defaults WHERE name = setting_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown asymm setting "%"', setting_name
              USING ERRCODE = 'undefined_object',
                    HINT = 'SELECT name FROM asymm.settings lists the settings.';
    END IF;
    IF new_value IS NULL THEN
        RAISE EXCEPTION 'setting "%" cannot be NULL', setting_name
              USING ERRCODE = 'null_value_not_allowed',
                    HINT = 'Use asymm.reset_setting() to return to the default.';
    END IF;
    BEGIN
        CASE kind
            WHEN 'integer' THEN PERFORM new_value::bigint;
            WHEN 'number' THEN PERFORM new_value::double precision;
            WHEN 'boolean' THEN PERFORM new_value::boolean;
            WHEN 'interval' THEN PERFORM new_value::interval;
            ELSE NULL;
        END CASE;
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'invalid value "%" for setting "%"', new_value, setting_name
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = format('The setting takes a value of type %s.', kind);
    END;
    INSERT INTO asymm.setting_values AS s (name, value) VALUES (setting_name, new_value)
    ON CONFLICT (name) DO UPDATE SET value = excluded.value, changed_at = now(), changed_by = current_user;
    RETURN new_value;
END
$$;
COMMENT ON FUNCTION asymm.set_setting(text, text) IS 'Change one asymm setting after checking its type; kept across pg_dump';

CREATE FUNCTION asymm.reset_setting(setting_name text) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM asymm.setting_values WHERE name = setting_name;
    RETURN asymm.setting(setting_name);
END
$$;
COMMENT ON FUNCTION asymm.reset_setting(text) IS 'Return one asymm setting to its default and give the default back';

-- Daemons register here so that operators (and later the leader election) can see who runs.
CREATE TABLE asymm.daemons (
    daemon_id  uuid PRIMARY KEY,
    host       text NOT NULL,
    pid        integer NOT NULL,
    version    text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz,
    ticks      bigint NOT NULL DEFAULT 0,
    skipped_ticks bigint NOT NULL DEFAULT 0,
    overruns   bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE asymm.daemons IS 'asymm daemons that have run against this database, with their last heartbeat';

CREATE FUNCTION asymm.version() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT extversion FROM pg_extension WHERE extname = 'asymm' $$;
COMMENT ON FUNCTION asymm.version() IS 'Installed version of the asymm extension';

CREATE FUNCTION asymm.plpython_version() RETURNS text
LANGUAGE plpython3u STABLE
AS $$
import sys
return "%d.%d.%d" % sys.version_info[:3]
$$;
COMMENT ON FUNCTION asymm.plpython_version() IS 'Version of the Python interpreter that PL/Python runs in this server (proves PL/Python works)';

-- asymm.status() is in 01_status.sql (redefined in 0.2.0).

-- Granting a reader role: every function that cannot write (STABLE or IMMUTABLE, enforced by the
-- server) plus SELECT on the views.  Privileged functions stay revoked from PUBLIC.
CREATE FUNCTION asymm.grant_reader(grantee regrole) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn regprocedure;
    rel regclass;
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA asymm TO %I', grantee::text);
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = 'asymm'::regnamespace AND p.provolatile IN ('s', 'i')
           AND p.prokind = 'f' AND p.proname !~ '^_'
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', fn, grantee::text);
    END LOOP;
    FOR rel IN
        SELECT c.oid::regclass FROM pg_class c
         WHERE c.relnamespace = 'asymm'::regnamespace AND c.relkind IN ('v', 'm')
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO %I', rel, grantee::text);
    END LOOP;
END
$$;
COMMENT ON FUNCTION asymm.grant_reader(regrole) IS 'Let a role use the read-only part of asymm: schema usage, read-only functions and the views';
