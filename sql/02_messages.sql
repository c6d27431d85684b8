-- asymm: since 0.2.0
-- Error messages that echo an argument.  An error is one short line (issue 15): an argument of
-- 100k characters, or one with a newline in it, must not become a 100k-character or multi-line
-- message.  asymm._shown() is how every message shows a value the caller gave.

CREATE FUNCTION asymm._shown(value text, quote text DEFAULT '"') RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN value IS NULL THEN 'NULL'
            ELSE quote || replace(regexp_replace(left(value, 60), '[[:cntrl:]]', '?', 'g'), quote, quote || quote)
                 || CASE WHEN length(value) > 60 THEN '...' || quote || format(' (%s characters)', length(value))
                         ELSE quote END END
$$;
COMMENT ON FUNCTION asymm._shown(text, text) IS 'A value for an error message: quoted (the quote doubled inside), control characters as ?, at most 60 characters; NULL as NULL; internal';
