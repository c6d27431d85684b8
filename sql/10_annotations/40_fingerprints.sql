-- asymm: since 0.2.0
-- ---------------------------------------------------------------------------------------------
-- Query fingerprints.  pglast (libpg_query) is not available inside the server, so the server
-- computes its own deterministic fingerprint of the normalized text.  The tokenizer exists once,
-- as control/asymm/annotations/normalize.py: build.py splices it into asymm.normalize_query, and
-- the control package (asymm.annotations.fingerprint) imports it.
--
-- Normalization ("asymm fingerprint v1"): tokenize the SQL; drop comments and whitespace; replace
-- every constant (string, number, bit/hex string, dollar-quoted string) and every $n parameter by
-- "?"; collapse a parenthesised or bracketed list of "?" into one "?"; lowercase keywords and
-- unquoted identifiers; unquote a quoted identifier that would not need quotes; drop trailing ";".
-- The tokens joined by one space are the normalized text; the fingerprint is the first 16 hex
-- digits of its SHA-256 (the same shape as pglast's fingerprint).  So "SELECT * FROM t WHERE id = 42"
-- and "select *  from T where id=$1" share a fingerprint.

CREATE FUNCTION asymm.normalize_query(query text) RETURNS text
LANGUAGE plpython3u IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $plpython$
-- asymm: include control/asymm/annotations/normalize.py
return normalize_query(query)
$plpython$;
COMMENT ON FUNCTION asymm.normalize_query(text) IS 'Normalized query text: constants and $n become ?, comments and case of keywords/identifiers are dropped (asymm fingerprint v1, PL/Python)';

CREATE FUNCTION asymm.query_fingerprint(query text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT left(encode(sha256(convert_to(asymm.normalize_query(query), 'UTF8')), 'hex'), 16) $$;
COMMENT ON FUNCTION asymm.query_fingerprint(text) IS 'Fingerprint of a query: first 16 hex digits of SHA-256 of asymm.normalize_query(); stable across queryid changes';
