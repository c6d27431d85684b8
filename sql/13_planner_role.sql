-- asymm: since 0.2.0
-- The role asymm._explain_as plans every statement as: no login, no rights, a member of nothing.
-- A statement's text is its author's, but the views, functions, operators and defaults it reaches
-- belong to their owners, who may change them after the author ran it; planned with the author's
-- (or the caller's) rights, a role's view over an IMMUTABLE function would run that role's code
-- with those rights.  Planning needs no privilege: the executor checks them.  A role is cluster-wide,
-- so a second database's CREATE EXTENSION finds it made; _explain_as refuses it if anyone gave it
-- anything.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'asymm_planner') THEN
        CREATE ROLE asymm_planner NOLOGIN NOSUPERUSER NOINHERIT NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    END IF;
END
$$;
