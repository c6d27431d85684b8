-- asymm: since 0.2.0
-- Every setting has a rule: the range (numbers, intervals), the allowed values (enums) or a regular
-- expression (texts), enforced by asymm.set_setting() and shown in asymm.settings.allowed.
--
-- Why: 0.1.0 checked only the type, so sync.batch_rows = -1 (the sync then failed every pass),
-- daemon.pulse_period = '-1 s' or sync.key_prefix = 'a{b}c' were taken and broke things later, far
-- from the mistake.  The rule lives in the row of the setting (asymm.setting_defaults) so that each
-- area file declares its settings and their rules together, and a setting without a rule cannot
-- be added (CHECK setting_defaults_has_rule).  CREATE OR REPLACE / ALTER: the same text installs and
-- upgrades from 0.1.0.  A value stored before the rules existed (or written into
-- asymm.setting_values directly) is refused when read, by asymm.setting(), with an error that says
-- what to do: failing with a clear message beats running with a value that breaks the daemon.

ALTER TABLE asymm.setting_defaults
    ADD COLUMN min_value text,
    ADD COLUMN max_value text,
    ADD COLUMN allowed_values text[],
    ADD COLUMN pattern text,
    ADD CONSTRAINT setting_defaults_rule_fits_type CHECK (
        ((min_value IS NULL AND max_value IS NULL) OR value_type IN ('integer', 'number', 'interval'))
        AND (allowed_values IS NULL OR value_type = 'text')
        AND (pattern IS NULL OR value_type IN ('text', 'interval')));
COMMENT ON COLUMN asymm.setting_defaults.min_value IS 'Smallest value allowed (integer, number and interval settings), inclusive';
COMMENT ON COLUMN asymm.setting_defaults.max_value IS 'Largest value allowed (integer, number and interval settings), inclusive';
COMMENT ON COLUMN asymm.setting_defaults.allowed_values IS 'The only values allowed (text settings that are enumerations)';
COMMENT ON COLUMN asymm.setting_defaults.pattern IS 'Regular expression the whole value must match (text settings; intervals that are also pasted into a GUC)';

-- The three settings 0.1.0 created.  daemon.pulse_period matches the daemon's own period bounds
-- (asymm.daemon.config.validate: 1 ms to 1 hour).
UPDATE asymm.setting_defaults SET min_value = '1 ms', max_value = '1 hour' WHERE name = 'daemon.pulse_period';
UPDATE asymm.setting_defaults SET min_value = '10 ms', max_value = '1 hour' WHERE name = 'daemon.heartbeat_every';
UPDATE asymm.setting_defaults SET min_value = '1 s', max_value = '1 day' WHERE name = 'daemon.stale_after';

ALTER TABLE asymm.setting_defaults ADD CONSTRAINT setting_defaults_has_rule CHECK (
    value_type = 'boolean'
    OR (value_type IN ('integer', 'number', 'interval') AND min_value IS NOT NULL AND max_value IS NOT NULL)
    OR (value_type = 'text' AND (allowed_values IS NOT NULL OR pattern IS NOT NULL)));

-- Appends one column (allowed); the others are those of 0.1.0, in the same order.
CREATE OR REPLACE VIEW asymm.settings AS
SELECT d.name,
       coalesce(v.value, d.default_value) AS value,
       d.default_value,
       d.value_type,
       v.name IS NOT NULL AS changed,
       v.changed_at,
       v.changed_by,
       d.description,
       CASE d.value_type
           WHEN 'boolean' THEN 'true or false'
           WHEN 'integer' THEN format('an integer from %s to %s', d.min_value, d.max_value)
           WHEN 'number' THEN format('a number from %s to %s', d.min_value, d.max_value)
           WHEN 'interval' THEN format('an interval from %s to %s', d.min_value, d.max_value)
           ELSE CASE WHEN d.allowed_values IS NOT NULL
                     THEN 'one of ' || array_to_string(d.allowed_values, ', ') ELSE 'text' END
       END || coalesce(' matching ' || d.pattern, '') AS allowed
  FROM asymm.setting_defaults d
  LEFT JOIN asymm.setting_values v USING (name);
COMMENT ON VIEW asymm.settings IS 'Effective asymm settings: the default unless changed with asymm.set_setting(); allowed says which values set_setting() takes';

CREATE FUNCTION asymm.setting_check(setting_name text, value text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d asymm.setting_defaults;
    ok boolean;
BEGIN
    SELECT * INTO d FROM asymm.setting_defaults s WHERE s.name = setting_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown asymm setting %', asymm._shown(setting_name)
              USING ERRCODE = 'undefined_object',
                    HINT = 'SELECT name FROM asymm.settings lists the settings.';
    END IF;
    BEGIN
        -- Casts that fail (not a number, out of bigint range, not an interval) mean "not allowed".
        ok := value IS NOT NULL
              AND (d.pattern IS NULL OR value ~ d.pattern)
              AND (d.allowed_values IS NULL OR value = ANY (d.allowed_values))
              AND CASE d.value_type
                      WHEN 'integer' THEN value::bigint BETWEEN d.min_value::bigint AND d.max_value::bigint
                      -- Decimal notation only: float8 input also takes hexadecimal ('0x10'), NaN and
                      -- Infinity, which the daemon's float() does not all read, and no setting means
                      WHEN 'number' THEN value ~ '^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$'
                           AND value::double precision <> 'NaN'::double precision
                           AND value::double precision BETWEEN d.min_value::double precision
                                                           AND d.max_value::double precision
                      WHEN 'interval' THEN value::interval BETWEEN d.min_value::interval AND d.max_value::interval
                      WHEN 'boolean' THEN value::boolean IS NOT NULL
                      ELSE true
                  END;
    EXCEPTION WHEN data_exception THEN
        ok := false;
    END;
    IF coalesce(ok, false) THEN
        RETURN NULL;
    END IF;
    RETURN (SELECT s.allowed FROM asymm.settings s WHERE s.name = setting_name);
END
$$;
COMMENT ON FUNCTION asymm.setting_check(text, text) IS 'NULL when asymm.set_setting() would take this value for the setting, else the allowed values; errors on an unknown name';

CREATE OR REPLACE FUNCTION asymm.set_setting(setting_name text, new_value text) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    allowed text;
BEGIN
    PERFORM FROM asymm.setting_defaults WHERE name = setting_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown asymm setting %', asymm._shown(setting_name)
              USING ERRCODE = 'undefined_object',
                    HINT = 'SELECT name FROM asymm.settings lists the settings.';
    END IF;
    IF new_value IS NULL THEN
        RAISE EXCEPTION 'setting "%" cannot be NULL', setting_name
              USING ERRCODE = 'null_value_not_allowed',
                    HINT = 'Use asymm.reset_setting() to return to the default.';
    END IF;
    allowed := asymm.setting_check(setting_name, new_value);
    IF allowed IS NOT NULL THEN
        RAISE EXCEPTION 'invalid value % for setting "%"', asymm._shown(new_value), setting_name
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = format('%s takes %s.', setting_name, allowed);
    END IF;
    INSERT INTO asymm.setting_values AS s (name, value) VALUES (setting_name, new_value)
    ON CONFLICT (name) DO UPDATE SET value = excluded.value, changed_at = now(), changed_by = current_user;
    RETURN new_value;
END
$$;
COMMENT ON FUNCTION asymm.set_setting(text, text) IS 'Change one asymm setting after checking it against its rule (asymm.settings.allowed); kept across pg_dump';

-- Readers of settings (SQL functions, the daemon, the CLI) all go through here: a stored value that
-- breaks the rule (stored before the rule existed, or written into asymm.setting_values directly)
-- is an error naming the setting, not a value that misbehaves later.  Defaults are not re-checked
-- (tests/test_settings_validation.py checks that every default follows its rule).
CREATE OR REPLACE FUNCTION asymm.setting(setting_name text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result text;
    stored boolean;
    allowed text;
BEGIN
    SELECT coalesce(v.value, d.default_value), v.value IS NOT NULL INTO result, stored
      FROM asymm.setting_defaults d LEFT JOIN asymm.setting_values v USING (name)
     WHERE d.name = setting_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown asymm setting %', asymm._shown(setting_name)
              USING ERRCODE = 'undefined_object',
                    HINT = 'SELECT name FROM asymm.settings lists the settings.';
    END IF;
    IF stored THEN
        allowed := asymm.setting_check(setting_name, result);
        IF allowed IS NOT NULL THEN
            RAISE EXCEPTION 'stored value "%" of setting "%" is not allowed', left(result, 80), setting_name
                  USING ERRCODE = 'invalid_parameter_value',
                        HINT = format('%s takes %s: fix it with asymm.set_setting(%L, ...) or asymm.reset_setting(%L).',
                                      setting_name, allowed, setting_name, setting_name);
        END IF;
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION asymm.setting(text) IS 'Effective value of one asymm setting; errors on an unknown name and on a stored value its rule refuses';

-- On upgrade: say which stored values the new rules refuse (asymm.setting() will refuse them).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT v.name, v.value, asymm.setting_check(v.name, v.value) AS allowed
               FROM asymm.setting_values v ORDER BY v.name LOOP
        IF r.allowed IS NOT NULL THEN
            RAISE WARNING 'asymm setting "%" holds %, which is no longer allowed', r.name, quote_literal(r.value)
                  USING HINT = format('%s takes %s: SELECT asymm.set_setting(%L, ...) or asymm.reset_setting(%L).',
                                      r.name, r.allowed, r.name, r.name);
        END IF;
    END LOOP;
END
$$;
