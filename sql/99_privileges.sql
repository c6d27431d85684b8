-- asymm: always
-- Runs at the end of every install and upgrade script, so that whatever a version adds starts
-- locked down: nothing in schema asymm is executable by PUBLIC until a DBA grants it (for the
-- read-only part, asymm.grant_reader()).  Must stay idempotent.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA asymm FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA asymm FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA asymm FROM PUBLIC;
