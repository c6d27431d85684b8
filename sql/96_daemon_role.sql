-- asymm: since 0.2.0
-- Running the daemon without superuser.
--
-- The daemon writes asymm's own tables (telemetry history, the sync outbox and positions, drift
-- findings, suggestions), calls asymm's functions, reads every statement of pg_stat_statements and
-- re-reads the rows of tracked tables (all of them: BYPASSRLS).  asymm.grant_daemon(role) gives a role exactly that and
-- remembers it, so that asymm.track() of a later table lets the daemon read it too.  What such a
-- role cannot do, by design: plan a statement of a role it is not a member of (the advisor skips it,
-- see asymm._explain_as), create indexes on tables it does not own (`advise --apply`), hide its own
-- statements from pg_stat_statements (a superuser setting: they are recognised by application_name
-- instead).  The functions that create and drop asymm's history partitions are SECURITY DEFINER,
-- so the daemon needs no CREATE on schema asymm.

CREATE TABLE asymm.daemon_roles (
    role_name  name PRIMARY KEY,
    granted_at timestamptz NOT NULL DEFAULT now(),
    granted_by name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE asymm.daemon_roles IS 'Roles given the daemon''s rights with asymm.grant_daemon(); asymm.track() lets them read each newly tracked table';
SELECT pg_catalog.pg_extension_config_dump('asymm.daemon_roles', '');

-- A role by OID, as its name for %I; errors on NULL, a role that does not exist, or PUBLIC.
CREATE FUNCTION asymm._role_name(grantee regrole) RETURNS name
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found name;
BEGIN
    SELECT r.rolname INTO found FROM pg_catalog.pg_roles r WHERE r.oid = grantee;
    IF found IS NULL THEN
        RAISE EXCEPTION 'role must be an existing role (got %)', coalesce(grantee::oid::text, 'NULL')
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Create it first: CREATE ROLE asymm_daemon LOGIN.';
    END IF;
    RETURN found;
END
$$;
COMMENT ON FUNCTION asymm._role_name(regrole) IS 'Name of an existing role (for format(''%I'')); errors on NULL or a dropped role; internal';

CREATE FUNCTION asymm.grant_daemon(grantee regrole) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    grantee_name name := asymm._role_name(grantee);
    rel regclass;
    fn regprocedure;
BEGIN
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = grantee) THEN
        RAISE EXCEPTION 'role % is a superuser: it needs no grants', grantee_name
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Give the daemon a role of its own without SUPERUSER.';
    END IF;
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA asymm TO %I', grantee_name);
    -- Every function but the ones that hand out rights.
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'asymm'::regnamespace
           AND p.proname NOT IN ('grant_reader', 'grant_daemon', 'revoke_daemon')
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %I', fn, grantee_name);
    END LOOP;
    EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA asymm TO %I', grantee_name);
    EXECUTE pg_catalog.format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA asymm TO %I', grantee_name);
    -- Every statement's text, not only the daemon's own ("<insufficient privilege>" otherwise).
    EXECUTE pg_catalog.format('GRANT pg_read_all_stats TO %I', grantee_name);
    -- A mirror holds every row; and a row-level security policy is its table owner's code, which
    -- would run with the daemon's rights (asymm's connections set row_security = off, so without
    -- BYPASSRLS such a table fails to sync instead).
    EXECUTE pg_catalog.format('ALTER ROLE %I BYPASSRLS', grantee_name);
    FOR rel IN SELECT t.rel FROM asymm.sync_tables t LOOP
        EXECUTE pg_catalog.format('GRANT SELECT ON %s TO %I', rel, grantee_name);
    END LOOP;
    INSERT INTO asymm.daemon_roles (role_name) VALUES (grantee_name)
    ON CONFLICT ON CONSTRAINT daemon_roles_pkey DO UPDATE SET granted_at = now(), granted_by = current_user;
END
$$;
COMMENT ON FUNCTION asymm.grant_daemon(regrole) IS 'Give a (non-superuser) role what the asymm daemon needs: asymm''s tables and functions, pg_read_all_stats, SELECT on tracked tables (also those tracked later)';

CREATE FUNCTION asymm.revoke_daemon(grantee regrole) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    grantee_name name := asymm._role_name(grantee);
    rel regclass;
BEGIN
    FOR rel IN SELECT t.rel FROM asymm.sync_tables t LOOP
        EXECUTE pg_catalog.format('REVOKE SELECT ON %s FROM %I', rel, grantee_name);
    END LOOP;
    EXECUTE pg_catalog.format('REVOKE pg_read_all_stats FROM %I', grantee_name);
    EXECUTE pg_catalog.format('ALTER ROLE %I NOBYPASSRLS', grantee_name);
    EXECUTE pg_catalog.format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA asymm FROM %I', grantee_name);
    EXECUTE pg_catalog.format('REVOKE ALL ON ALL TABLES IN SCHEMA asymm FROM %I', grantee_name);
    EXECUTE pg_catalog.format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA asymm FROM %I', grantee_name);
    EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA asymm FROM %I', grantee_name);
    DELETE FROM asymm.daemon_roles d WHERE d.role_name = grantee_name;
END
$$;
COMMENT ON FUNCTION asymm.revoke_daemon(regrole) IS 'Take back what asymm.grant_daemon() gave a role';

-- Called by asymm.track(): the daemon roles may read the newly tracked table.  A tracking role that
-- may not grant on the table (it has TRIGGER but is not its owner) gets a warning, not an error.
CREATE FUNCTION asymm._grant_tracked_to_daemons(rel regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    grantee_name name;
BEGIN
    FOR grantee_name IN
        SELECT d.role_name FROM asymm.daemon_roles d JOIN pg_catalog.pg_roles r ON r.rolname = d.role_name
    LOOP
        BEGIN
            EXECUTE pg_catalog.format('GRANT SELECT ON %s TO %I', rel, grantee_name);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'the asymm daemon role % cannot read %', grantee_name, rel
                  USING HINT = pg_catalog.format('As the table''s owner: GRANT SELECT ON %s TO %I;', rel, grantee_name);
        END;
    END LOOP;
END
$$;
COMMENT ON FUNCTION asymm._grant_tracked_to_daemons(regclass) IS 'Let every role of asymm.daemon_roles read a newly tracked table; internal (asymm.track)';
