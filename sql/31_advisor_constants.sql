-- asymm: since 0.3.0
-- Grammar constants of normalized statements (issue 18): pg_stat_statements replaces every
-- constant with $n, also the ones that are part of an expression's shape (the key of
-- payload->>'session', the unit of date_trunc('day', at)), so the advisor could not propose the
-- expression index they need.  The daemon (or asymm.advisor.constants.sample_constants) reads them
-- from the raw text of a session in pg_stat_activity whose parse tree matches the normalized one,
-- and keeps only those grammar positions: a compared value (= 'alice', IN lists, LIMIT) is never
-- stored.  Readable only by the owner and the daemon role (sql/99_privileges.sql revokes PUBLIC;
-- asymm.grant_reader() does not list it).
CREATE TABLE asymm.query_constants (
    dbid       oid NOT NULL,
    queryid    bigint NOT NULL,
    constants  jsonb NOT NULL CHECK (pg_catalog.jsonb_typeof(constants) = 'object'),
    sampled_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (dbid, queryid)
);
COMMENT ON TABLE asymm.query_constants IS 'Grammar constants of pg_stat_statements entries (jsonb keys, date_trunc units): {"n": SQL literal} per (dbid, queryid), read from pg_stat_activity; never compared values';
COMMENT ON COLUMN asymm.query_constants.constants IS 'Parameter number (as text) -> the constant as an SQL literal, for grammar positions only';
