\echo Use "CREATE EXTENSION asymm" to load this file. \quit

-- ===== sql/01_status.sql =====
-- asymm: since 0.2.0
-- asymm.status(), which 0.1.0 created, now also says which daemon leads.  CREATE OR REPLACE: the
-- same file creates it on install and redefines it on upgrade from 0.1.0.
--
-- The leader is whoever holds the leader lock now: pg_locks is the truth, a heartbeat is up to a
-- second old.  A lock is held by a backend, not by a daemon, so each daemon records the backend pid
-- of its lock session on every heartbeat (asymm.daemon.service), and the two are matched here.

ALTER TABLE asymm.daemons ADD COLUMN lock_backend_pid integer;
COMMENT ON COLUMN asymm.daemons.lock_backend_pid IS 'Backend pid of the daemon''s leader-lock session, set on every heartbeat: asymm.status() matches it with the holder of the leader lock';

CREATE OR REPLACE FUNCTION asymm.status() RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    preload text := current_setting('shared_preload_libraries', true);
    stale interval := asymm.setting('daemon.stale_after')::interval;
    daemons jsonb;
    holder integer;
BEGIN
    -- The key is asymm.daemon.leader.LEADER_LOCK_KEY (b'asymmLDR' as a bigint).
    SELECT l.pid INTO holder
      FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND ((l.classid::bigint << 32) | l.objid::bigint) = 7022089754892846162;
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'daemon_id', d.daemon_id, 'host', d.host, 'pid', d.pid, 'version', d.version,
               'started_at', d.started_at, 'last_seen', d.last_seen,
               'ticks', d.ticks, 'skipped_ticks', d.skipped_ticks, 'overruns', d.overruns,
               'leader', coalesce(d.lock_backend_pid = holder, false))
               ORDER BY d.started_at), '[]'::jsonb)
      INTO daemons
      FROM asymm.daemons d
     WHERE d.stopped_at IS NULL AND d.last_seen > now() - stale;
    RETURN jsonb_build_object(
        'version', asymm.version(),
        'server_version', current_setting('server_version'),
        'plpython', asymm.plpython_version(),
        'pg_stat_statements_loaded',
            coalesce(preload ~ '(^|[\s,])"?pg_stat_statements"?($|[\s,])', false),
        'hypopg_available',
            EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'),
        'hypopg_installed',
            EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg'),
        'settings_changed', (SELECT count(*) FROM asymm.setting_values),
        'daemons', daemons,
        -- null when no daemon leads; daemon_id null when the lock holder is not a registered
        -- daemon (one older than 0.2.0, or a session that took the lock by hand).
        'leader', CASE WHEN holder IS NOT NULL THEN jsonb_build_object(
            'backend_pid', holder,
            'daemon_id', (SELECT d.daemon_id FROM asymm.daemons d
                           WHERE d.lock_backend_pid = holder AND d.stopped_at IS NULL
                           ORDER BY d.last_seen DESC LIMIT 1)) END);
END
$$;
COMMENT ON FUNCTION asymm.status() IS 'What asymm sees: versions, required libraries, optional extensions, live daemons and which one leads (read-only)';

-- ===== sql/02_messages.sql =====
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

-- ===== sql/02_settings.sql =====
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

-- ===== sql/10_annotations.sql =====
-- asymm: since 0.2.0
-- Annotations (SPEC section 2): the σ ρ γ κ λ catalog, its validation, addressing and lifecycle.
--
-- Keying.  An annotation is keyed by the portable address of its target, the triple that
-- pg_identify_object_as_address() returns (type, names, args), never by an OID or a regclass
-- column: OIDs change across dump/restore and pg_upgrade, and reg* columns in a config table break
-- both.  Query annotations are keyed by a fingerprint of the normalized query text (see
-- asymm.query_fingerprint()).  The OID of a target is kept only as a cache
-- (asymm.annotation_target_cache), which is not dumped: it lets annotations follow renames inside
-- one database, and is rebuilt from the address in a restored one.

CREATE TYPE asymm.annotation_tuple AS (
    symbol     text,
    scope      text,
    regime     text,
    cost       text,
    lineage    text[],
    source     text,
    confidence double precision,
    evidence   integer
);
COMMENT ON TYPE asymm.annotation_tuple IS 'One annotation as a value: σ symbol, ρ scope, γ regime, κ cost, λ lineage, plus source, confidence and evidence (argument and result of amplify/harmonize/resolve)';

CREATE TABLE asymm.annotation_entries (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    target_type   text NOT NULL,
    target_names  text[] NOT NULL,
    target_args   text[] NOT NULL DEFAULT '{}',
    query_text    text,
    symbol        text NOT NULL,
    scope         text NOT NULL,
    regime        text NOT NULL,
    cost          text NOT NULL,
    lineage       text[] NOT NULL DEFAULT '{}',
    source        text NOT NULL DEFAULT 'user',
    confidence    double precision NOT NULL DEFAULT 1,
    evidence      integer NOT NULL DEFAULT 1,
    derived_from  uuid,  -- the annotation a propagated one was copied from (no FK: pg_dump warns on self-references)
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT annotation_entries_target_key
        UNIQUE NULLS NOT DISTINCT (target_type, target_names, target_args, source, derived_from)
);
COMMENT ON TABLE asymm.annotation_entries IS 'Every annotation (user, propagated, inferred), keyed by the portable address of its target; kept by pg_dump';
SELECT pg_catalog.pg_extension_config_dump('asymm.annotation_entries', '');

-- A propagated annotation goes with the annotation it was copied from.
CREATE FUNCTION asymm._annotation_forget_copies() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM asymm.annotation_entries WHERE derived_from = OLD.id;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION asymm._annotation_forget_copies() IS 'Trigger: deleting an annotation deletes the annotations propagated from it; internal';

CREATE TRIGGER annotation_entries_forget_copies
AFTER DELETE ON asymm.annotation_entries
FOR EACH ROW EXECUTE FUNCTION asymm._annotation_forget_copies();

CREATE TABLE asymm.annotation_target_cache (
    entry_id  uuid PRIMARY KEY REFERENCES asymm.annotation_entries (id) ON DELETE CASCADE,
    classid   oid NOT NULL,
    objid     oid NOT NULL,
    objsubid  integer NOT NULL
);
COMMENT ON TABLE asymm.annotation_target_cache IS 'OID of each annotation target in this database: a cache re-resolved from the address, never dumped';

CREATE TABLE asymm.annotation_conflicts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_type  text NOT NULL,
    target_names text[] NOT NULL,
    target_args  text[] NOT NULL,
    winner_id    uuid,
    loser_id     uuid,
    winner       asymm.annotation_tuple NOT NULL,
    loser        asymm.annotation_tuple NOT NULL,
    fields       text[] NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE asymm.annotation_conflicts IS 'Conflicts found by asymm.harmonize(): which annotation won, which lost, and on which fields';

INSERT INTO asymm.setting_defaults (name, default_value, value_type, min_value, max_value, allowed_values, pattern, description) VALUES
    ('annotations.tiny_table_rows', '1000', 'integer', '0', '2147483647', NULL, NULL, 'Tables with fewer rows than this may be scanned sequentially: such a plan makes a κ claim not evaluable, not incoherent'),
    ('annotations.infer_min_calls', '2', 'integer', '1', '2147483647', NULL, NULL, 'asymm.infer() annotates queries called at least this often'),
    ('annotations.infer_max_queries', '50', 'integer', '1', '100000', NULL, NULL, 'asymm.infer() annotates at most this many of the most frequent queries per run'),
    ('annotations.propagation_decay', '0.9', 'number', '0', '1', NULL, NULL, 'Confidence of a propagated annotation = confidence of its origin times this factor'),
    ('annotations.inferred_confidence', '0.3', 'number', '0', '1', NULL, NULL, 'Confidence one observation gives an inferred annotation (repeated observations are amplified)');

-- ---------------------------------------------------------------------------------------------
-- Vocabulary.  One place lists the accepted values; the validation trigger and the errors use it.

CREATE FUNCTION asymm.annotation_vocabulary() RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT jsonb_build_object(
    'scope', jsonb_build_array('local', 'schema', 'global'),
    'regime', jsonb_build_array('Exploration', 'Optimization', 'Stabilization', 'Balance'),
    'cost', jsonb_build_array('O(1)', 'O(log n)', 'O(n)', 'O(n log n)', 'O(n^2)'),
    'source', jsonb_build_array('inferred', 'propagated', 'user'),
    'target_type', jsonb_build_array('table', 'view', 'materialized view', 'foreign table', 'index',
                                     'table column', 'view column', 'materialized view column',
                                     'foreign table column', 'function', 'procedure', 'query'))
$$;
COMMENT ON FUNCTION asymm.annotation_vocabulary() IS 'Accepted values of every enumerated annotation field; scope, cost and source are listed in their order (weakest first)';

-- Rank of a value inside its ordered list (scope, cost, source); NULL if unknown.
CREATE FUNCTION asymm._annotation_rank(field text, value text) RETURNS integer
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT (SELECT o::integer FROM jsonb_array_elements_text(asymm.annotation_vocabulary() -> field)
                              WITH ORDINALITY AS v(val, o) WHERE v.val = value)
$$;
COMMENT ON FUNCTION asymm._annotation_rank(text, text) IS 'Position of a scope, cost class or source in its order (1 = weakest); internal';

-- ---------------------------------------------------------------------------------------------
-- Validation: PL/Python, because the checks are easiest to read as Python and the messages must
-- name the field and the accepted values.

CREATE FUNCTION asymm._annotation_problem(entry jsonb) RETURNS text[]
LANGUAGE plpython3u IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
import json, math, re
def shown(value):
    # a value for a message: repr (one line), at most 60 characters
    text = repr(value)
    return text if len(text) <= 60 else "%s... (%d characters)" % (text[:60], len(text))
if entry is None:
    return ["entry", "annotation entry must not be NULL", "Pass the row as a jsonb object (asymm._annotation_validate does)."]
try:
    e = json.loads(entry)
except RecursionError:
    return ["entry", "annotation entry is nested too deeply", "Pass the row as a jsonb object (asymm._annotation_validate does)."]
if not isinstance(e, dict):
    return ["entry", "an annotation entry must be a jsonb object, not %s" % shown(e),
            "Pass the row as a jsonb object (asymm._annotation_validate does)."]
vocab = {
    "scope": ["local", "schema", "global"],
    "regime": ["Exploration", "Optimization", "Stabilization", "Balance"],
    "cost": ["O(1)", "O(log n)", "O(n)", "O(n log n)", "O(n^2)"],
    "source": ["inferred", "propagated", "user"],
    "target_type": ["table", "view", "materialized view", "foreign table", "index", "table column",
                    "view column", "materialized view column", "foreign table column", "function",
                    "procedure", "query"],
}
def bad(field, message, hint):
    return [field, message, hint]
symbol = e.get("symbol")
if symbol is None or not isinstance(symbol, str) or symbol.strip() == "":
    return bad("symbol", "annotation field symbol (σ) must not be empty",
               "A symbol is an identifier-like name such as dataEntity: a letter or _ then letters, digits or _ (at most 63).")
if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", symbol):
    return bad("symbol", "invalid annotation field symbol (σ) %s" % shown(symbol),
               "A symbol is an identifier-like name such as dataEntity: a letter or _ then letters, digits or _ (at most 63).")
for field, greek in (("scope", "ρ"), ("regime", "γ"), ("cost", "κ"), ("source", "")):
    value = e.get(field)
    if value not in vocab[field]:
        label = "%s (%s)" % (field, greek) if greek else field
        return bad(field, "invalid annotation field %s %s" % (label, "NULL" if value is None else shown(value)),
                   "Accepted values for %s: %s." % (field, ", ".join(vocab[field])))
lineage = e.get("lineage")
if lineage is None:
    return bad("lineage", "annotation field lineage (λ) must not be NULL",
               "lineage is an array of lowercase operation words such as {create,query}; use '{}' for none.")
if not isinstance(lineage, list) or any(isinstance(word, list) for word in lineage):
    return bad("lineage", "annotation field lineage (λ) must be a one-dimensional array",
               "lineage is an array of lowercase operation words such as {create,query}; use '{}' for none.")
seen = set()
for word in lineage:
    if not isinstance(word, str) or not re.fullmatch(r"[a-z][a-z_]{0,62}", word):
        return bad("lineage", "invalid annotation field lineage (λ): %s is not a lowercase operation word"
                   % ("NULL" if word is None else shown(word)),
                   "lineage is an ordered list of distinct lowercase words (a-z and _), such as {create,query,sync,cache,optimize,update,delete}.")
    if word in seen:
        return bad("lineage", "invalid annotation field lineage (λ): %s appears twice" % shown(word),
                   "lineage is an ordered list of distinct lowercase words (a-z and _), such as {create,query,sync,cache,optimize,update,delete}.")
    seen.add(word)
confidence = e.get("confidence")
if confidence is None or not isinstance(confidence, (int, float)) or math.isnan(confidence) or not 0 <= confidence <= 1:
    return bad("confidence", "invalid annotation field confidence %s" % shown(confidence),
               "confidence is a number between 0 and 1.")
evidence = e.get("evidence")
if not isinstance(evidence, int) or isinstance(evidence, bool) or evidence < 1:
    return bad("evidence", "invalid annotation field evidence %s" % shown(evidence), "evidence counts observations: 1 or more.")
ttype = e.get("target_type")
if ttype not in vocab["target_type"]:
    return bad("target_type", "invalid annotation target type %s" % shown(ttype),
               "Accepted target types: %s." % ", ".join(vocab["target_type"]))
names = e.get("target_names")
if not isinstance(names, list) or not names or any(not isinstance(n, str) or n == "" for n in names):
    return bad("target", "annotation target address has no names", "Annotate an existing object through asymm.annotate().")
if (e.get("source") == "propagated") != (e.get("derived_from") is not None):
    return bad("derived_from", "a propagated annotation (and only one) must name the annotation it was derived from",
               "Propagated annotations are made by asymm.propagate().")
return None
$$;
COMMENT ON FUNCTION asymm._annotation_problem(jsonb) IS 'What is wrong with an annotation row, as {field, message, hint}, or NULL when it is valid (PL/Python); internal';

-- The trigger itself is PL/pgSQL only to raise: an error raised from PL/Python reaches the client
-- as "plpy.Error: ...", and the message must read as the field and its accepted values.
CREATE FUNCTION asymm._annotation_validate() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    problem text[];
BEGIN
    problem := asymm._annotation_problem(jsonb_build_object(
        'symbol', NEW.symbol, 'scope', NEW.scope, 'regime', NEW.regime, 'cost', NEW.cost, 'lineage', NEW.lineage,
        'source', NEW.source, 'confidence', NEW.confidence, 'evidence', NEW.evidence,
        'target_type', NEW.target_type, 'target_names', NEW.target_names, 'derived_from', NEW.derived_from));
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%', problem[2]
              USING ERRCODE = 'invalid_parameter_value', DETAIL = 'field: ' || problem[1], HINT = problem[3];
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION asymm._annotation_validate() IS 'Trigger: rejects an invalid annotation row (checks in PL/Python, asymm._annotation_problem) with an error naming the field and the accepted values';

CREATE TRIGGER annotation_entries_validate
BEFORE INSERT OR UPDATE ON asymm.annotation_entries
FOR EACH ROW EXECUTE FUNCTION asymm._annotation_validate();

-- ---------------------------------------------------------------------------------------------
-- Addresses.

-- Whether an address type names a relation (or a column of one) with this relkind.
CREATE FUNCTION asymm._relkind_matches(target_type text, relkind "char") RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE regexp_replace(target_type, ' column$', '')
           WHEN 'table' THEN relkind IN ('r', 'p')
           WHEN 'view' THEN relkind = 'v'
           WHEN 'materialized view' THEN relkind = 'm'
           WHEN 'foreign table' THEN relkind = 'f'
           WHEN 'index' THEN relkind IN ('i', 'I') AND target_type = 'index'
           ELSE false END
$$;
COMMENT ON FUNCTION asymm._relkind_matches(text, "char") IS 'Whether a relation kind fits an address type (table, view, index, ... or a column of one); internal';

-- The object an address names in this database, without raising: NULL when it does not exist.
CREATE FUNCTION asymm._address_object(target_type text, target_names text[], target_args text[],
                                      OUT classid oid, OUT objid oid, OUT objsubid integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel oid;
BEGIN
    IF target_type IN ('function', 'procedure') THEN
        IF cardinality(target_names) <> 2 THEN RETURN; END IF;
        objid := to_regprocedure(format('%I.%I(%s)', target_names[1], target_names[2],
                                        array_to_string(target_args, ',')));
        IF objid IS NOT NULL AND EXISTS (SELECT 1 FROM pg_proc p WHERE p.oid = objid
                                           AND p.prokind = CASE target_type WHEN 'function' THEN 'f' ELSE 'p' END) THEN
            classid := 'pg_proc'::regclass; objsubid := 0;
        ELSE
            objid := NULL;
        END IF;
        RETURN;
    END IF;
    IF target_type = 'query' OR cardinality(target_names) < 2 THEN RETURN; END IF;
    SELECT c.oid INTO rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = target_names[1] AND c.relname = target_names[2]
       AND asymm._relkind_matches(target_type, c.relkind);
    IF rel IS NULL THEN RETURN; END IF;
    IF target_type LIKE '% column' THEN
        IF cardinality(target_names) <> 3 THEN RETURN; END IF;
        SELECT a.attnum INTO objsubid FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attname = target_names[3] AND a.attnum > 0 AND NOT a.attisdropped;
        IF objsubid IS NULL THEN RETURN; END IF;
    ELSE
        IF cardinality(target_names) <> 2 THEN RETURN; END IF;
        objsubid := 0;
    END IF;
    classid := 'pg_class'::regclass;
    objid := rel;
END
$$;
COMMENT ON FUNCTION asymm._address_object(text, text[], text[]) IS 'Resolve a portable address to (classid, objid, objsubid), or NULLs when the object is missing (never raises); internal';

-- Whether a cached OID still denotes an object of the address's type.
CREATE FUNCTION asymm._cache_valid(target_type text, classid oid, objid oid, objsubid integer) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE
    WHEN classid = 'pg_proc'::regclass THEN
        EXISTS (SELECT 1 FROM pg_proc p WHERE p.oid = objid
                   AND p.prokind = CASE target_type WHEN 'function' THEN 'f' WHEN 'procedure' THEN 'p' END)
    WHEN classid = 'pg_class'::regclass THEN
        EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = objid AND asymm._relkind_matches(target_type, c.relkind))
        AND (objsubid = 0) = (target_type NOT LIKE '% column')
        AND (objsubid = 0 OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = objid
                                       AND a.attnum = objsubid AND NOT a.attisdropped))
    ELSE false END
$$;
COMMENT ON FUNCTION asymm._cache_valid(text, oid, oid, integer) IS 'Whether a cached OID still names an object of the annotated kind; internal';

-- Where an annotation's target is now: the cache if still valid (follows renames), else the address.
CREATE FUNCTION asymm._locate(entry_id uuid, target_type text, target_names text[], target_args text[],
                              OUT classid oid, OUT objid oid, OUT objsubid integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT c.classid, c.objid, c.objsubid INTO classid, objid, objsubid
      FROM asymm.annotation_target_cache c WHERE c.entry_id = _locate.entry_id;
    IF FOUND AND asymm._cache_valid(target_type, classid, objid, objsubid) THEN
        RETURN;
    END IF;
    SELECT a.classid, a.objid, a.objsubid INTO classid, objid, objsubid
      FROM asymm._address_object(target_type, target_names, target_args) a;
END
$$;
COMMENT ON FUNCTION asymm._locate(uuid, text, text[], text[]) IS 'Current (classid, objid, objsubid) of an annotation target, or NULLs if it is missing (unresolved); internal';

-- A readable name for an object or, when missing, for its address.
CREATE FUNCTION asymm._target_label(target_type text, target_names text[], target_args text[],
                                    classid oid, objid oid, objsubid integer) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE
    WHEN target_type = 'query' THEN 'query ' || target_names[1]
    WHEN objid IS NULL THEN
        array_to_string(ARRAY(SELECT quote_ident(n) FROM unnest(target_names) n), '.')
        || CASE WHEN target_type IN ('function', 'procedure')
                THEN '(' || array_to_string(target_args, ', ') || ')' ELSE '' END
    WHEN classid = 'pg_proc'::regclass THEN objid::regprocedure::text
    WHEN objsubid > 0 THEN objid::regclass::text || '.'
        || quote_ident((SELECT attname FROM pg_attribute WHERE attrelid = objid AND attnum = objsubid))
    ELSE objid::regclass::text END
$$;
COMMENT ON FUNCTION asymm._target_label(text, text[], text[], oid, oid, integer) IS 'Readable name of an annotation target (its address when the target is missing); internal';

-- Fill the OID cache of new or re-addressed entries when their target exists.  During a restore
-- the rows arrive before post-data objects (indexes); those are resolved at their CREATE.
CREATE FUNCTION asymm._annotation_cache_fill() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found_classid oid; found_objid oid; found_objsubid integer;
BEGIN
    IF NEW.target_type = 'query' THEN
        RETURN NULL;
    END IF;
    SELECT a.classid, a.objid, a.objsubid INTO found_classid, found_objid, found_objsubid
      FROM asymm._address_object(NEW.target_type, NEW.target_names, NEW.target_args) a;
    IF found_objid IS NOT NULL THEN
        INSERT INTO asymm.annotation_target_cache (entry_id, classid, objid, objsubid)
        VALUES (NEW.id, found_classid, found_objid, found_objsubid)
        ON CONFLICT (entry_id) DO UPDATE SET classid = excluded.classid, objid = excluded.objid,
                                             objsubid = excluded.objsubid;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION asymm._annotation_cache_fill() IS 'Trigger: caches the OID of a new annotation target when it exists; internal';

CREATE TRIGGER annotation_entries_cache
AFTER INSERT OR UPDATE OF target_type, target_names, target_args ON asymm.annotation_entries
FOR EACH ROW EXECUTE FUNCTION asymm._annotation_cache_fill();

-- ---------------------------------------------------------------------------------------------
-- Query fingerprints.  pglast (libpg_query) is not available inside the server, so the server
-- computes its own deterministic fingerprint of the normalized text; the control package has the
-- same algorithm (asymm.annotations.fingerprint) and a test keeps the two identical.
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
AS $$
import re
TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<line_comment>--[^\n]*)
  | (?P<block_comment>/\*)
  | (?P<estring>[eE]'(?:[^'\\]|\\.|'')*')
  | (?P<prefixed>[bBxXnN]'(?:[^']|'')*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)?\$)
  | (?P<param>\$[0-9]+)
  | (?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<qident>"(?:[^"]|"")*")
  | (?P<ident>[A-Za-z_\x80-\uffff][A-Za-z_0-9$\x80-\uffff]*)
  | (?P<op>[-+*/<>=~!@#%^&|`?]+)
  | (?P<punct>::|[(),;\[\].:])
  | (?P<other>.)
""", re.X | re.S)
PLAIN = re.compile(r"[a-z_][a-z_0-9$]*")
tokens = []
pos, end = 0, len(query)
while pos < end:
    m = TOKEN.match(query, pos)
    kind = m.lastgroup if m.lastgroup != "tag" else "dollar"
    if m.group("dollar") is not None:
        kind = "dollar"
    text = m.group(0)
    pos = m.end()
    if kind in ("ws", "line_comment"):
        continue
    if kind == "block_comment":
        depth = 1
        while pos < end and depth:
            if query.startswith("/*", pos):
                depth += 1; pos += 2
            elif query.startswith("*/", pos):
                depth -= 1; pos += 2
            else:
                pos += 1
        continue
    if kind == "dollar":
        close = query.find(text, pos)
        pos = end if close < 0 else close + len(text)
        tokens.append("?")
    elif kind in ("estring", "prefixed", "string", "param", "number"):
        tokens.append("?")
    elif kind == "qident":
        inner = text[1:-1].replace('""', '"')
        tokens.append(inner if PLAIN.fullmatch(inner) else text)
    elif kind == "ident":
        tokens.append(text.lower())
    else:
        tokens.append(text)
out = []
for tok in tokens:
    out.append(tok)
    # collapse "( ? , ? , ... )" and "[ ? , ... ]" into "( ? )"
    while (len(out) >= 4 and out[-1] in (")", "]") and out[-2] == "?" and out[-3] == ","
           and out[-4] == "?"):
        del out[-3:-1]
while out and out[-1] == ";":
    out.pop()
return " ".join(out)
$$;
COMMENT ON FUNCTION asymm.normalize_query(text) IS 'Normalized query text: constants and $n become ?, comments and case of keywords/identifiers are dropped (asymm fingerprint v1, PL/Python)';

CREATE FUNCTION asymm.query_fingerprint(query text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT left(encode(sha256(convert_to(asymm.normalize_query(query), 'UTF8')), 'hex'), 16) $$;
COMMENT ON FUNCTION asymm.query_fingerprint(text) IS 'Fingerprint of a query: first 16 hex digits of SHA-256 of asymm.normalize_query(); stable across queryid changes';

-- ===== sql/11_annotations_ops.sql =====
-- asymm: since 0.2.0
-- Annotations: the SQL API (annotate, the view, ⊕ amplify, ⊗ harmonize, ▷ propagate, ⊣ resolve)
-- and the lifecycle event triggers (renames and moves, DROP).

-- Write one annotation for an object given by OID.  Every public annotate() ends here.
CREATE FUNCTION asymm._annotate_object(classid oid, objid oid, objsubid integer,
                                       symbol text, scope text, regime text, cost text, lineage text[],
                                       source text DEFAULT 'user', confidence double precision DEFAULT 1,
                                       derived_from uuid DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    addr record;
    result uuid;
BEGIN
    -- pg_identify_object_as_address() fails with an internal error on a class it does not know,
    -- and names system columns (objsubid < 0): only relations, columns and functions are targets.
    IF classid IS NULL OR classid NOT IN ('pg_class'::regclass, 'pg_proc'::regclass)
       OR objsubid IS NULL OR objsubid < 0 OR (classid = 'pg_proc'::regclass AND objsubid <> 0) THEN
        RAISE EXCEPTION 'invalid annotation target (classid %, objid %, objsubid %)',
                        coalesce(classid::text, 'NULL'), coalesce(objid::text, 'NULL'), coalesce(objsubid::text, 'NULL')
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'A target is a relation or one of its columns (pg_class, objsubid >= 0) or a function (pg_proc, objsubid 0).';
    END IF;
    SELECT * INTO addr FROM pg_identify_object_as_address(classid, objid, objsubid);
    IF addr.object_names IS NULL THEN
        RAISE EXCEPTION 'annotation target does not exist'
              USING ERRCODE = 'undefined_object', HINT = 'Annotate an existing table, view, column, index, function or query.';
    END IF;
    IF addr.type NOT IN (SELECT jsonb_array_elements_text(asymm.annotation_vocabulary() -> 'target_type')) THEN
        RAISE EXCEPTION 'cannot annotate a % (%)', addr.type, pg_describe_object(classid, objid, objsubid)
              USING ERRCODE = 'wrong_object_type',
                    HINT = 'Accepted targets: ' || (SELECT string_agg(t, ', ') FROM jsonb_array_elements_text(
                              asymm.annotation_vocabulary() -> 'target_type') t) || '.';
    END IF;
    INSERT INTO asymm.annotation_entries AS e
           (target_type, target_names, target_args, symbol, scope, regime, cost, lineage, source, confidence, derived_from)
    VALUES (addr.type, addr.object_names, addr.object_args, symbol, scope, regime, cost, lineage, source,
            confidence, derived_from)
    ON CONFLICT ON CONSTRAINT annotation_entries_target_key DO UPDATE
       SET symbol = excluded.symbol, scope = excluded.scope, regime = excluded.regime, cost = excluded.cost,
           lineage = excluded.lineage,
           confidence = CASE WHEN e.source = 'inferred' THEN 1 - (1 - e.confidence) * (1 - excluded.confidence)
                             ELSE excluded.confidence END, updated_at = clock_timestamp(),
           evidence = CASE WHEN e.source = 'user' THEN e.evidence ELSE e.evidence + 1 END
    RETURNING e.id INTO result;
    INSERT INTO asymm.annotation_target_cache (entry_id, classid, objid, objsubid)
    VALUES (result, _annotate_object.classid, _annotate_object.objid, _annotate_object.objsubid)
    ON CONFLICT (entry_id) DO UPDATE SET classid = excluded.classid, objid = excluded.objid, objsubid = excluded.objsubid;
    RETURN result;
END
$$;
COMMENT ON FUNCTION asymm._annotate_object(oid, oid, integer, text, text, text, text, text[], text, double precision, uuid) IS 'Insert or replace one annotation of an object given by OID, keyed by its portable address; internal';

CREATE FUNCTION asymm.annotate(target regclass, symbol text, scope text, regime text, cost text, lineage text[])
RETURNS uuid
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT asymm._annotate_object('pg_class'::regclass, target, 0, symbol, scope, regime, cost, lineage) $$;
COMMENT ON FUNCTION asymm.annotate(regclass, text, text, text, text, text[]) IS 'Annotate a table, view, materialized view, foreign table or index with σ ρ γ κ λ; returns the annotation id';

CREATE FUNCTION asymm.annotate(target regclass, column_name text, symbol text, scope text, regime text, cost text,
                               lineage text[])
RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    att smallint;
BEGIN
    SELECT attnum INTO att FROM pg_attribute
     WHERE attrelid = target AND attname = column_name AND attnum > 0 AND NOT attisdropped;
    IF att IS NULL THEN
        RAISE EXCEPTION 'invalid annotation field column: % has no column %', target, asymm._shown(column_name, '''')
              USING ERRCODE = 'undefined_column',
                    HINT = 'Accepted values for column: ' || coalesce((SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
                              FROM pg_attribute WHERE attrelid = target AND attnum > 0 AND NOT attisdropped), '(none)') || '.';
    END IF;
    RETURN asymm._annotate_object('pg_class'::regclass, target, att, symbol, scope, regime, cost, lineage);
END
$$;
COMMENT ON FUNCTION asymm.annotate(regclass, text, text, text, text, text, text[]) IS 'Annotate one column of a table or view with σ ρ γ κ λ; returns the annotation id';

CREATE FUNCTION asymm.annotate(target regprocedure, symbol text, scope text, regime text, cost text, lineage text[])
RETURNS uuid
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT asymm._annotate_object('pg_proc'::regclass, target, 0, symbol, scope, regime, cost, lineage) $$;
COMMENT ON FUNCTION asymm.annotate(regprocedure, text, text, text, text, text[]) IS 'Annotate a function or procedure with σ ρ γ κ λ; returns the annotation id';

CREATE FUNCTION asymm.annotate_query(query text, symbol text, scope text, regime text, cost text, lineage text[],
                                     source text DEFAULT 'user', confidence double precision DEFAULT 1)
RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fp text;
    result uuid;
BEGIN
    IF query IS NULL OR asymm.normalize_query(query) = '' THEN
        RAISE EXCEPTION 'invalid annotation field query: the query text is empty'
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Give the text of one SQL statement (constants or $n parameters).';
    END IF;
    fp := asymm.query_fingerprint(query);
    INSERT INTO asymm.annotation_entries AS e
           (target_type, target_names, target_args, query_text, symbol, scope, regime, cost, lineage, source, confidence)
    VALUES ('query', ARRAY[fp], '{}', query, symbol, scope, regime, cost, lineage, source, confidence)
    ON CONFLICT ON CONSTRAINT annotation_entries_target_key DO UPDATE
       SET symbol = excluded.symbol, scope = excluded.scope, regime = excluded.regime, cost = excluded.cost,
           lineage = excluded.lineage,
           confidence = CASE WHEN e.source = 'inferred' THEN 1 - (1 - e.confidence) * (1 - excluded.confidence)
                             ELSE excluded.confidence END, query_text = excluded.query_text,
           updated_at = clock_timestamp(),
           evidence = CASE WHEN e.source = 'user' THEN e.evidence ELSE e.evidence + 1 END
    RETURNING e.id INTO result;
    RETURN result;
END
$$;
COMMENT ON FUNCTION asymm.annotate_query(text, text, text, text, text, text[], text, double precision) IS 'Annotate a normalized query given by its text (keyed by asymm.query_fingerprint()); returns the annotation id';

CREATE FUNCTION asymm.annotate(queryid bigint, symbol text, scope text, regime text, cost text, lineage text[])
RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    text_of text;
BEGIN
    SELECT s.query INTO text_of FROM asymm._pgss_queries() s WHERE s.queryid = annotate.queryid LIMIT 1;
    IF text_of IS NULL THEN
        RAISE EXCEPTION 'invalid annotation field queryid: % is not in pg_stat_statements', coalesce(queryid::text, 'NULL')
              USING ERRCODE = 'undefined_object',
                    HINT = 'Accepted values for queryid: SELECT queryid FROM pg_stat_statements; or use asymm.annotate_query(query text, ...).';
    END IF;
    RETURN asymm.annotate_query(text_of, symbol, scope, regime, cost, lineage);
END
$$;
COMMENT ON FUNCTION asymm.annotate(bigint, text, text, text, text, text[]) IS 'Annotate a normalized query by its pg_stat_statements queryid (stored under the fingerprint of its text); returns the annotation id';

-- A name given as text (a relation, or a function name or signature) is looked up the way the
-- caller would look it up: with the caller's search_path.  A function pinned to pg_catalog cannot
-- see its caller's path, so the public text overloads are thin SQL wrappers, not pinned, whose
-- bodies name nothing unqualified (nothing in them can be shadowed) and pass
-- pg_catalog.current_setting('search_path') down; only the lookups themselves (schema-qualified
-- calls, nothing else to resolve) run under that path.
CREATE FUNCTION asymm._session_lookup(target text, caller_path text, OUT classid oid, OUT objid oid)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    BEGIN
        PERFORM pg_catalog.set_config('search_path', caller_path, true);
    EXCEPTION WHEN invalid_parameter_value OR null_value_not_allowed THEN
        RAISE EXCEPTION 'invalid search_path %', asymm._shown(caller_path)
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Pass the caller''s pg_catalog.current_setting(''search_path'').';
    END;
    -- (to_reg*() raise on what is not a name at all, "a.b.c.d" or text with a newline, and on an
    -- ambiguous function name: none of them names one target)
    BEGIN
        objid := pg_catalog.to_regclass(target);
        classid := 1259;  -- pg_catalog.pg_class
        IF objid IS NULL AND pg_catalog.strpos(target, '(') OPERATOR(pg_catalog.>) 0 THEN
            objid := pg_catalog.to_regprocedure(target); classid := 1255;  -- pg_catalog.pg_proc
        ELSIF objid IS NULL THEN
            objid := pg_catalog.to_regproc(target); classid := 1255;
        END IF;
    EXCEPTION WHEN others THEN objid := NULL;
    END;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
END
$$;
COMMENT ON FUNCTION asymm._session_lookup(text, text) IS 'Look up a relation or function name given as text with the caller''s search_path; NULL objid when there is none; internal';

-- The target of a text argument: a relation name, a function signature, or "query <fingerprint>".
CREATE FUNCTION asymm._parse_target(target text, caller_path text, OUT target_type text, OUT target_names text[], OUT target_args text[],
                                    OUT classid oid, OUT objid oid, OUT objsubid integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    addr record;
BEGIN
    IF target ~ '^query [0-9a-f]{16}$' THEN
        target_type := 'query'; target_names := ARRAY[substr(target, 7)]; target_args := '{}';
        RETURN;
    END IF;
    SELECT l.classid, l.objid INTO classid, objid FROM asymm._session_lookup(target, caller_path) l;
    IF objid IS NULL THEN
        RAISE EXCEPTION 'invalid annotation field target: % does not exist', asymm._shown(target, '''')
              USING ERRCODE = 'undefined_object',
                    HINT = 'Accepted targets: a table, view, materialized view, foreign table or index name, a function signature f(argtypes), or ''query <fingerprint>''.';
    END IF;
    objsubid := 0;
    SELECT * INTO addr FROM pg_identify_object_as_address(classid, objid, 0);
    target_type := addr.type; target_names := addr.object_names; target_args := addr.object_args;
END
$$;
COMMENT ON FUNCTION asymm._parse_target(text, text) IS 'Resolve a target given as text (relation, function signature or ''query <fingerprint>'') to its address; internal';

CREATE FUNCTION asymm._annotate_text(target text, symbol text, scope text, regime text, cost text, lineage text[],
                                     caller_path text)
RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
BEGIN
    SELECT * INTO t FROM asymm._parse_target(target, caller_path);
    IF t.target_type = 'query' THEN
        RAISE EXCEPTION 'invalid annotation field target: annotate a query by its text or queryid'
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Use asymm.annotate_query(query text, ...) or asymm.annotate(queryid bigint, ...).';
    END IF;
    RETURN asymm._annotate_object(t.classid, t.objid, t.objsubid, symbol, scope, regime, cost, lineage);
END
$$;
COMMENT ON FUNCTION asymm._annotate_text(text, text, text, text, text, text[], text) IS 'asymm.annotate() of a target named by text, looked up with the caller''s search_path; internal';

-- Not pinned, and immune: every name in it is schema-qualified (see asymm._session_lookup).
CREATE FUNCTION asymm.annotate(target text, symbol text, scope text, regime text, cost text, lineage text[])
RETURNS uuid
LANGUAGE sql VOLATILE
AS $$ SELECT asymm._annotate_text(target, symbol, scope, regime, cost, lineage,
                                  pg_catalog.current_setting('search_path')) $$;
COMMENT ON FUNCTION asymm.annotate(text, text, text, text, text, text[]) IS 'Annotate a target named by text (a relation, or a function signature f(argtypes)) with σ ρ γ κ λ; returns the annotation id';

-- ---------------------------------------------------------------------------------------------
-- The view.

CREATE VIEW asymm.annotations AS
SELECT e.id,
       asymm._target_label(e.target_type, e.target_names, e.target_args, l.classid, l.objid, l.objsubid) AS target,
       e.target_type,
       l.objid IS NOT NULL OR e.target_type = 'query' AS resolved,
       e.symbol, e.scope, e.regime, e.cost, e.lineage,
       e.source, e.confidence, e.evidence, e.derived_from,
       e.query_text,
       e.target_names, e.target_args,
       e.created_at, e.updated_at
  FROM asymm.annotation_entries e
  LEFT JOIN LATERAL asymm._locate(e.id, e.target_type, e.target_names, e.target_args) l ON true;
COMMENT ON VIEW asymm.annotations IS 'Every annotation with a readable target name; resolved = false when its target is missing (for example after a partial restore)';

CREATE VIEW asymm.unresolved_annotations AS
SELECT id, target, target_type, target_names, target_args, symbol, source, created_at
  FROM asymm.annotations WHERE NOT resolved;
COMMENT ON VIEW asymm.unresolved_annotations IS 'Annotations whose target does not exist in this database (partial restore, object not yet created); they are kept, not dropped';

-- ---------------------------------------------------------------------------------------------
-- ⊕ amplify: wider scope, worse cost class, union of lineage, confidence 1-(1-ca)(1-cb).
-- Symbol and regime come from the stronger operand (confidence, then source precedence, then a
-- deterministic order), which makes amplify commutative.

CREATE FUNCTION asymm.amplify(a asymm.annotation_tuple, b asymm.annotation_tuple) RETURNS asymm.annotation_tuple
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    strong asymm.annotation_tuple;
    weak asymm.annotation_tuple;
    result asymm.annotation_tuple;
BEGIN
    IF a IS NULL THEN RETURN b; END IF;
    IF b IS NULL THEN RETURN a; END IF;
    IF (a.confidence, asymm._annotation_rank('source', a.source), b.symbol, b.regime, b.lineage::text)
       >= (b.confidence, asymm._annotation_rank('source', b.source), a.symbol, a.regime, a.lineage::text) THEN
        strong := a; weak := b;
    ELSE
        strong := b; weak := a;
    END IF;
    result.symbol := strong.symbol;
    result.regime := strong.regime;
    result.scope := CASE WHEN asymm._annotation_rank('scope', a.scope) >= asymm._annotation_rank('scope', b.scope)
                         THEN a.scope ELSE b.scope END;
    result.cost := CASE WHEN asymm._annotation_rank('cost', a.cost) >= asymm._annotation_rank('cost', b.cost)
                        THEN a.cost ELSE b.cost END;
    result.lineage := coalesce(strong.lineage, '{}')
                      || ARRAY(SELECT w FROM unnest(weak.lineage) WITH ORDINALITY AS u(w, o)
                                WHERE w <> ALL (coalesce(strong.lineage, '{}')) ORDER BY o);
    result.source := CASE WHEN asymm._annotation_rank('source', a.source) >= asymm._annotation_rank('source', b.source)
                          THEN a.source ELSE b.source END;
    result.confidence := 1 - (1 - coalesce(a.confidence, 0)) * (1 - coalesce(b.confidence, 0));
    result.evidence := coalesce(a.evidence, 0) + coalesce(b.evidence, 0);
    RETURN result;
END
$$;
COMMENT ON FUNCTION asymm.amplify(asymm.annotation_tuple, asymm.annotation_tuple) IS '⊕: merge two annotations: wider scope, worse cost class, union of lineage, confidence 1-(1-ca)(1-cb), evidence summed (commutative, not idempotent)';

-- ---------------------------------------------------------------------------------------------
-- ⊗ harmonize and ⊣ resolve.  Targets are given by address internally; the public overloads
-- accept a relation, a column, a function, a queryid or a text name.

CREATE FUNCTION asymm._tuple(e asymm.annotation_entries) RETURNS asymm.annotation_tuple
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ROW(e.symbol, e.scope, e.regime, e.cost, e.lineage, e.source, e.confidence, e.evidence)::asymm.annotation_tuple $$;
COMMENT ON FUNCTION asymm._tuple(asymm.annotation_entries) IS 'An annotation row as an asymm.annotation_tuple; internal';

-- Entries of one target, best first: user > propagated > inferred, then the most recent.
CREATE FUNCTION asymm._ranked(target_type text, target_names text[], target_args text[])
RETURNS SETOF asymm.annotation_entries
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT e.* FROM asymm.annotation_entries e
 WHERE e.target_type = _ranked.target_type AND e.target_names = _ranked.target_names
   AND e.target_args = _ranked.target_args
 ORDER BY asymm._annotation_rank('source', e.source) DESC, e.updated_at DESC, e.id
$$;
COMMENT ON FUNCTION asymm._ranked(text, text[], text[]) IS 'Annotations of one target in precedence order (user > propagated > inferred, then recency); internal';

CREATE FUNCTION asymm._resolve_address(target_type text, target_names text[], target_args text[])
RETURNS asymm.annotation_tuple
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT asymm._tuple(r) FROM asymm._ranked(target_type, target_names, target_args) r LIMIT 1 $$;
COMMENT ON FUNCTION asymm._resolve_address(text, text[], text[]) IS 'Effective annotation of the target at an address; internal';

CREATE FUNCTION asymm._harmonize_address(target_type text, target_names text[], target_args text[])
RETURNS asymm.annotation_tuple
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    win_row asymm.annotation_entries;
    lose_row asymm.annotation_entries;
    differing text[];
    is_first boolean := true;
BEGIN
    FOR lose_row IN SELECT * FROM asymm._ranked(target_type, target_names, target_args) LOOP
        IF is_first THEN
            win_row := lose_row; is_first := false; CONTINUE;
        END IF;
        differing := ARRAY(SELECT f FROM (VALUES
                ('symbol', win_row.symbol IS DISTINCT FROM lose_row.symbol),
                ('scope', win_row.scope IS DISTINCT FROM lose_row.scope),
                ('regime', win_row.regime IS DISTINCT FROM lose_row.regime),
                ('cost', win_row.cost IS DISTINCT FROM lose_row.cost),
                ('lineage', win_row.lineage IS DISTINCT FROM lose_row.lineage)) AS d(f, differs) WHERE differs);
        IF cardinality(differing) > 0 AND NOT EXISTS (
               SELECT 1 FROM asymm.annotation_conflicts c
                WHERE c.winner_id = win_row.id AND c.loser_id = lose_row.id
                  AND c.winner = asymm._tuple(win_row) AND c.loser = asymm._tuple(lose_row)) THEN
            INSERT INTO asymm.annotation_conflicts (target_type, target_names, target_args, winner_id, loser_id,
                                                    winner, loser, fields)
            VALUES (target_type, target_names, target_args, win_row.id, lose_row.id,
                    asymm._tuple(win_row), asymm._tuple(lose_row), differing);
        END IF;
    END LOOP;
    IF is_first THEN
        RETURN NULL;
    END IF;
    RETURN asymm._tuple(win_row);
END
$$;
COMMENT ON FUNCTION asymm._harmonize_address(text, text[], text[]) IS 'Harmonize the annotations of the target at an address and log their conflicts; internal';

-- Address of an object given by OID (columns by name).
CREATE FUNCTION asymm._address_of(classid oid, objid oid, objsubid integer,
                                  OUT target_type text, OUT target_names text[], OUT target_args text[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF classid IS NULL OR classid NOT IN ('pg_class'::regclass, 'pg_proc'::regclass)
       OR objsubid IS NULL OR objsubid < 0 OR (classid = 'pg_proc'::regclass AND objsubid <> 0) THEN
        RAISE EXCEPTION 'invalid annotation field target: (classid %, objid %, objsubid %) is not a relation, column or function',
                        coalesce(classid::text, 'NULL'), coalesce(objid::text, 'NULL'), coalesce(objsubid::text, 'NULL')
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Name an existing table, view, column, index, function or query.';
    END IF;
    SELECT a.type, a.object_names, a.object_args INTO target_type, target_names, target_args
      FROM pg_identify_object_as_address(classid, objid, objsubid) a;
    IF target_names IS NULL THEN
        RAISE EXCEPTION 'invalid annotation field target: the object does not exist'
              USING ERRCODE = 'undefined_object', HINT = 'Name an existing table, view, column, index, function or query.';
    END IF;
END
$$;
COMMENT ON FUNCTION asymm._address_of(oid, oid, integer) IS 'Portable address of an existing object (errors when it is missing); internal';

CREATE FUNCTION asymm._column_address(target regclass, column_name text,
                                      OUT target_type text, OUT target_names text[], OUT target_args text[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    att smallint;
BEGIN
    SELECT attnum INTO att FROM pg_attribute
     WHERE attrelid = target AND attname = column_name AND attnum > 0 AND NOT attisdropped;
    IF att IS NULL THEN
        RAISE EXCEPTION 'invalid annotation field column: % has no column %', target, asymm._shown(column_name, '''')
              USING ERRCODE = 'undefined_column', HINT = 'Name an existing column of the relation.';
    END IF;
    SELECT * INTO target_type, target_names, target_args FROM asymm._address_of('pg_class'::regclass, target, att);
END
$$;
COMMENT ON FUNCTION asymm._column_address(regclass, text) IS 'Portable address of a column; internal';

CREATE FUNCTION asymm._query_address(queryid bigint,
                                     OUT target_type text, OUT target_names text[], OUT target_args text[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    text_of text;
BEGIN
    SELECT s.query INTO text_of FROM asymm._pgss_queries() s WHERE s.queryid = _query_address.queryid LIMIT 1;
    IF text_of IS NULL THEN
        RAISE EXCEPTION 'invalid annotation field queryid: % is not in pg_stat_statements', coalesce(queryid::text, 'NULL')
              USING ERRCODE = 'undefined_object', HINT = 'Accepted values for queryid: SELECT queryid FROM pg_stat_statements.';
    END IF;
    target_type := 'query'; target_names := ARRAY[asymm.query_fingerprint(text_of)]; target_args := '{}';
END
$$;
COMMENT ON FUNCTION asymm._query_address(bigint) IS 'Address (fingerprint) of the query a pg_stat_statements queryid stands for; internal';

CREATE FUNCTION asymm.resolve(target regclass) RETURNS asymm.annotation_tuple
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT asymm._resolve_address(a.target_type, a.target_names, a.target_args)
        FROM asymm._address_of('pg_class'::regclass, target, 0) a $$;
COMMENT ON FUNCTION asymm.resolve(regclass) IS '⊣: the effective annotation of a relation after harmonizing all sources (NULL if none)';

CREATE FUNCTION asymm.resolve(target regclass, column_name text) RETURNS asymm.annotation_tuple
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT asymm._resolve_address(a.target_type, a.target_names, a.target_args)
        FROM asymm._column_address(target, column_name) a $$;
COMMENT ON FUNCTION asymm.resolve(regclass, text) IS '⊣: the effective annotation of a column after harmonizing all sources (NULL if none)';

CREATE FUNCTION asymm.resolve(target regprocedure) RETURNS asymm.annotation_tuple
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT asymm._resolve_address(a.target_type, a.target_names, a.target_args)
        FROM asymm._address_of('pg_proc'::regclass, target, 0) a $$;
COMMENT ON FUNCTION asymm.resolve(regprocedure) IS '⊣: the effective annotation of a function after harmonizing all sources (NULL if none)';

CREATE FUNCTION asymm.resolve(queryid bigint) RETURNS asymm.annotation_tuple
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT asymm._resolve_address(a.target_type, a.target_names, a.target_args)
        FROM asymm._query_address(queryid) a $$;
COMMENT ON FUNCTION asymm.resolve(bigint) IS '⊣: the effective annotation of a query given by queryid (looked up by fingerprint; NULL if none)';

-- Not pinned, and immune: every name in it is schema-qualified (see asymm._session_lookup).
CREATE FUNCTION asymm.resolve(target text) RETURNS asymm.annotation_tuple
LANGUAGE sql STABLE
AS $$ SELECT asymm._resolve_address(a.target_type, a.target_names, a.target_args)
        FROM asymm._parse_target(target, pg_catalog.current_setting('search_path')) a $$;
COMMENT ON FUNCTION asymm.resolve(text) IS '⊣: the effective annotation of a target named by text (relation, f(argtypes), or ''query <fingerprint>'')';

CREATE FUNCTION asymm.harmonize(target regclass) RETURNS asymm.annotation_tuple
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT asymm._harmonize_address(a.target_type, a.target_names, a.target_args)
        FROM asymm._address_of('pg_class'::regclass, target, 0) a $$;
COMMENT ON FUNCTION asymm.harmonize(regclass) IS '⊗: resolve conflicting annotations of a relation (user > propagated > inferred, then recency), logging each conflict in asymm.annotation_conflicts';

CREATE FUNCTION asymm.harmonize(target regclass, column_name text) RETURNS asymm.annotation_tuple
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT asymm._harmonize_address(a.target_type, a.target_names, a.target_args)
        FROM asymm._column_address(target, column_name) a $$;
COMMENT ON FUNCTION asymm.harmonize(regclass, text) IS '⊗: resolve conflicting annotations of a column, logging each conflict';

CREATE FUNCTION asymm.harmonize(target regprocedure) RETURNS asymm.annotation_tuple
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT asymm._harmonize_address(a.target_type, a.target_names, a.target_args)
        FROM asymm._address_of('pg_proc'::regclass, target, 0) a $$;
COMMENT ON FUNCTION asymm.harmonize(regprocedure) IS '⊗: resolve conflicting annotations of a function, logging each conflict';

CREATE FUNCTION asymm.harmonize(queryid bigint) RETURNS asymm.annotation_tuple
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT asymm._harmonize_address(a.target_type, a.target_names, a.target_args)
        FROM asymm._query_address(queryid) a $$;
COMMENT ON FUNCTION asymm.harmonize(bigint) IS '⊗: resolve conflicting annotations of a query given by queryid, logging each conflict';

-- Not pinned, and immune: every name in it is schema-qualified (see asymm._session_lookup).
CREATE FUNCTION asymm.harmonize(target text) RETURNS asymm.annotation_tuple
LANGUAGE sql VOLATILE
AS $$ SELECT asymm._harmonize_address(a.target_type, a.target_names, a.target_args)
        FROM asymm._parse_target(target, pg_catalog.current_setting('search_path')) a $$;
COMMENT ON FUNCTION asymm.harmonize(text) IS '⊗: resolve conflicting annotations of a target named by text, logging each conflict';

-- ---------------------------------------------------------------------------------------------
-- ▷ propagate: the effective annotation of a relation flows to its columns, to the views and
-- materialized views that read it (transitively), and to the tables whose foreign keys reference
-- it.  Copies are source = 'propagated'; a target with a user annotation is left alone.

CREATE FUNCTION asymm.propagate(target regclass) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    addr record;
    origin asymm.annotation_entries;
    decay double precision := asymm.setting('annotations.propagation_decay')::double precision;
    dest record;
    dest_addr record;
    copied integer := 0;
BEGIN
    SELECT * INTO addr FROM asymm._address_of('pg_class'::regclass, target, 0);
    SELECT * INTO origin FROM asymm._ranked(addr.target_type, addr.target_names, addr.target_args) LIMIT 1;
    IF origin.id IS NULL THEN
        RAISE EXCEPTION 'invalid annotation field target: % has no annotation to propagate', target
              USING ERRCODE = 'no_data_found', HINT = 'Annotate it first with asymm.annotate().';
    END IF;
    FOR dest IN
        WITH RECURSIVE readers(relid) AS (
            SELECT DISTINCT r.ev_class FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
             WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
               AND d.refobjid = target AND r.ev_class <> target
            UNION
            SELECT r.ev_class FROM readers x JOIN pg_depend d ON d.refobjid = x.relid
              JOIN pg_rewrite r ON r.oid = d.objid
             WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
               AND r.ev_class <> x.relid)
        SELECT 'pg_class'::regclass::oid AS classid, a.attrelid AS objid, a.attnum::integer AS objsubid
          FROM pg_attribute a WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped
        UNION
        SELECT 'pg_class'::regclass::oid, relid, 0 FROM readers
        UNION
        SELECT 'pg_class'::regclass::oid, k.conrelid, 0 FROM pg_constraint k
         WHERE k.contype = 'f' AND k.confrelid = target AND k.conrelid <> target
    LOOP
        SELECT * INTO dest_addr FROM pg_identify_object_as_address(dest.classid, dest.objid, dest.objsubid);
        CONTINUE WHEN dest_addr.object_names IS NULL;
        CONTINUE WHEN EXISTS (SELECT 1 FROM asymm.annotation_entries e
                               WHERE e.target_type = dest_addr.type AND e.target_names = dest_addr.object_names
                                 AND e.target_args = dest_addr.object_args AND e.source = 'user');
        PERFORM asymm._annotate_object(dest.classid, dest.objid, dest.objsubid, origin.symbol, origin.scope,
                                       origin.regime, origin.cost, origin.lineage, 'propagated',
                                       origin.confidence * decay, origin.id);
        copied := copied + 1;
    END LOOP;
    RETURN copied;
END
$$;
COMMENT ON FUNCTION asymm.propagate(regclass) IS '▷: copy the effective annotation of a relation to its columns, reading views and FK-referencing tables as source=propagated (never over a user annotation); returns how many targets received it';

CREATE FUNCTION asymm._propagate_text(target text, caller_path text) RETURNS integer
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT asymm.propagate(CASE WHEN t.classid = 'pg_class'::regclass THEN t.objid::regclass
                                   ELSE target::regclass END)  -- not a relation: the cast names the error
        FROM asymm._parse_target(target, caller_path) t $$;
COMMENT ON FUNCTION asymm._propagate_text(text, text) IS 'asymm.propagate() of a relation named by text, looked up with the caller''s search_path; internal';

-- Not pinned, and immune: every name in it is schema-qualified (see asymm._session_lookup).
CREATE FUNCTION asymm.propagate(target text) RETURNS integer
LANGUAGE sql VOLATILE
AS $$ SELECT asymm._propagate_text(target, pg_catalog.current_setting('search_path')) $$;
COMMENT ON FUNCTION asymm.propagate(text) IS '▷: propagate the effective annotation of a relation named by text';

-- ---------------------------------------------------------------------------------------------
-- Lifecycle.  Both event triggers must never make user DDL fail: every error becomes a WARNING.

-- Keep addresses current after renames and moves (the OID cache follows the object; the address
-- is what pg_dump carries), and resolve entries whose target has just appeared (an index created
-- after the data of a restore).
CREATE FUNCTION asymm._annotations_refresh(touched oid[], everything boolean) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    addr record;
    changed integer := 0;
BEGIN
    FOR r IN
        SELECT e.id, e.target_type, e.target_names, e.target_args, c.classid, c.objid, c.objsubid
          FROM asymm.annotation_entries e JOIN asymm.annotation_target_cache c ON c.entry_id = e.id
         WHERE everything OR c.objid = ANY (touched)
            OR (c.classid = 'pg_class'::regclass
                AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = c.objid AND i.indrelid = ANY (touched)))
    LOOP
        IF NOT asymm._cache_valid(r.target_type, r.classid, r.objid, r.objsubid) THEN
            CONTINUE;
        END IF;
        SELECT * INTO addr FROM pg_identify_object_as_address(r.classid, r.objid, r.objsubid);
        IF addr.object_names IS NOT NULL AND (addr.type, addr.object_names, addr.object_args)
               IS DISTINCT FROM (r.target_type, r.target_names, r.target_args) THEN
            UPDATE asymm.annotation_entries SET target_type = addr.type, target_names = addr.object_names,
                   target_args = addr.object_args
             WHERE id = r.id;
            changed := changed + 1;
        END IF;
    END LOOP;
    -- entries whose target was missing (or whose cache went stale): resolve by address
    -- (stale caches are only re-checked on a full refresh: _locate() already ignores them)
    WITH pending AS MATERIALIZED (
        SELECT e.id, e.target_type, e.target_names, e.target_args
          FROM asymm.annotation_entries e
          LEFT JOIN asymm.annotation_target_cache c ON c.entry_id = e.id
         WHERE e.target_type <> 'query'
           AND (c.entry_id IS NULL
                OR (everything AND NOT asymm._cache_valid(e.target_type, c.classid, c.objid, c.objsubid))))
    INSERT INTO asymm.annotation_target_cache (entry_id, classid, objid, objsubid)
    SELECT p.id, a.classid, a.objid, a.objsubid
      FROM pending p CROSS JOIN LATERAL asymm._address_object(p.target_type, p.target_names, p.target_args) a
     WHERE a.objid IS NOT NULL
    ON CONFLICT (entry_id) DO UPDATE SET classid = excluded.classid, objid = excluded.objid, objsubid = excluded.objsubid;
    RETURN changed;
END
$$;
COMMENT ON FUNCTION asymm._annotations_refresh(oid[], boolean) IS 'Rewrite the stored address of annotations whose target was renamed or moved, and resolve newly created targets; internal';

CREATE FUNCTION asymm._annotations_ddl_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    touched oid[];
    everything boolean;
BEGIN
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM asymm.annotation_entries) THEN
            RETURN;
        END IF;
        SELECT array_agg(c.objid), coalesce(bool_or(c.classid = 'pg_namespace'::regclass), false)
          INTO touched, everything
          FROM pg_event_trigger_ddl_commands() c;
        PERFORM asymm._annotations_refresh(coalesce(touched, '{}'), everything);
    EXCEPTION WHEN others THEN
        RAISE WARNING 'asymm: could not refresh annotation addresses after %: %', tg_tag, sqlerrm;
    END;
END
$$;
COMMENT ON FUNCTION asymm._annotations_ddl_end() IS 'Event trigger function: keeps annotation addresses current after renames and moves (never fails the DDL)';

CREATE EVENT TRIGGER asymm_annotations_ddl_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW', 'ALTER FOREIGN TABLE', 'ALTER INDEX',
                 'ALTER FUNCTION', 'ALTER PROCEDURE', 'ALTER SCHEMA', 'CREATE INDEX', 'CREATE TABLE',
                 'CREATE VIEW', 'CREATE MATERIALIZED VIEW', 'CREATE FUNCTION', 'CREATE PROCEDURE')
    EXECUTE FUNCTION asymm._annotations_ddl_end();
COMMENT ON EVENT TRIGGER asymm_annotations_ddl_end IS 'asymm: annotations follow renames and schema moves of their targets';

CREATE FUNCTION asymm._annotations_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    BEGIN
        IF to_regclass('asymm.annotation_entries') IS NULL
           OR NOT EXISTS (SELECT 1 FROM asymm.annotation_entries) THEN
            RETURN;
        END IF;
        DELETE FROM asymm.annotation_entries e
         USING pg_event_trigger_dropped_objects() d
         WHERE d.classid IN ('pg_class'::regclass, 'pg_proc'::regclass)
           AND (EXISTS (SELECT 1 FROM asymm.annotation_target_cache c
                         WHERE c.entry_id = e.id AND c.classid = d.classid AND c.objid = d.objid
                           AND (d.objsubid = 0 OR c.objsubid = d.objsubid))
                OR (d.objsubid = 0 AND e.target_type = d.object_type
                    AND e.target_names = d.address_names AND e.target_args = d.address_args)
                -- a dropped table's columns: the table's kind and name (a function may have the same
                -- {schema, name} address)
                OR (d.objsubid = 0 AND d.classid = 'pg_class'::regclass
                    AND e.target_type = d.object_type || ' column'
                    AND e.target_names[1:2] = d.address_names AND cardinality(d.address_names) = 2)
                OR (d.objsubid <> 0 AND e.target_type = d.object_type
                    AND e.target_names = d.address_names));
    EXCEPTION WHEN others THEN
        RAISE WARNING 'asymm: could not remove annotations of dropped objects after %: %', tg_tag, sqlerrm;
    END;
END
$$;
COMMENT ON FUNCTION asymm._annotations_sql_drop() IS 'Event trigger function: removes the annotations of dropped tables, views, columns, indexes and functions (never fails the DDL)';

CREATE EVENT TRIGGER asymm_annotations_sql_drop ON sql_drop
    EXECUTE FUNCTION asymm._annotations_sql_drop();
COMMENT ON EVENT TRIGGER asymm_annotations_sql_drop IS 'asymm: annotations disappear with their target';

-- ===== sql/12_annotations_coherence.sql =====
-- asymm: since 0.2.0
-- Annotations: generic plans, plan-shape cost classes, asymm.infer() and asymm.coherence()
-- (the Semantic Sonar).

-- Statements recorded by pg_stat_statements in this database, wherever that extension lives,
-- with the role that ran each (a statement is only ever planned as that role).
CREATE FUNCTION asymm._pgss_queries()
RETURNS TABLE (queryid bigint, query text, calls bigint, userid oid)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    home name;
BEGIN
    SELECT n.nspname INTO home FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pg_stat_statements';
    IF home IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT s.queryid, s.query, s.calls, s.userid FROM %I.pg_stat_statements(true) s
          WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.toplevel',
        home);
END
$$;
COMMENT ON FUNCTION asymm._pgss_queries() IS 'Top-level statements pg_stat_statements recorded in this database, with the role that ran each (empty when it is absent); internal';

-- ---------------------------------------------------------------------------------------------
-- Planning text asymm did not write (SPEC section 9): only ever as the role that wrote it, in a
-- security-restricted operation, never executed (extension/src/planas.c explains how and why).

CREATE FUNCTION asymm._explain_as(author oid, query text, param_types text[] DEFAULT NULL,
                                  param_values text[] DEFAULT NULL, verbose boolean DEFAULT false,
                                  search_path text DEFAULT NULL)
RETURNS json
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp  -- the statement's own path is set inside, from its author
AS 'MODULE_PATHNAME', 'asymm_explain_as';
COMMENT ON FUNCTION asymm._explain_as(oid, text, text[], text[], boolean, text) IS 'EXPLAIN (FORMAT JSON) of one statement planned as role author in a security-restricted operation, never executed: generic plan without param_values, custom plan with them; search_path NULL = the author''s configured one; returns {param_types, plan}; internal';

CREATE FUNCTION asymm._param_types_as(author oid, query text, param_types text[] DEFAULT NULL,
                                      search_path text DEFAULT NULL)
RETURNS json
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp  -- the statement's own path is set inside, from its author
AS 'MODULE_PATHNAME', 'asymm_param_types_as';
COMMENT ON FUNCTION asymm._param_types_as(oid, text, text[], text) IS 'The types a statement gives its $n (as PREPARE would infer them), analysed as role author in a security-restricted operation, not planned: {param_types, plan: null}; internal';

CREATE FUNCTION asymm._plan_as_refusal(author oid) RETURNS text
LANGUAGE C STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asymm_plan_as_refusal';
COMMENT ON FUNCTION asymm._plan_as_refusal(oid) IS 'Why a statement of role author may not be planned as that role by the current caller (the role no longer exists, or the caller cannot assume it), or NULL when it may; internal';

-- Whether a text is one plannable statement: it is executed only as PREPARE + EXPLAIN EXECUTE,
-- which never runs it, but it must not smuggle a second statement in.
CREATE FUNCTION asymm._plannable(query text) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT n ~ '^(select|with|insert|update|delete|values|table) ' AND position(';' IN n) = 0
  FROM asymm.normalize_query(query) AS n
$$;
COMMENT ON FUNCTION asymm._plannable(text) IS 'Whether a query text is a single SELECT/INSERT/UPDATE/DELETE/WITH/VALUES statement that may be planned; internal';

-- The generic plan of a query (PostgreSQL 15 has no EXPLAIN (GENERIC_PLAN)): planned without
-- values for its $n, as PREPARE + EXPLAIN EXECUTE under plan_cache_mode = force_generic_plan
-- would, but as role author (see asymm._explain_as) and never executed.  Names are looked up with
-- the search_path given, else with the one a new session of the author would have.
CREATE FUNCTION asymm._generic_plan(query text, author oid, search_path text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF query IS NULL OR NOT asymm._plannable(query) THEN
        RAISE EXCEPTION 'invalid query for a generic plan: it must be one SELECT, INSERT, UPDATE, DELETE, WITH or VALUES statement'
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Give the text of one statement, with constants or $n parameters.';
    END IF;
    IF author IS NULL THEN
        RAISE EXCEPTION 'invalid author for a generic plan: NULL'
              USING ERRCODE = 'null_value_not_allowed', HINT = 'Give the role that wrote the statement; it is planned only as that role.';
    END IF;
    RETURN asymm._explain_as(author, query, NULL, NULL, true, _generic_plan.search_path)::jsonb -> 'plan' -> 0 -> 'Plan';
END
$$;
COMMENT ON FUNCTION asymm._generic_plan(text, oid, text) IS 'Generic plan (EXPLAIN JSON) of a query planned as role author; internal (asymm.generic_plan)';

CREATE FUNCTION asymm.generic_plan(query text, author regrole) RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT asymm._generic_plan(query, author, NULL) $$;
COMMENT ON FUNCTION asymm.generic_plan(text, regrole) IS 'Generic plan (EXPLAIN JSON) of a query with $n parameters, planned as role author (the caller must be allowed to SET ROLE to it) with that role''s configured search_path, in a security-restricted operation; never executes it';

-- The caller's own text, planned as the caller with the caller's search_path.  Deliberately not
-- pinned to a search_path, which is what it passes on; every name in it is schema-qualified.
CREATE FUNCTION asymm.generic_plan(query text) RETURNS jsonb
LANGUAGE sql VOLATILE
AS $$ SELECT asymm._generic_plan(query, pg_catalog.to_regrole(pg_catalog.quote_ident(current_user)),
                                 pg_catalog.current_setting('search_path')) $$;
COMMENT ON FUNCTION asymm.generic_plan(text) IS 'Generic plan (EXPLAIN JSON) of a query with $n parameters, planned as the caller with the caller''s search_path (a security-restricted operation: what it runs cannot change role); never executes it';

-- The role a query annotation's text is planned as (SPEC section 9).  A text pg_stat_statements
-- recorded in this database (asymm annotate --queryid, asymm.infer()) belongs to the role that
-- ran it (when several did, the most frequent one the writer may assume); any other text to the
-- role that wrote the annotation.  Kept by pg_dump with the annotation, as a role name.
ALTER TABLE asymm.annotation_entries ADD COLUMN author name;
COMMENT ON COLUMN asymm.annotation_entries.author IS 'Query annotations: the role their text is planned as (the role pg_stat_statements saw run it, else the role that annotated)';

CREATE FUNCTION asymm._annotation_author() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.target_type <> 'query' THEN
        NEW.author := NULL;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.author IS NOT DISTINCT FROM OLD.author THEN
        IF NEW.query_text IS NOT DISTINCT FROM OLD.query_text THEN
            RETURN NEW;
        END IF;
        NEW.author := NULL;  -- a new text: a new author
    END IF;
    IF NEW.author IS NULL THEN
        SELECT coalesce(r.rolname, s.userid::text) INTO NEW.author
          FROM asymm._pgss_queries() s LEFT JOIN pg_roles r ON r.oid = s.userid
         WHERE s.query = NEW.query_text
         ORDER BY coalesce(pg_has_role(s.userid, 'MEMBER'), false) DESC, s.calls DESC
         LIMIT 1;
        NEW.author := coalesce(NEW.author, current_user);
    ELSIF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = NEW.author) AND NOT pg_has_role(NEW.author, 'MEMBER') THEN
        RAISE EXCEPTION 'invalid annotation field author: % may not make % the author of a query annotation', current_user, NEW.author
              USING ERRCODE = 'insufficient_privilege',
                    HINT = 'A query annotation''s text is planned as its author: name only a role you are a member of.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION asymm._annotation_author() IS 'Trigger: records the role a query annotation''s text is planned as, and refuses an author the writer is not a member of; internal';

CREATE TRIGGER annotation_entries_author
BEFORE INSERT OR UPDATE ON asymm.annotation_entries
FOR EACH ROW EXECUTE FUNCTION asymm._annotation_author();

-- Cost class of a plan from its shape (PL/Python): index or primary-key lookup -> O(log n), full
-- scan -> O(n), sort of a scan -> O(n log n), nested loop over two scans -> O(n^2), no scan at all
-- -> O(1); the worst node wins.  Also lists the relations that are scanned in full.  What is not
-- a plan gives {"problem": ...}: an error raised from PL/Python reads as a Python exception, so
-- asymm.plan_cost_class() (below) raises it.
CREATE FUNCTION asymm._plan_cost_class(plan jsonb) RETURNS jsonb
LANGUAGE plpython3u IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
import json
import re
class BadPlan(Exception):
    pass
ORDER = ["O(1)", "O(log n)", "O(n)", "O(n log n)", "O(n^2)"]
LOG, N, NLOGN, N2 = 1, 2, 3, 4
full_scans = []
reasons = []
def ident(part):
    # as quote_ident would: a dotted or quoted name must not read as another one (or none) later
    if re.match(r"^[a-z_][a-z0-9_$]*$", part):
        return part
    return '"' + part.replace('"', '""') + '"'
def rel(node):
    name = node.get("Relation Name")
    if name is None:
        return node.get("Alias", "?")
    schema = node.get("Schema")
    return "%s.%s" % (ident(schema), ident(name)) if schema else ident(name)
def walk(node):
    if not isinstance(node, dict):
        raise BadPlan("a plan node is a JSON object, not %s" % type(node).__name__)
    kind = node.get("Node Type", "")
    plans = node.get("Plans", [])
    if not isinstance(kind, str) or not isinstance(plans, list):
        raise BadPlan("\"Node Type\" must be a string and \"Plans\" an array")
    children = [walk(child) for child in plans]
    worst = max(children, default=0)
    if kind in ("Index Scan", "Index Only Scan", "Bitmap Index Scan"):
        if node.get("Index Cond"):
            return max(worst, LOG)
        full_scans.append(rel(node) if kind != "Bitmap Index Scan" else node.get("Index Name", "?"))
        reasons.append("full %s of %s" % (kind, rel(node)))
        return max(worst, N)
    if kind in ("Seq Scan", "Sample Scan", "Tid Range Scan", "Foreign Scan"):
        full_scans.append(rel(node))
        reasons.append("%s on %s" % (kind, rel(node)))
        return max(worst, N)
    if kind in ("Function Scan", "Table Function Scan", "CTE Scan", "WorkTable Scan",
                "Named Tuplestore Scan") and not children:
        return max(worst, N)
    if kind in ("Sort", "Incremental Sort"):
        if worst >= N:
            reasons.append("sort of a scan")
            return max(worst, NLOGN)
        return worst
    if kind == "Nested Loop" and len(children) == 2:
        outer, inner = children
        if outer >= N and inner >= N:
            reasons.append("nested loop over two scans")
            return N2
        if outer >= N and inner == LOG:
            reasons.append("nested loop of index lookups over a scan")
            return max(NLOGN, outer)
    return worst
try:
    top = walk(json.loads(plan))
except BadPlan as exc:
    return json.dumps({"problem": str(exc)})
except RecursionError:
    return json.dumps({"problem": "the plan is nested too deeply"})
return json.dumps({"cost": ORDER[top], "full_scans": sorted(set(full_scans)), "reasons": reasons})
$$;
COMMENT ON FUNCTION asymm._plan_cost_class(jsonb) IS 'asymm.plan_cost_class() in PL/Python: the cost class, or {problem} when the argument is not a plan; internal';

CREATE FUNCTION asymm.plan_cost_class(plan jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shape jsonb := asymm._plan_cost_class(plan);
BEGIN
    IF shape ? 'problem' THEN
        RAISE EXCEPTION 'invalid plan: %', shape ->> 'problem'
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Pass the "Plan" object of EXPLAIN (FORMAT JSON), as asymm.generic_plan() returns it.';
    END IF;
    RETURN shape;
END
$$;
COMMENT ON FUNCTION asymm.plan_cost_class(jsonb) IS 'κ of a plan from its shape: lookup O(log n), full scan O(n), sort of a scan O(n log n), nested loop over scans O(n^2) (PL/Python); returns {cost, full_scans, reasons}';

-- Estimated rows of a relation (never-analyzed tables have reltuples = -1: use live tuples).
CREATE FUNCTION asymm._relation_rows(rel regclass) RETURNS double precision
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT greatest(c.reltuples, coalesce(s.n_live_tup, 0)::double precision,
                CASE WHEN c.reltuples < 0 THEN 0 ELSE c.reltuples END)
  FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = rel
$$;
COMMENT ON FUNCTION asymm._relation_rows(regclass) IS 'Best estimate of the rows of a relation (reltuples, else live tuples); internal';

-- Observed operations of a table, as lineage words.
CREATE FUNCTION asymm._observed_lineage(rel oid) RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT ARRAY(SELECT w FROM (VALUES (1, 'create', s.n_tup_ins > 0),
                                   (2, 'query', coalesce(s.seq_scan, 0) + coalesce(s.idx_scan, 0) > 0),
                                   (3, 'update', s.n_tup_upd > 0),
                                   (4, 'delete', s.n_tup_del > 0)) AS o(n, w, seen)
              WHERE seen ORDER BY n)
  FROM pg_stat_user_tables s WHERE s.relid = rel
$$;
COMMENT ON FUNCTION asymm._observed_lineage(oid) IS 'Operations pg_stat_user_tables has seen on a table, as lineage words (create, query, update, delete); internal';

-- ---------------------------------------------------------------------------------------------
-- Semantic Sonar.

CREATE FUNCTION asymm.coherence_verdicts()
RETURNS TABLE (annotation_id uuid, target text, target_type text, source text, cost text, lineage text[],
               verdict text, reason text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a record;
    author regrole;
    refusal text;
    stats record;
    shape jsonb;
    planned text;
    tiny_rows double precision := asymm.setting('annotations.tiny_table_rows')::double precision;
    tiny text[];
    missing text[];
    reasons text[];
    bad boolean;
    judged boolean;
BEGIN
    FOR a IN SELECT v.*, l.classid, l.objid, l.objsubid, e.author
               FROM asymm.annotations v
               JOIN asymm.annotation_entries e ON e.id = v.id
               LEFT JOIN LATERAL asymm._locate(v.id, v.target_type, v.target_names, v.target_args) l ON true
              ORDER BY v.target, v.source, v.id
    LOOP
        annotation_id := a.id; target := a.target; target_type := a.target_type; source := a.source;
        cost := a.cost; lineage := a.lineage;
        IF a.target_type = 'query' THEN
            -- planned only as its author (asymm._annotation_author); otherwise not judged at all
            author := to_regrole(quote_ident(a.author));
            refusal := CASE WHEN a.author IS NULL THEN 'no role is recorded to plan it as'
                            WHEN author IS NULL THEN format('role %s no longer exists', quote_ident(a.author))
                            ELSE asymm._plan_as_refusal(author) END;
            IF refusal IS NOT NULL THEN
                verdict := 'not evaluable';
                reason := 'skipped: ' || refusal;
                RETURN NEXT; CONTINUE;
            END IF;
            BEGIN
                shape := asymm.plan_cost_class(asymm._generic_plan(a.query_text, author, NULL));
            EXCEPTION WHEN others THEN
                verdict := 'incoherent';
                reason := 'the query cannot be planned: ' || sqlerrm;
                RETURN NEXT; CONTINUE;
            END;
            planned := shape ->> 'cost';
            IF planned = a.cost THEN
                verdict := 'coherent';
                reason := format('generic plan is %s', planned);
            ELSE
                tiny := ARRAY(SELECT r FROM jsonb_array_elements_text(shape -> 'full_scans') r
                               WHERE to_regclass(r) IS NOT NULL AND asymm._relation_rows(to_regclass(r)) < tiny_rows);
                IF cardinality(tiny) > 0 AND asymm._annotation_rank('cost', a.cost) < asymm._annotation_rank('cost', planned) THEN
                    verdict := 'not evaluable';
                    reason := format('claimed %s, generic plan is %s, but %s has fewer than %s rows: a sequential scan is the right plan for a tiny table',
                                     a.cost, planned, array_to_string(tiny, ', '), tiny_rows);
                ELSE
                    verdict := 'incoherent';
                    reason := format('claimed %s, generic plan is %s (%s)', a.cost, planned,
                                     array_to_string(ARRAY(SELECT jsonb_array_elements_text(shape -> 'reasons')), '; '));
                END IF;
            END IF;
            RETURN NEXT; CONTINUE;
        END IF;
        IF a.objid IS NULL THEN
            verdict := 'incoherent';
            reason := 'the target does not exist (unresolved)';
            RETURN NEXT; CONTINUE;
        END IF;
        IF a.target_type <> 'table' THEN
            verdict := 'coherent';
            reason := 'the target exists (no further check for a ' || a.target_type || ')';
            RETURN NEXT; CONTINUE;
        END IF;
        SELECT s.n_tup_ins, s.n_tup_upd, s.n_tup_del, coalesce(s.seq_scan, 0) AS seq_scan,
               coalesce(s.idx_scan, 0) AS idx_scan
          INTO stats FROM pg_stat_user_tables s WHERE s.relid = a.objid;
        reasons := '{}'; bad := false; judged := false;
        IF stats.n_tup_ins + stats.n_tup_upd + stats.n_tup_del + stats.seq_scan + stats.idx_scan = 0 THEN
            reasons := reasons || 'no operations observed since statistics were reset'::text;
        ELSE
            judged := true;
            missing := ARRAY(SELECT w FROM unnest(asymm._observed_lineage(a.objid)) w
                              WHERE w <> 'query' AND NOT (w = ANY (a.lineage))
                                AND NOT (w = 'create' AND 'insert' = ANY (a.lineage)));
            IF cardinality(missing) > 0 THEN
                bad := true;
                reasons := reasons || format('observed %s but the lineage lacks it', array_to_string(missing, ', '));
            ELSE
                reasons := reasons || format('lineage covers the observed operations (%s)',
                                             array_to_string(asymm._observed_lineage(a.objid), ', '));
            END IF;
        END IF;
        IF asymm._annotation_rank('cost', a.cost) <= asymm._annotation_rank('cost', 'O(log n)')
           AND stats.seq_scan > 0 AND stats.idx_scan = 0 THEN
            IF asymm._relation_rows(a.objid) < tiny_rows THEN
                reasons := reasons || format('claimed %s but only sequential scans seen: not evaluable on a table of fewer than %s rows', a.cost, tiny_rows);
            ELSE
                judged := true; bad := true;
                reasons := reasons || format('claimed %s but the table is only scanned sequentially (%s scans, no index scan)',
                                             a.cost, stats.seq_scan);
            END IF;
        END IF;
        verdict := CASE WHEN bad THEN 'incoherent' WHEN judged THEN 'coherent' ELSE 'not evaluable' END;
        reason := array_to_string(reasons, '; ');
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION asymm.coherence_verdicts() IS 'Semantic Sonar: one verdict (coherent, incoherent, not evaluable) with its reason per annotation; queries are checked against their generic plan';

CREATE FUNCTION asymm.coherence() RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    verdicts jsonb;
    good integer;
    poor integer;
BEGIN
    SELECT coalesce(jsonb_agg(to_jsonb(v)), '[]'::jsonb),
           count(*) FILTER (WHERE v.verdict = 'coherent'),
           count(*) FILTER (WHERE v.verdict = 'incoherent')
      INTO verdicts, good, poor
      FROM asymm.coherence_verdicts() v;
    RETURN jsonb_build_object(
        'score', CASE WHEN good + poor > 0 THEN round(100.0 * good / (good + poor), 1) END,
        'coherent', good, 'incoherent', poor,
        'not_evaluable', jsonb_array_length(verdicts) - good - poor,
        'total', jsonb_array_length(verdicts),
        'goal', 85,
        'verdicts', verdicts);
END
$$;
COMMENT ON FUNCTION asymm.coherence() IS 'Semantic Sonar: coherence score in percent (coherent / evaluable annotations; NULL when none is evaluable; the goal is > 85) with every verdict';

-- ---------------------------------------------------------------------------------------------
-- Inference.  Heuristics (documented, deliberately simple):
--  tables:  κ = O(log n) when a primary key or unique index exists, else O(n); λ = observed
--           operations; γ = Stabilization without writes, Optimization when updates+deletes
--           outnumber inserts, else Balance; σ = dataEntity.
--  queries: κ from the generic plan; λ from the statement kind (select -> query, insert -> create,
--           update -> update, delete -> delete); γ = Stabilization for O(1)/O(log n), Balance for
--           O(n), Optimization for worse; σ = dataQuery.
-- Each run adds evidence and amplifies confidence; a target with a user or propagated annotation
-- is never given an inferred one.

CREATE FUNCTION asymm.infer()
RETURNS TABLE (target text, target_type text, cost text, lineage text[], confidence double precision, skipped text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
    q record;
    conf double precision := asymm.setting('annotations.inferred_confidence')::double precision;
    shape jsonb;
    new_id uuid;
    word text;
    refusal text;
BEGIN
    FOR t IN
        SELECT c.oid, s.n_tup_ins, s.n_tup_upd, s.n_tup_del,
               EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique) AS keyed,
               a.type, a.object_names, a.object_args
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
          CROSS JOIN LATERAL pg_identify_object_as_address('pg_class'::regclass, c.oid, 0) a
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'asymm') AND n.nspname NOT LIKE 'pg\_%'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                             AND d.deptype = 'e')
           AND NOT EXISTS (SELECT 1 FROM asymm.annotation_entries e
                            WHERE e.target_type = a.type AND e.target_names = a.object_names
                              AND e.target_args = a.object_args AND e.source <> 'inferred')
         ORDER BY c.oid
    LOOP
        new_id := asymm._annotate_object('pg_class'::regclass, t.oid, 0, 'dataEntity', 'local',
                  CASE WHEN coalesce(t.n_tup_ins + t.n_tup_upd + t.n_tup_del, 0) = 0 THEN 'Stabilization'
                       WHEN t.n_tup_upd + t.n_tup_del > t.n_tup_ins THEN 'Optimization'
                       ELSE 'Balance' END,
                  CASE WHEN t.keyed THEN 'O(log n)' ELSE 'O(n)' END,
                  coalesce(asymm._observed_lineage(t.oid), '{}'), 'inferred', conf);
        RETURN QUERY SELECT v.target, v.target_type, v.cost, v.lineage, v.confidence, NULL::text FROM asymm.annotations v WHERE v.id = new_id;
    END LOOP;
    -- Each statement is planned as one role that ran it (SPEC section 9): of the pg_stat_statements
    -- entries with the same fingerprint, the most frequent one whose role the caller may assume.
    FOR q IN
        SELECT x.fp, x.query, x.userid, x.calls
          FROM (SELECT DISTINCT ON (y.fp) y.fp, y.query, y.userid, sum(y.calls) OVER (PARTITION BY y.fp) AS calls
                  FROM (SELECT asymm.query_fingerprint(s.query) AS fp, s.query, s.calls, s.userid
                          FROM asymm._pgss_queries() s
                         WHERE s.calls >= asymm.setting('annotations.infer_min_calls')::bigint
                           AND s.query !~* '\masymm\.' AND asymm._plannable(s.query)) y
                 ORDER BY y.fp, coalesce(pg_has_role(y.userid, 'MEMBER'), false) DESC, y.calls DESC, y.query) x
         WHERE NOT EXISTS (SELECT 1 FROM asymm.annotation_entries e
                            WHERE e.target_type = 'query' AND e.target_names = ARRAY[x.fp] AND e.source <> 'inferred')
         ORDER BY x.calls DESC, x.fp
         LIMIT asymm.setting('annotations.infer_max_queries')::integer
    LOOP
        refusal := asymm._plan_as_refusal(q.userid);
        IF refusal IS NULL THEN
            BEGIN
                shape := asymm.plan_cost_class(asymm._generic_plan(q.query, q.userid, NULL));
            EXCEPTION WHEN others THEN
                refusal := 'cannot be planned: ' || sqlerrm;  -- its tables are gone, another role's objects: no claim
            END;
        END IF;
        IF refusal IS NOT NULL THEN
            RETURN QUERY SELECT 'query ' || q.fp, 'query'::text, NULL::text, '{}'::text[], NULL::double precision,
                                'skipped: ' || refusal;
            CONTINUE;
        END IF;
        word := CASE split_part(asymm.normalize_query(q.query), ' ', 1)
                    WHEN 'insert' THEN 'create' WHEN 'update' THEN 'update' WHEN 'delete' THEN 'delete'
                    ELSE 'query' END;
        new_id := asymm.annotate_query(q.query, 'dataQuery', 'local',
                  CASE WHEN shape ->> 'cost' IN ('O(1)', 'O(log n)') THEN 'Stabilization'
                       WHEN shape ->> 'cost' = 'O(n)' THEN 'Balance' ELSE 'Optimization' END,
                  shape ->> 'cost', ARRAY[word], 'inferred', conf);
        RETURN QUERY SELECT v.target, v.target_type, v.cost, v.lineage, v.confidence, NULL::text FROM asymm.annotations v WHERE v.id = new_id;
    END LOOP;
END
$$;
COMMENT ON FUNCTION asymm.infer() IS 'Give unannotated tables and frequent queries inferred annotations (κ from the generic plan shape, planned as the role that ran the query, or keys; λ from observed operations); never touches user or propagated annotations; a query that cannot be planned as its role comes back with skipped = the reason and no annotation';

-- ===== sql/13_planner_role.sql =====
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

-- ===== sql/20_telemetry.sql =====
-- asymm: since 0.2.0
-- Telemetry (UX-Sonar): pg_stat_statements history as deltas, retention, and the reports built on it.
--
-- Shape of the data:
--   asymm.queries          one row per (dbid, userid, queryid): the query text, stored once
--   asymm.query_counters   the last counters seen per pg_stat_statements entry (to compute deltas)
--   asymm.query_stats      raw deltas, one row per query that moved per snapshot, hourly partitions
--   asymm.query_stats_minute  the same rolled up per minute, daily partitions
--   asymm.telemetry_state  one row: what the last snapshot saw (dealloc, stats_reset) and watermarks
-- Partitions are created ahead of time by asymm.snapshot() (cheap check every call) and by
-- asymm.telemetry_retention(); old ones are dropped whole, never deleted row by row.

INSERT INTO asymm.setting_defaults (name, default_value, value_type, min_value, max_value, allowed_values, pattern, description) VALUES
    ('telemetry.raw_retention', '24 hours', 'interval', '1 hour', '366 days', NULL, NULL, 'How long raw per-snapshot deltas (asymm.query_stats) are kept before their hourly partitions are dropped'),
    ('telemetry.rollup_retention', '30 days', 'interval', '1 day', '3660 days', NULL, NULL, 'How long per-minute rollups (asymm.query_stats_minute) are kept before their daily partitions are dropped'),
    ('telemetry.partitions_ahead', '2 hours', 'interval', '1 hour', '7 days', NULL, NULL, 'History partitions are created this far ahead of the current time'),
    ('telemetry.rollup_batch_minutes', '5', 'integer', '1', '1440', NULL, NULL, 'At most this many minutes of raw deltas are rolled up per asymm.telemetry_retention() call (bounds its run time)'),
    ('telemetry.slow_threshold_ms', '100', 'number', '0', '86400000', NULL, NULL, 'Default threshold (ms) above which a sample''s mean latency counts its calls as slow'),
    ('telemetry.spike_factor', '3', 'number', '1', '1000', NULL, NULL, 'smoothness(): a sample is a latency spike when its mean exceeds this many times the query''s median sample mean'),
    ('telemetry.spike_min_ms', '1', 'number', '0', '86400000', NULL, NULL, 'smoothness(): samples with a mean below this many ms are never spikes (micro-second noise)'),
    ('telemetry.exclude_roles', '', 'text', NULL, NULL, NULL, '^([^,[:cntrl:]]{1,64}(,[^,[:cntrl:]]{1,64})*)?$', 'Comma-separated role names whose statements are not recorded (e.g. the role the daemon uses)'),
    ('telemetry.all_databases', 'false', 'boolean', NULL, NULL, NULL, NULL, 'Record statements of every database in the cluster, not only the current one'),
    ('telemetry.state_max_rows', '1000000', 'integer', '0', '1000000000000', NULL, NULL, 'state_report() skips tables estimated larger than this (it reads every row)');

-- Query texts, once per (dbid, userid, queryid).  "own" marks asymm's own statements (text that
-- calls into schema asymm): they are left out of what asymm reports.
CREATE TABLE asymm.queries (
    dbid       oid NOT NULL,
    userid     oid NOT NULL,
    queryid    bigint NOT NULL,
    query      text,
    own        boolean NOT NULL DEFAULT false,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dbid, userid, queryid)
);
COMMENT ON TABLE asymm.queries IS 'Text of every statement asymm has recorded, stored once per (dbid, userid, queryid); own = asymm''s own statement';

-- Last counters seen for each pg_stat_statements entry (its key includes toplevel).
CREATE TABLE asymm.query_counters (
    dbid      oid NOT NULL,
    userid    oid NOT NULL,
    queryid   bigint NOT NULL,
    toplevel  boolean NOT NULL,
    calls     bigint NOT NULL,
    total_ms  double precision NOT NULL,
    rows      bigint NOT NULL,
    shared_blks_hit  bigint NOT NULL,
    shared_blks_read bigint NOT NULL,
    seen_at   timestamptz NOT NULL,
    PRIMARY KEY (dbid, userid, queryid, toplevel)
) WITH (fillfactor = 50);  -- rewritten every tick: room for HOT updates
COMMENT ON TABLE asymm.query_counters IS 'Last cumulative counters asymm.snapshot() saw per pg_stat_statements entry, the base of the next delta';

CREATE TABLE asymm.telemetry_state (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_snapshot_at timestamptz,
    last_dealloc     bigint,
    last_stats_reset timestamptz,
    snapshots        bigint NOT NULL DEFAULT 0,
    resets_seen      bigint NOT NULL DEFAULT 0,
    deallocs_seen    bigint NOT NULL DEFAULT 0,
    raw_partitions_until    timestamptz,
    minute_partitions_until timestamptz,
    raw_floor        timestamptz,
    rolled_up_until  timestamptz,
    entries          bigint
);
COMMENT ON TABLE asymm.telemetry_state IS 'One row: what the last snapshot saw (dealloc, stats_reset), counts of resets/evictions, partition and rollup watermarks';
INSERT INTO asymm.telemetry_state DEFAULT VALUES;

-- Column order keeps the tuple at 64 data bytes without padding.
CREATE TABLE asymm.query_stats (
    sampled_at timestamptz NOT NULL,
    queryid    bigint NOT NULL,
    calls      bigint NOT NULL,
    total_ms   double precision NOT NULL,
    rows       bigint NOT NULL,
    shared_blks_hit  bigint NOT NULL,
    shared_blks_read bigint NOT NULL,
    dbid       oid NOT NULL,
    userid     oid NOT NULL
) PARTITION BY RANGE (sampled_at);
COMMENT ON TABLE asymm.query_stats IS 'Raw telemetry: per snapshot, the deltas of every statement whose pg_stat_statements counters moved (hourly partitions)';
CREATE INDEX query_stats_sampled_at ON asymm.query_stats USING brin (sampled_at);
CREATE TABLE asymm.query_stats_default PARTITION OF asymm.query_stats DEFAULT;
COMMENT ON TABLE asymm.query_stats_default IS 'Catches raw samples outside every hourly partition (should stay empty: partitions are created ahead)';

CREATE TABLE asymm.query_stats_minute (
    minute     timestamptz NOT NULL,
    queryid    bigint NOT NULL,
    calls      bigint NOT NULL,
    total_ms   double precision NOT NULL,
    rows       bigint NOT NULL,
    shared_blks_hit  bigint NOT NULL,
    shared_blks_read bigint NOT NULL,
    max_mean_ms double precision NOT NULL,
    samples    integer NOT NULL,
    dbid       oid NOT NULL,
    userid     oid NOT NULL
) PARTITION BY RANGE (minute);
COMMENT ON TABLE asymm.query_stats_minute IS 'Telemetry rolled up per minute and statement (daily partitions); max_mean_ms is the worst snapshot mean in the minute';
CREATE INDEX query_stats_minute_minute ON asymm.query_stats_minute USING brin (minute);
CREATE TABLE asymm.query_stats_minute_default PARTITION OF asymm.query_stats_minute DEFAULT;
COMMENT ON TABLE asymm.query_stats_minute_default IS 'Catches per-minute rows outside every daily partition (should stay empty)';

-- Creates the hourly raw partitions and daily minute partitions covering [now, now + ahead].
-- SECURITY DEFINER: a daemon role (asymm.grant_daemon) needs no CREATE on schema asymm; it can only
-- ever create these partitions, at most a month ahead.
CREATE FUNCTION asymm.ensure_telemetry_partitions(ahead interval DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    horizon timestamptz := now() + coalesce(ahead, asymm.setting('telemetry.partitions_ahead')::interval);
    lower_bound timestamptz;
    created integer := 0;
    part text;
BEGIN
    IF horizon IS NULL OR horizon < now() OR horizon > now() + interval '31 days' THEN
        RAISE EXCEPTION 'ahead must be between 0 and 31 days (got %)', coalesce(ahead::text, 'NULL')
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass an interval such as ''2 hours''.';
    END IF;
    lower_bound := date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    WHILE lower_bound <= horizon LOOP
        part := 'query_stats_' || to_char(lower_bound AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24');
        IF to_regclass(format('asymm.%I', part)) IS NULL THEN
            EXECUTE format('CREATE TABLE asymm.%I PARTITION OF asymm.query_stats FOR VALUES FROM (%L) TO (%L)',
                           part, lower_bound, lower_bound + interval '1 hour');
            created := created + 1;
        END IF;
        lower_bound := lower_bound + interval '1 hour';
    END LOOP;
    UPDATE asymm.telemetry_state SET raw_partitions_until = lower_bound,
           raw_floor = coalesce(raw_floor, date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC');

    lower_bound := date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    WHILE lower_bound <= horizon + interval '1 day' LOOP
        part := 'query_stats_minute_' || to_char(lower_bound AT TIME ZONE 'UTC', 'YYYYMMDD');
        IF to_regclass(format('asymm.%I', part)) IS NULL THEN
            EXECUTE format('CREATE TABLE asymm.%I PARTITION OF asymm.query_stats_minute FOR VALUES FROM (%L) TO (%L)',
                           part, lower_bound, lower_bound + interval '1 day');
            created := created + 1;
        END IF;
        lower_bound := lower_bound + interval '1 day';
    END LOOP;
    UPDATE asymm.telemetry_state SET minute_partitions_until = lower_bound;
    RETURN created;
END
$$;
COMMENT ON FUNCTION asymm.ensure_telemetry_partitions(interval) IS 'Create the telemetry history partitions (hourly raw, daily per-minute) up to now() + ahead; returns how many were created';

-- pg_stat_statements lives in whatever schema it was installed into; callers put that schema on
-- their own search_path (a function's SET search_path is restored when it returns).
CREATE FUNCTION asymm._pg_stat_statements_schema() RETURNS name
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nsp name;
BEGIN
    SELECT n.nspname INTO nsp FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pg_stat_statements';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the pg_stat_statements extension is not installed in this database'
              USING ERRCODE = 'undefined_object', HINT = 'CREATE EXTENSION pg_stat_statements (and preload it in shared_preload_libraries).';
    END IF;
    RETURN nsp;
END
$$;
COMMENT ON FUNCTION asymm._pg_stat_statements_schema() IS 'Internal: the schema pg_stat_statements is installed in (errors with a hint if it is not)';

-- The diff of pg_stat_statements against the last counters, in C (extension/src/telemetry.c):
-- a backend-local mirror of asymm.query_counters, tagged with the snapshot generation, makes a
-- tick cost little more than reading the view.  Only entries that changed are returned.
CREATE FUNCTION asymm._pgss_changes(pgss_schema name, generation bigint, forget boolean, only_db oid, skip_roles oid[])
RETURNS TABLE (dbid oid, userid oid, queryid bigint, toplevel boolean, status "char",
               calls bigint, total_ms double precision, rows bigint, shared_blks_hit bigint, shared_blks_read bigint,
               l_calls bigint, l_total_ms double precision, l_rows bigint, l_hit bigint, l_read bigint)
LANGUAGE C VOLATILE ROWS 500
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asymm_pgss_changes';
COMMENT ON FUNCTION asymm._pgss_changes(name, bigint, boolean, oid, oid[]) IS 'Internal (asymm.snapshot): pg_stat_statements entries that changed since generation: n new, m moved, r restarted, g gone';

-- The snapshot.  Delta rules, per entry (dbid, userid, queryid, toplevel):
--   * not seen before (new, or evicted/reset and re-created since): delta = current counters;
--   * any counter lower than last seen: the entry was reset or evicted and re-created between two
--     snapshots, so the current counters are all new: delta = current counters;
--   * otherwise delta = current - last (never negative, never counted twice).
--   * pg_stat_statements_reset() (stats_reset moved): every last-seen counter is forgotten first.
-- Entries that left pg_stat_statements are forgotten, so a re-created entry starts from zero.
-- The first snapshot only records the baseline (the counters hold history of unknown age).
CREATE FUNCTION asymm.snapshot() RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st asymm.telemetry_state;
    info_dealloc bigint;
    info_reset timestamptz;
    was_reset boolean := false;
    baseline boolean;
    skip_names text[];
    skip_roles oid[];
    only_db oid;
    pgss_schema name := asymm._pg_stat_statements_schema();
    taken timestamptz := now();
    result record;
BEGIN
    SELECT * INTO st FROM asymm.telemetry_state FOR UPDATE;
    IF st.raw_partitions_until IS NULL OR st.raw_partitions_until < taken + interval '10 minutes' THEN
        PERFORM asymm.ensure_telemetry_partitions();
    END IF;
    EXECUTE format('SELECT dealloc, stats_reset FROM %I.pg_stat_statements_info', pgss_schema)
       INTO info_dealloc, info_reset;
    baseline := st.last_snapshot_at IS NULL;
    IF NOT baseline AND info_reset IS DISTINCT FROM st.last_stats_reset THEN
        was_reset := true;
        DELETE FROM asymm.query_counters;
    END IF;
    skip_names := string_to_array(replace(asymm.setting('telemetry.exclude_roles'), ' ', ''), ',');
    SELECT coalesce(array_agg(r.oid), '{}') INTO skip_roles FROM pg_roles r WHERE r.rolname = ANY (skip_names);
    only_db := CASE WHEN asymm.setting('telemetry.all_databases')::boolean THEN NULL
                    ELSE (SELECT oid FROM pg_database WHERE datname = current_database()) END;

    WITH changed AS MATERIALIZED (
        SELECT * FROM asymm._pgss_changes(pgss_schema, st.snapshots, was_reset, only_db, skip_roles)
    ), kept AS (
        UPDATE asymm.query_counters l
           SET calls = c.calls, total_ms = c.total_ms, rows = c.rows, shared_blks_hit = c.shared_blks_hit,
               shared_blks_read = c.shared_blks_read, seen_at = taken
          FROM changed c
         WHERE c.status IN ('m', 'r')
           AND l.dbid = c.dbid AND l.userid = c.userid AND l.queryid = c.queryid AND l.toplevel = c.toplevel
        RETURNING 1
    ), forgotten AS (
        DELETE FROM asymm.query_counters l
         USING changed c
         WHERE c.status = 'g'
           AND l.dbid = c.dbid AND l.userid = c.userid AND l.queryid = c.queryid AND l.toplevel = c.toplevel
        RETURNING 1
    ), added AS (
        INSERT INTO asymm.query_counters
               (dbid, userid, queryid, toplevel, calls, total_ms, rows, shared_blks_hit, shared_blks_read, seen_at)
        SELECT c.dbid, c.userid, c.queryid, c.toplevel, c.calls, c.total_ms, c.rows, c.shared_blks_hit,
               c.shared_blks_read, taken
          FROM changed c
         WHERE c.status = 'n'
        RETURNING 1
    ), written AS (
        INSERT INTO asymm.query_stats (sampled_at, queryid, calls, total_ms, rows, shared_blks_hit, shared_blks_read, dbid, userid)
        SELECT taken, c.queryid,
               sum(CASE WHEN c.status = 'm' THEN c.calls - c.l_calls ELSE c.calls END)::bigint,
               sum(CASE WHEN c.status = 'm' THEN c.total_ms - c.l_total_ms ELSE c.total_ms END),
               sum(CASE WHEN c.status = 'm' THEN c.rows - c.l_rows ELSE c.rows END)::bigint,
               sum(CASE WHEN c.status = 'm' THEN c.shared_blks_hit - c.l_hit ELSE c.shared_blks_hit END)::bigint,
               sum(CASE WHEN c.status = 'm' THEN c.shared_blks_read - c.l_read ELSE c.shared_blks_read END)::bigint,
               c.dbid, c.userid
          FROM changed c
         WHERE NOT baseline AND c.status <> 'g'
         GROUP BY c.dbid, c.userid, c.queryid
        HAVING bool_or(c.calls > coalesce(c.l_calls, 0) OR c.status IN ('n', 'r') AND c.calls > 0
                       OR c.total_ms > coalesce(c.l_total_ms, 0))
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM written) AS written,
           (SELECT count(*) FROM kept) + (SELECT count(*) FROM added) AS moved,
           (SELECT count(*) FROM added) AS new_entries,
           (SELECT count(*) FROM changed WHERE status = 'r') AS restarted,
           (SELECT count(*) FROM forgotten) AS gone
      INTO result;

    -- Texts only when something new appeared: reading them costs a file read per call.
    IF result.new_entries > 0 THEN
        EXECUTE format($q$
            INSERT INTO asymm.queries AS q (dbid, userid, queryid, query, own)
            SELECT s.dbid, s.userid, s.queryid, s.query, coalesce(s.query ~* '\masymm\.', false)
              FROM %I.pg_stat_statements(true) s
             WHERE s.queryid IS NOT NULL AND ($1 IS NULL OR s.dbid = $1)
               AND NOT EXISTS (SELECT 1 FROM asymm.queries e
                                WHERE e.dbid = s.dbid AND e.userid = s.userid AND e.queryid = s.queryid)
            ON CONFLICT DO NOTHING $q$, pgss_schema) USING only_db;
    END IF;

    UPDATE asymm.telemetry_state
       SET last_snapshot_at = taken, last_dealloc = info_dealloc, last_stats_reset = info_reset,
           snapshots = snapshots + 1,
           entries = CASE WHEN was_reset THEN 0 ELSE coalesce(entries, 0) END + result.new_entries - result.gone,
           resets_seen = resets_seen + was_reset::int,
           deallocs_seen = deallocs_seen + CASE WHEN st.last_dealloc IS NOT NULL AND info_dealloc > st.last_dealloc
                                                THEN info_dealloc - st.last_dealloc ELSE 0 END;
    RETURN jsonb_build_object(
        'sampled_at', taken, 'baseline', baseline, 'reset', was_reset,
        'dealloc', coalesce(info_dealloc - st.last_dealloc, 0),
        'written', result.written, 'moved', result.moved, 'new_entries', result.new_entries,
        'restarted', result.restarted, 'gone', result.gone);
END
$$;
COMMENT ON FUNCTION asymm.snapshot() IS 'Append the deltas of every pg_stat_statements entry that moved since the last call to asymm.query_stats; handles resets and evictions';

-- Rolls closed minutes of raw deltas into asymm.query_stats_minute (at most a batch per call),
-- then drops whole partitions older than the retention windows.  Never drops raw data that is not
-- rolled up yet.
-- SECURITY DEFINER for the same reason as ensure_telemetry_partitions: it drops only asymm's own
-- history partitions.
CREATE FUNCTION asymm.telemetry_retention(max_minutes integer DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st asymm.telemetry_state;
    batch integer := coalesce(max_minutes, asymm.setting('telemetry.rollup_batch_minutes')::integer);
    closed timestamptz := date_trunc('minute', now());
    rollup_from timestamptz;
    rollup_to timestamptz;
    rolled bigint := 0;
    raw_cut timestamptz := now() - asymm.setting('telemetry.raw_retention')::interval;
    minute_cut timestamptz := now() - asymm.setting('telemetry.rollup_retention')::interval;
    dropped text[] := '{}';
    part record;
BEGIN
    IF batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'max_minutes must be at least 1 (got %)', batch
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass a positive number of minutes, or NULL for the setting telemetry.rollup_batch_minutes.';
    END IF;
    PERFORM asymm.ensure_telemetry_partitions();
    SELECT * INTO st FROM asymm.telemetry_state FOR UPDATE;
    rollup_from := coalesce(st.rolled_up_until, date_trunc('minute', st.raw_floor), closed);
    rollup_to := least(closed, rollup_from + make_interval(mins => batch));
    IF rollup_to > rollup_from THEN
        INSERT INTO asymm.query_stats_minute
               (minute, queryid, calls, total_ms, rows, shared_blks_hit, shared_blks_read, max_mean_ms, samples, dbid, userid)
        SELECT date_trunc('minute', s.sampled_at), s.queryid, sum(s.calls), sum(s.total_ms), sum(s.rows),
               sum(s.shared_blks_hit), sum(s.shared_blks_read),
               coalesce(max(s.total_ms / nullif(s.calls, 0)), 0), count(*), s.dbid, s.userid
          FROM asymm.query_stats s
         WHERE s.sampled_at >= rollup_from AND s.sampled_at < rollup_to
         GROUP BY 1, s.dbid, s.userid, s.queryid;
        GET DIAGNOSTICS rolled = ROW_COUNT;
        UPDATE asymm.telemetry_state SET rolled_up_until = rollup_to;
        st.rolled_up_until := rollup_to;
    END IF;

    FOR part IN
        SELECT c.oid::regclass AS rel, c.relname, p.parent,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound
          FROM (VALUES ('asymm.query_stats'::regclass), ('asymm.query_stats_minute'::regclass)) AS p(parent)
          JOIN pg_inherits i ON i.inhparent = p.parent
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE NOT (pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT')
         ORDER BY upper_bound
    LOOP
        IF (part.parent = 'asymm.query_stats'::regclass AND part.upper_bound <= raw_cut
                AND part.upper_bound <= coalesce(st.rolled_up_until, '-infinity'))
           OR (part.parent = 'asymm.query_stats_minute'::regclass AND part.upper_bound <= minute_cut) THEN
            EXECUTE format('DROP TABLE %s', part.rel);
            dropped := dropped || part.relname::text;
            IF part.parent = 'asymm.query_stats'::regclass THEN
                UPDATE asymm.telemetry_state SET raw_floor = greatest(raw_floor, part.upper_bound);
            END IF;
        END IF;
    END LOOP;
    RETURN jsonb_build_object('rolled_up_rows', rolled, 'rolled_up_until', st.rolled_up_until,
                              'dropped_partitions', to_jsonb(dropped));
END
$$;
COMMENT ON FUNCTION asymm.telemetry_retention(integer) IS 'Roll raw telemetry up per minute (bounded batch), then drop history partitions past their retention (whole partitions)';

-- History over a window from the finest data available: raw deltas from raw_floor on, per-minute
-- rollups before it.  Own statements (asymm's) are left out.
CREATE FUNCTION asymm.query_history(since interval DEFAULT '15 minutes')
RETURNS TABLE (sampled_at timestamptz, dbid oid, userid oid, queryid bigint, calls bigint,
               total_ms double precision, mean_ms double precision, rows bigint,
               shared_blks_hit bigint, shared_blks_read bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH bounds AS (
        SELECT now() - since AS since_at,
               coalesce((SELECT raw_floor FROM asymm.telemetry_state), '-infinity'::timestamptz) AS raw_floor
    )
    SELECT s.sampled_at, s.dbid, s.userid, s.queryid, s.calls, s.total_ms, s.total_ms / nullif(s.calls, 0),
           s.rows, s.shared_blks_hit, s.shared_blks_read
      FROM asymm.query_stats s, bounds b
     WHERE s.sampled_at >= greatest(b.since_at, b.raw_floor)
       AND NOT EXISTS (SELECT 1 FROM asymm.queries q
                        WHERE q.own AND q.dbid = s.dbid AND q.userid = s.userid AND q.queryid = s.queryid)
    UNION ALL
    SELECT m.minute, m.dbid, m.userid, m.queryid, m.calls, m.total_ms, m.total_ms / nullif(m.calls, 0),
           m.rows, m.shared_blks_hit, m.shared_blks_read
      FROM asymm.query_stats_minute m, bounds b
     WHERE m.minute >= b.since_at AND m.minute < b.raw_floor
       AND NOT EXISTS (SELECT 1 FROM asymm.queries q
                        WHERE q.own AND q.dbid = m.dbid AND q.userid = m.userid AND q.queryid = m.queryid)
$$;
COMMENT ON FUNCTION asymm.query_history(interval) IS 'Telemetry samples of the last `since`: raw snapshot deltas, per-minute rollups where raw data was dropped; asymm''s own statements excluded';

CREATE FUNCTION asymm.query_report(since interval DEFAULT '15 minutes')
RETURNS TABLE (queryid bigint, query text, calls bigint, calls_per_s double precision,
               total_ms double precision, mean_ms double precision, max_sample_mean_ms double precision,
               rows bigint, shared_blks_hit bigint, shared_blks_read bigint, hit_ratio double precision)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT h.queryid, max(q.query), sum(h.calls)::bigint,
           sum(h.calls) / greatest(extract(epoch FROM since), 1e-9)::double precision,
           sum(h.total_ms), sum(h.total_ms) / nullif(sum(h.calls), 0), max(h.mean_ms),
           sum(h.rows)::bigint, sum(h.shared_blks_hit)::bigint, sum(h.shared_blks_read)::bigint,
           sum(h.shared_blks_hit)::double precision / nullif(sum(h.shared_blks_hit) + sum(h.shared_blks_read), 0)
      FROM asymm.query_history(since) h
      LEFT JOIN asymm.queries q ON q.dbid = h.dbid AND q.userid = h.userid AND q.queryid = h.queryid
     GROUP BY h.dbid, h.userid, h.queryid
     ORDER BY sum(h.total_ms) DESC, h.queryid
$$;
COMMENT ON FUNCTION asymm.query_report(interval) IS 'Per statement over the last `since`: calls, throughput (calls/s), total and mean latency, worst snapshot mean, rows and buffer hits';

-- A call counts as slow when the mean latency of its snapshot interval (per statement) is at or
-- above the threshold: snapshots see deltas, not single calls, so this is exact for statements
-- that ran once per interval and an estimate otherwise.
CREATE FUNCTION asymm.slow_queries(threshold_ms double precision DEFAULT 100, since interval DEFAULT '1 hour')
RETURNS TABLE (queryid bigint, query text, slow_calls bigint, calls bigint, mean_ms double precision,
               max_sample_mean_ms double precision, total_ms double precision, last_slow_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF threshold_ms IS NULL OR threshold_ms < 0 THEN
        RAISE EXCEPTION 'threshold_ms must be a non-negative number of milliseconds (got %)', threshold_ms
              USING ERRCODE = 'invalid_parameter_value', HINT = 'For example asymm.slow_queries(100, ''1 hour'').';
    END IF;
    RETURN QUERY
    SELECT h.queryid, max(q.query),
           coalesce(sum(h.calls) FILTER (WHERE h.mean_ms >= threshold_ms), 0)::bigint,
           sum(h.calls)::bigint, sum(h.total_ms) / nullif(sum(h.calls), 0), max(h.mean_ms), sum(h.total_ms),
           max(h.sampled_at) FILTER (WHERE h.mean_ms >= threshold_ms)
      FROM asymm.query_history(since) h
      LEFT JOIN asymm.queries q ON q.dbid = h.dbid AND q.userid = h.userid AND q.queryid = h.queryid
     GROUP BY h.dbid, h.userid, h.queryid
    HAVING max(h.mean_ms) >= threshold_ms
     ORDER BY 3 DESC, 7 DESC, 1;
END
$$;
COMMENT ON FUNCTION asymm.slow_queries(double precision, interval) IS 'Statements with calls at or above threshold_ms (by snapshot-interval mean) during the last `since`';

-- smoothness(since) = (1 - slow_calls / calls) * (1 - spike_calls / calls), in [0, 1].
--   slow_calls:  calls in samples whose mean latency >= telemetry.slow_threshold_ms;
--   spike_calls: calls in the other samples whose mean latency exceeds telemetry.spike_factor times
--                the median sample mean of the same statement in the window, and is at least
--                telemetry.spike_min_ms.
-- 1.0 for a workload without slow calls or spikes (and for an empty window: nothing was rough).
CREATE FUNCTION asymm.smoothness(since interval DEFAULT '15 minutes') RETURNS double precision
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH params AS (
        SELECT asymm.setting('telemetry.slow_threshold_ms')::double precision AS slow_ms,
               asymm.setting('telemetry.spike_factor')::double precision AS factor,
               asymm.setting('telemetry.spike_min_ms')::double precision AS floor_ms
    ), h AS (
        SELECT * FROM asymm.query_history(since) WHERE calls > 0
    ), med AS (
        SELECT dbid, userid, queryid, percentile_cont(0.5) WITHIN GROUP (ORDER BY mean_ms) AS median_ms
          FROM h GROUP BY dbid, userid, queryid
    ), tally AS (
        SELECT sum(h.calls)::double precision AS calls,
               coalesce(sum(h.calls) FILTER (WHERE h.mean_ms >= p.slow_ms), 0)::double precision AS slow,
               coalesce(sum(h.calls) FILTER (WHERE h.mean_ms < p.slow_ms AND h.mean_ms >= p.floor_ms
                                              AND h.mean_ms > p.factor * m.median_ms), 0)::double precision AS spikes
          FROM h JOIN med m USING (dbid, userid, queryid) CROSS JOIN params p
    )
    SELECT CASE WHEN coalesce(calls, 0) = 0 THEN 1.0
                ELSE greatest(0.0, least(1.0, (1 - slow / calls) * (1 - spikes / calls))) END
      FROM tally
$$;
COMMENT ON FUNCTION asymm.smoothness(interval) IS 'Workload smoothness in [0,1]: (1 - slow calls/calls) * (1 - latency-spike calls/calls) over the last `since`; 1.0 = no slow calls, no spikes';

-- ===== sql/21_state_sonar.sql =====
-- asymm: since 0.2.0
-- State Sonar: duplicate rows (by SHA-256 of their values), per-table state report, index health.

-- The SQL expression that hashes one row's chosen columns.  ROW(...)::text is the record's text
-- form, which tells NULL from the empty string; SHA-256 of it is the row's "state".
CREATE FUNCTION asymm._row_state_columns(rel regclass, columns text[] DEFAULT NULL) RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    available text[];
    chosen text[];
    missing text[];
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION 'table must not be NULL' USING ERRCODE = 'null_value_not_allowed',
              HINT = 'Pass a table, for example ''public.orders''::regclass.';
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = rel) NOT IN ('r', 'p', 'm', 'f', 'v') THEN
        RAISE EXCEPTION '"%" is not a table', rel USING ERRCODE = 'wrong_object_type',
              HINT = 'Pass a table, partitioned table, materialized view, foreign table or view.';
    END IF;
    SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO available
      FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped;
    IF columns IS NULL THEN
        -- all non-key columns: everything except the primary key
        SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO chosen
          FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
           AND NOT EXISTS (SELECT 1 FROM pg_index i
                            WHERE i.indrelid = rel AND i.indisprimary AND a.attnum = ANY (i.indkey));
    ELSE
        SELECT array_agg(c) INTO missing FROM unnest(columns) AS c WHERE c IS NULL OR NOT c = ANY (available);
        IF missing IS NOT NULL THEN
            RAISE EXCEPTION 'columns: % not in table %', asymm._shown(array_to_string(missing, ', ', 'NULL'), ''), rel
                  USING ERRCODE = 'undefined_column',
                        HINT = format('Columns of %s: %s (NULL means all non-key columns).', rel, array_to_string(available, ', '));
        END IF;
        chosen := columns;
    END IF;
    IF coalesce(cardinality(chosen), 0) = 0 THEN
        RAISE EXCEPTION 'no columns to compare in %', rel USING ERRCODE = 'invalid_parameter_value',
              HINT = format('Name the columns explicitly; columns of %s: %s.', rel, coalesce(array_to_string(available, ', '), 'none'));
    END IF;
    RETURN chosen;
END
$$;
COMMENT ON FUNCTION asymm._row_state_columns(regclass, text[]) IS 'Internal: the columns that make up a row''s state (given, checked, or all non-primary-key columns)';

-- Reading a user table runs its owner's code only where PostgreSQL puts it on purpose (index
-- expressions as the owner); never with the caller's rights: row_security = off makes a table whose
-- row-level security applies to the caller an error before any policy runs, and the values are
-- shown through their types' output functions (format('%s')), never through a cast to text or json,
-- which any type owner can define.
CREATE FUNCTION asymm.find_duplicates(rel regclass, columns text[] DEFAULT NULL)
RETURNS TABLE (row_hash text, copies bigint, ctids tid[], row_values jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
    chosen text[] := asymm._row_state_columns(rel, columns);
    row_expr text;
    json_expr text;
BEGIN
    PERFORM asymm._refuse_row_security(rel);
    -- A built-in type becomes JSON as usual; a type some role created (its oid is past the built-in
    -- range) through its output function, since its owner may have defined a cast to json.
    SELECT string_agg(format('%I', c), ', ' ORDER BY n),
           string_agg(CASE WHEN a.atttypid < 16384 THEN format('%L, %I', c, c)
                           ELSE format('%L, CASE WHEN %I IS NULL THEN NULL ELSE format(''%%s'', %I) END', c, c, c) END,
                      ', ' ORDER BY n)
      INTO row_expr, json_expr
      FROM unnest(chosen) WITH ORDINALITY AS u(c, n)
      JOIN pg_attribute a ON a.attrelid = rel AND a.attname = u.c;
    RETURN QUERY EXECUTE format(
        'SELECT encode(sha256(convert_to(ROW(%1$s)::text, ''UTF8'')), ''hex''), count(*), '
        '       array_agg(ctid ORDER BY ctid), (array_agg(jsonb_build_object(%2$s) ORDER BY ctid))[1] '
        '  FROM %3$s GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC, 1',
        row_expr, json_expr, rel);
END
$$;
COMMENT ON FUNCTION asymm.find_duplicates(regclass, text[]) IS 'Groups of rows whose chosen columns (default: all non-key columns) are equal, by SHA-256 of the values; with copies, ctids and the values';

CREATE TABLE asymm.state_history (
    relid        oid NOT NULL,
    relation     text NOT NULL,
    measured_at  timestamptz NOT NULL DEFAULT now(),
    row_count    bigint NOT NULL,
    distinct_states bigint NOT NULL,
    PRIMARY KEY (relid, measured_at)
);
COMMENT ON TABLE asymm.state_history IS 'Per table, the row count and number of distinct row states at each asymm.record_state() call';

-- A table whose row-level security applies to the caller: its policies are its owner's code.
CREATE FUNCTION asymm._refuse_row_security(rel regclass) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF row_security_active(rel) THEN
        RAISE EXCEPTION 'table % has row-level security that applies to %: asymm does not run its policies with your rights', rel, current_user
              USING ERRCODE = 'insufficient_privilege',
                    HINT = 'Run it as the table''s owner or as a role with BYPASSRLS.';
    END IF;
END
$$;
COMMENT ON FUNCTION asymm._refuse_row_security(regclass) IS 'Error when the table''s row-level security applies to the current role (its policies would run with that role''s rights); internal';

CREATE FUNCTION asymm.state_report(tables regclass[] DEFAULT NULL)
RETURNS TABLE (relation text, row_count bigint, distinct_states bigint, duplicate_rows bigint,
               duplicate_fraction double precision, previous_distinct_states bigint,
               previous_measured_at timestamptz, distinct_growth bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
    max_rows bigint := asymm.setting('telemetry.state_max_rows')::bigint;
    t record;
    row_expr text;
    n bigint;
    d bigint;
BEGIN
    FOR t IN
        SELECT c.oid::regclass AS rel, c.oid
          FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
         WHERE (tables IS NULL AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                AND ns.nspname NOT IN ('pg_catalog', 'information_schema', 'asymm')
                AND ns.nspname !~ '^pg_(toast|temp)' AND c.reltuples <= max_rows
                AND has_table_privilege(c.oid, 'SELECT') AND NOT row_security_active(c.oid))
            OR c.oid = ANY (tables)
         ORDER BY ns.nspname, c.relname
    LOOP
        PERFORM asymm._refuse_row_security(t.rel);
        SELECT string_agg(format('%I', col), ', ') INTO row_expr
          FROM unnest(asymm._row_state_columns(t.rel)) AS col;
        EXECUTE format('SELECT count(*), count(DISTINCT sha256(convert_to(ROW(%s)::text, ''UTF8''))) FROM %s',
                       row_expr, t.rel) INTO n, d;
        relation := t.rel::text;
        row_count := n;
        distinct_states := d;
        duplicate_rows := n - d;
        duplicate_fraction := CASE WHEN n = 0 THEN 0 ELSE (n - d)::double precision / n END;
        SELECT h.distinct_states, h.measured_at INTO previous_distinct_states, previous_measured_at
          FROM asymm.state_history h WHERE h.relid = t.oid ORDER BY h.measured_at DESC LIMIT 1;
        IF NOT FOUND THEN
            previous_distinct_states := NULL;
            previous_measured_at := NULL;
        END IF;
        distinct_growth := d - previous_distinct_states;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION asymm.state_report(regclass[]) IS 'Per table (default: every user table up to telemetry.state_max_rows rows): rows, distinct row states, duplicate fraction and growth of distinct states since the last asymm.record_state()';

CREATE FUNCTION asymm.record_state(tables regclass[] DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    recorded integer;
BEGIN
    INSERT INTO asymm.state_history (relid, relation, row_count, distinct_states)
    SELECT r.relation::regclass::oid, r.relation, r.row_count, r.distinct_states
      FROM asymm.state_report(tables) r
    ON CONFLICT (relid, measured_at) DO UPDATE SET row_count = excluded.row_count,
                                                   distinct_states = excluded.distinct_states;
    GET DIAGNOSTICS recorded = ROW_COUNT;
    RETURN recorded;
END
$$;
COMMENT ON FUNCTION asymm.record_state(regclass[]) IS 'Store the current state_report() counts in asymm.state_history, the base of distinct_growth';

-- Index health.  Categories:
--   invalid           indisvalid is false (typically a failed CREATE INDEX CONCURRENTLY);
--   unused            no scan since the statistics were reset, not unique, not backing a constraint
--                     (primary key, unique, exclusion, or the target of a foreign key);
--   duplicate         same table, access method, columns, operator classes, collations, options,
--                     expressions and predicate as another index that is kept;
--   prefix_redundant  a btree whose key columns are a leading prefix of another btree's keys on the
--                     same table (same predicate, no expressions), not unique, no constraint.
-- Indexes of partitioned tables and their partitions are left out (they are dropped together).
CREATE FUNCTION asymm.index_health()
RETURNS TABLE (category text, schema_name name, table_name name, index_name name,
               index_size_bytes bigint, index_size text, detail text, drop_statement text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH idx AS (
        SELECT i.indexrelid, i.indrelid, ns.nspname, t.relname AS table_name, c.relname AS index_name,
               am.amname, i.indisvalid, i.indisunique, i.indnkeyatts,
               string_to_array(i.indkey::text, ' ')::int2[] AS keys,
               string_to_array(i.indclass::text, ' ')::oid[] AS classes,
               string_to_array(i.indcollation::text, ' ')::oid[] AS collations,
               string_to_array(i.indoption::text, ' ')::int2[] AS options,
               pg_get_expr(i.indexprs, i.indrelid) AS exprs,
               pg_get_expr(i.indpred, i.indrelid) AS pred,
               EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) AS backs_constraint,
               coalesce(s.idx_scan, 0) AS scans,
               pg_relation_size(i.indexrelid) AS size_bytes
          FROM pg_index i
          JOIN pg_class c ON c.oid = i.indexrelid
          JOIN pg_class t ON t.oid = i.indrelid
          JOIN pg_namespace ns ON ns.oid = c.relnamespace
          JOIN pg_am am ON am.oid = c.relam
          LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = i.indexrelid
         WHERE c.relkind = 'i' AND NOT c.relispartition AND t.relkind IN ('r', 'm')
           AND ns.nspname NOT IN ('pg_catalog', 'information_schema', 'asymm')
           AND ns.nspname !~ '^pg_(toast|temp)'
    ), ranked AS (
        SELECT x.*,
               first_value(x.index_name) OVER w AS keeper_name,
               first_value(x.indisunique) OVER w AS keeper_unique,
               row_number() OVER w AS rank_in_group
          FROM idx x
         WHERE x.indisvalid
        WINDOW w AS (PARTITION BY x.indrelid, x.amname, x.keys, x.classes, x.collations, x.options,
                                  x.exprs, x.pred, x.indnkeyatts
                     ORDER BY x.backs_constraint DESC, x.indisunique DESC, x.indexrelid)
    ), found AS (
        SELECT 'invalid' AS category, x.nspname, x.table_name, x.index_name, x.size_bytes,
               'a failed or unfinished CREATE INDEX: maintained on every write, never used by queries' AS detail
          FROM idx x WHERE NOT x.indisvalid
        UNION ALL
        SELECT 'unused', x.nspname, x.table_name, x.index_name, x.size_bytes,
               format('%s scans since the statistics were reset; backs no constraint', x.scans)
          FROM idx x
         WHERE x.indisvalid AND x.scans = 0 AND NOT x.indisunique AND NOT x.backs_constraint
        UNION ALL
        SELECT 'duplicate', r.nspname, r.table_name, r.index_name, r.size_bytes,
               format('same definition as %I, which is kept', r.keeper_name)
          FROM ranked r
         WHERE r.rank_in_group > 1 AND NOT r.backs_constraint AND (NOT r.indisunique OR r.keeper_unique)
        UNION ALL
        SELECT 'prefix_redundant', a.nspname, a.table_name, a.index_name, a.size_bytes,
               format('its key columns are a leading prefix of %I', b.index_name)
          FROM idx a
          JOIN LATERAL (
                SELECT b.index_name FROM idx b
                 WHERE b.indrelid = a.indrelid AND b.indexrelid <> a.indexrelid AND b.amname = 'btree'
                   AND b.exprs IS NULL AND b.pred IS NOT DISTINCT FROM a.pred AND b.indisvalid
                   AND b.indnkeyatts > a.indnkeyatts
                   AND b.keys[1:a.indnkeyatts] = a.keys[1:a.indnkeyatts]
                   AND b.classes[1:a.indnkeyatts] = a.classes[1:a.indnkeyatts]
                   AND b.collations[1:a.indnkeyatts] = a.collations[1:a.indnkeyatts]
                   AND b.options[1:a.indnkeyatts] = a.options[1:a.indnkeyatts]
                 ORDER BY b.indnkeyatts, b.index_name LIMIT 1) b ON true
         WHERE a.amname = 'btree' AND a.exprs IS NULL AND a.indisvalid
           AND NOT a.indisunique AND NOT a.backs_constraint
    )
    SELECT f.category, f.nspname, f.table_name, f.index_name, f.size_bytes, pg_size_pretty(f.size_bytes),
           f.detail, format('DROP INDEX CONCURRENTLY %I.%I;', f.nspname, f.index_name)
      FROM found f
     ORDER BY f.category, f.nspname, f.table_name, f.index_name
$$;
COMMENT ON FUNCTION asymm.index_health() IS 'Invalid, unused (no scans, no constraint), duplicate and prefix-redundant indexes, each with its size and a DROP INDEX CONCURRENTLY statement';

-- ===== sql/30_advisor.sql =====
-- asymm: since 0.2.0
-- Index advisor (SPEC section 4): suggestions, what was applied, and whether it paid off.
-- The advisor itself runs in the control plane (control/asymm/advisor/); the database keeps its
-- results so that SQL users, the dashboard and a later `asymm verify` can read them.

INSERT INTO asymm.setting_defaults (name, default_value, value_type, min_value, max_value, allowed_values, pattern, description) VALUES
    ('advisor.enabled', 'false', 'boolean', NULL, NULL, NULL, NULL, 'Whether the daemon runs the index advisor on a schedule (suggest only unless advisor.auto_apply)'),
    ('advisor.every', '1 hour', 'interval', '1 min', '30 days', NULL, NULL, 'How often the daemon runs the index advisor when advisor.enabled'),
    ('advisor.auto_apply', 'false', 'boolean', NULL, NULL, NULL, NULL, 'Whether the scheduled advisor also creates its indexes (CREATE INDEX CONCURRENTLY)'),
    ('advisor.budget_mb', '1024', 'integer', '1', '16777216', NULL, NULL, 'Storage budget for the indexes of one advisor run, in MB of HypoPG''s (pessimistic) estimate'),
    ('advisor.max_indexes', '10', 'integer', '1', '1000', NULL, NULL, 'At most this many indexes per advisor run'),
    ('advisor.min_gain_fraction', '0.01', 'number', '0', '1', NULL, NULL, 'The advisor stops when the best next index saves less than this fraction of the workload cost'),
    ('advisor.write_cost_per_row', '0.5', 'number', '0', '1000000', NULL, NULL, 'Maintenance penalty per written row (insert, non-HOT update, delete) and index, in planner cost units'),
    ('advisor.max_write_regression', '0.10', 'number', '-1', '1000', NULL, NULL, 'Refuse an index that makes an INSERT or UPDATE of the workload more than this fraction costlier per call (modelled); a negative value turns the bound off'),
    ('advisor.lock_timeout', '5 s', 'interval', '1 ms', '1 hour', NULL, '^[0-9]{1,9}(\.[0-9]{1,6})? ?(us|ms|s|min|h|d)$', 'lock_timeout for CREATE/DROP INDEX CONCURRENTLY when applying or rolling back'),
    ('advisor.verify_min_calls', '20', 'integer', '1', '1000000000', NULL, NULL, 'asymm verify judges an index only after this many calls of its queries since it was applied'),
    ('advisor.verify_min_improvement', '0.05', 'number', '0', '1', NULL, NULL, 'An index pays off when the mean latency of its queries fell by at least this fraction');

CREATE TABLE asymm.index_suggestions (
    suggestion_id     bigserial PRIMARY KEY,
    run_id            uuid NOT NULL,
    suggested_at      timestamptz NOT NULL DEFAULT now(),
    table_name        text NOT NULL,
    columns           text[] NOT NULL,
    method            text NOT NULL DEFAULT 'btree',
    index_name        text NOT NULL,
    definition        text NOT NULL,
    estimated_benefit double precision NOT NULL,
    size_bytes        bigint NOT NULL,
    queryids          bigint[] NOT NULL DEFAULT '{}',
    status            text NOT NULL DEFAULT 'suggested'
                      CHECK (status IN ('suggested', 'applied', 'failed', 'rolled_back')),
    applied_at        timestamptz,
    error             text,
    verified_at       timestamptz,
    verdict           text CHECK (verdict IN ('paid_off', 'no_gain', 'insufficient_data')),
    verdict_detail    jsonb
);
COMMENT ON TABLE asymm.index_suggestions IS 'Index advisor results: one row per suggested index, with what was applied and the verdict of asymm verify; kept by pg_dump';
COMMENT ON COLUMN asymm.index_suggestions.estimated_benefit IS 'Σ calls × planner cost saved, minus the write-maintenance penalty (planner cost units)';
COMMENT ON COLUMN asymm.index_suggestions.size_bytes IS 'HypoPG''s size estimate: pessimistic, the real index is usually smaller';
COMMENT ON COLUMN asymm.index_suggestions.status IS 'suggested, applied (index created), failed (creation failed, leftovers dropped), rolled_back (dropped by asymm verify --rollback)';
COMMENT ON COLUMN asymm.index_suggestions.verdict IS 'asymm verify: paid_off, no_gain, or insufficient_data (too few calls since it was applied)';
CREATE INDEX index_suggestions_status_idx ON asymm.index_suggestions (status, suggested_at);
SELECT pg_catalog.pg_extension_config_dump('asymm.index_suggestions', '');
SELECT pg_catalog.pg_extension_config_dump('asymm.index_suggestions_suggestion_id_seq', '');

-- The "before" side of asymm verify: pg_stat_statements counters of each affected query at the
-- moment its index was applied.  Verify compares the mean latency of the calls made since then
-- with the mean before (or, when asymm.query_stats history exists, with the history's window).
CREATE TABLE asymm.index_suggestion_baselines (
    suggestion_id   bigint NOT NULL REFERENCES asymm.index_suggestions ON DELETE CASCADE,
    queryid         bigint NOT NULL,
    calls           bigint NOT NULL,
    total_exec_time double precision NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (suggestion_id, queryid)
);
COMMENT ON TABLE asymm.index_suggestion_baselines IS 'pg_stat_statements counters (calls, total_exec_time in ms) of each query an applied index was meant to speed up, at apply time';
SELECT pg_catalog.pg_extension_config_dump('asymm.index_suggestion_baselines', '');

CREATE VIEW asymm.index_suggestions_latest AS
SELECT s.*
  FROM asymm.index_suggestions s
 WHERE s.run_id = (SELECT run_id FROM asymm.index_suggestions ORDER BY suggested_at DESC, suggestion_id DESC LIMIT 1)
    OR s.status <> 'suggested';
COMMENT ON VIEW asymm.index_suggestions_latest IS 'The suggestions of the latest advisor run, plus every suggestion that was applied, failed or rolled back';

-- ===== sql/40_sync.sql =====
-- asymm: since 0.2.0
-- Redis sync (SPEC section 5): change capture into a thin outbox, consumed by the daemon.
--
-- Design, in short (control/asymm/sync/__init__.py has the full argument):
-- * capture: per tracked table, statement-level AFTER triggers with transition tables write ONE
--   outbox row per statement (table, op, xid, keys text[]), so a 200k-row INSERT ... SELECT adds
--   one row holding an array of keys instead of 200k rows; one C function (asymm._sync_capture,
--   extension/src/sync.c) serves every tracked table;
-- * the outbox row carries pg_current_xact_id(); the daemon only consumes rows whose xid is below
--   the xmin of its snapshot (every such transaction has finished, so no row below it can still
--   appear), which is what makes an out-of-commit-order transaction safe;
-- * the outbox is LIST-partitioned into two slots that alternate with time; a slot whose rows are
--   all consumed is TRUNCATEd (no dead tuples, no vacuum debt) instead of DELETEd.

INSERT INTO asymm.setting_defaults (name, default_value, value_type, min_value, max_value, allowed_values, pattern, description) VALUES
    ('sync.sensitive_mode', 'drop', 'text', NULL, NULL, '{drop,hmac}', NULL,
     'What happens to columns named sensitive in asymm.track(): drop (never sent) or hmac (keyed HMAC-SHA256, key from ASYMM_SYNC_HMAC_KEY)'),
    ('sync.batch_rows', '2000', 'integer', '1', '100000', NULL, NULL, 'Outbox rows the sync worker reads per batch'),
    ('sync.backfill_chunk', '5000', 'integer', '1', '1000000', NULL, NULL, 'Rows per backfill chunk (each chunk is read in its own snapshot)'),
    ('sync.key_prefix', 'asymm', 'text', NULL, NULL, NULL, '^[A-Za-z0-9_.:/@-]{1,64}$',
     'Prefix of every Redis key the sync writes: <prefix>:{schema.table}:<key> (%, { and } in names percent-encoded, and . in the schema); give each database syncing into a shared Redis its own (e.g. asymm:<dbname>); no braces'),
    ('sync.tombstone_ttl', '1 day', 'interval', '1 s', '30 days', NULL, NULL, 'How long a delete tombstone stays in Redis (must outlive any in-flight read-through fill)'),
    ('sync.busy_interval', '10 ms', 'interval', '0', '10 s', NULL, NULL,
     'While changes keep coming, sync passes start this far apart (at most one pulse): shorter lowers the commit-to-Redis lag, longer spends less CPU per synced key (a pass has a fixed cost)');

-- Tracked tables.  A config table (pg_dump keeps it); regclass dumps as a name, so it survives a
-- dump/restore even though OIDs change.
CREATE TABLE asymm.sync_tables (
    rel             regclass PRIMARY KEY,
    key_columns     text[] NOT NULL,
    key_types       text[] NOT NULL,
    sensitive       text[] NOT NULL DEFAULT '{}',
    tracked_at      timestamptz NOT NULL DEFAULT now(),
    backfill_state  text NOT NULL DEFAULT 'pending' CHECK (backfill_state IN ('pending', 'running', 'done', 'failed')),
    backfill_cursor text,
    epoch           text,
    backfilled_at   timestamptz,
    rows_backfilled bigint NOT NULL DEFAULT 0,
    redis_name      text,
    applied         bigint,
    column_signature text,
    sync_error      text,
    sync_error_at   timestamptz
);
COMMENT ON COLUMN asymm.sync_tables.applied IS 'The highest version the sync worker had Redis acknowledge for this table when it last stored its position (Redis keeps its own mark in the table''s meta hash): a Redis mark below it means Redis came back from an older snapshot, and the table is copied again';
COMMENT ON COLUMN asymm.sync_tables.column_signature IS 'The table''s live columns when its keys were written (asymm._sync_column_signature): when they change, the table is copied again';
COMMENT ON COLUMN asymm.sync_tables.sync_error IS 'Why the daemon could not read this table (backfill_state failed: its Redis keys are cleared, so readers go to PostgreSQL, and it is copied again once a retry works); NULL once it syncs';
COMMENT ON COLUMN asymm.sync_tables.redis_name IS 'The schema and table names its Redis keys were written under, as a JSON array (jsonb_build_array(schema, table)::text; the daemon encodes them into the key, see the README); when a rename makes it differ from the table''s names, the keys under the old name are cleared and the table is copied again';
COMMENT ON TABLE asymm.sync_tables IS 'Tables whose changes asymm mirrors into Redis (asymm.track), with their key and backfill progress';
SELECT pg_catalog.pg_extension_config_dump('asymm.sync_tables', '');

-- Which columns of a tracked table are sensitive, by identity (attnum) in THIS database: the names
-- in asymm.sync_tables.sensitive are portable (pg_dump keeps them) but a RENAME COLUMN changes
-- them, so the ddl_command_end trigger renames them after the pinned attnums
-- (asymm._sync_follow_sensitive).  Not dumped, like annotation_target_cache: a restored table has
-- other oids (and no dropped columns, so other attnums); an empty cache is re-pinned from the names.
-- (An oid kept in sync_tables instead could match by chance in another cluster, and would then
-- rename the sensitive list after the wrong columns.)
CREATE TABLE asymm.sync_sensitive_pins (
    rel      regclass PRIMARY KEY REFERENCES asymm.sync_tables (rel) ON DELETE CASCADE,
    attnums  int2[] NOT NULL
);
COMMENT ON TABLE asymm.sync_sensitive_pins IS 'attnums of the sensitive columns of each tracked table in this database: a cache re-pinned from asymm.sync_tables.sensitive, never dumped';

-- The outbox.  Thin rows: which table, which keys, which operation, which transaction.
CREATE TABLE asymm.sync_outbox (
    slot  smallint NOT NULL,
    xid   xid8 NOT NULL,
    rel   oid NOT NULL,
    op    "char" NOT NULL,
    keys  text[]
) PARTITION BY LIST (slot);
COMMENT ON TABLE asymm.sync_outbox IS 'Captured changes awaiting the sync worker: one row per statement (keys as text[]); partitioned in two slots that are truncated, not deleted, once consumed';
CREATE TABLE asymm.sync_outbox_0 PARTITION OF asymm.sync_outbox FOR VALUES IN (0);
COMMENT ON TABLE asymm.sync_outbox_0 IS 'Outbox slot 0 (written during even 10-second periods, truncated once consumed)';
CREATE TABLE asymm.sync_outbox_1 PARTITION OF asymm.sync_outbox FOR VALUES IN (1);
COMMENT ON TABLE asymm.sync_outbox_1 IS 'Outbox slot 1 (written during odd 10-second periods, truncated once consumed)';
CREATE INDEX sync_outbox_xid ON asymm.sync_outbox (xid);
-- A bulk statement's keys make one large array: lz4 compresses it several times faster than the
-- default pglz, which was about half of the capture's cost in a 200k-row INSERT ... SELECT (perf).
-- A server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE asymm.sync_outbox ALTER COLUMN keys SET COMPRESSION lz4;  -- (not passed on to partitions)
    ALTER TABLE asymm.sync_outbox_0 ALTER COLUMN keys SET COMPRESSION lz4;
    ALTER TABLE asymm.sync_outbox_1 ALTER COLUMN keys SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'asymm: this server has no lz4; the sync outbox compresses with pglz';
END
$$;

-- The consumer position and health: one row.
CREATE TABLE asymm.sync_state (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position       xid8 NOT NULL,
    batches        bigint NOT NULL DEFAULT 0,
    rows_applied   bigint NOT NULL DEFAULT 0,
    keys_applied   bigint NOT NULL DEFAULT 0,
    last_batch_at  timestamptz,
    lag_ms         double precision,
    lag_at         timestamptz,
    last_error     text,
    last_error_at  timestamptz,
    resyncs        bigint NOT NULL DEFAULT 0,
    truncations    bigint NOT NULL DEFAULT 0,
    fence          bigint NOT NULL DEFAULT 0,
    redis_warning  text
);
COMMENT ON COLUMN asymm.sync_state.fence IS 'Fencing token: bumped by each sync worker that takes the sync lock; Redis refuses the writes of a worker holding a lower one (a deposed leader)';
COMMENT ON COLUMN asymm.sync_state.redis_warning IS 'What the sync worker found wrong with the Redis configuration when it connected (e.g. a maxmemory-policy that can evict tombstones), NULL if nothing';
COMMENT ON TABLE asymm.sync_state IS 'Sync consumer position (every outbox row with xid below it is applied to Redis) and health counters';
INSERT INTO asymm.sync_state (position) VALUES (pg_snapshot_xmin(pg_current_snapshot()));

-- The slot writers use now: alternates every 10 s.  The capture function computes the same
-- (extension/src/sync.c, current_slot()).
CREATE FUNCTION asymm.sync_slot() RETURNS smallint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ((extract(epoch FROM now())::bigint / 10) % 2)::smallint $$;
COMMENT ON FUNCTION asymm.sync_slot() IS 'Outbox slot (0 or 1) written by transactions that start now; the other one is truncated once consumed';

-- The same path as the capture's (extension/src/sync.c): the NOTIFY is sent when the transaction
-- commits, at most once, and not at all by one that is PREPAREd (PREPARE TRANSACTION refuses a
-- transaction that has called pg_notify; the worker finds a prepared transaction's changes by its
-- poll, at most a pulse after COMMIT PREPARED).  A subtransaction that rolls back takes its
-- wake-up with it.
CREATE FUNCTION asymm.sync_notify() RETURNS void
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asymm_sync_notify';
COMMENT ON FUNCTION asymm.sync_notify() IS 'Wake the sync worker: one payload-free NOTIFY asymm_sync when the transaction commits (none if it is prepared)';

-- Whether the sync worker waits for a NOTIFY (true) or is draining the outbox anyway (false).
-- Unlogged: a flag flipped on every idle/busy transition needs no WAL; after a crash it is empty,
-- which capture treats as "notify".  Capture caches it per backend and reads it again after each
-- change (trigger below), walking the row's chain of versions: fillfactor 10 makes readers prune
-- the page once it holds ~20 of them, instead of ~200 with the default.
CREATE UNLOGGED TABLE asymm.sync_wake (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    listening boolean NOT NULL
) WITH (fillfactor = 10);
COMMENT ON TABLE asymm.sync_wake IS 'Set by the sync worker: capture NOTIFYs only while it waits (listening), not while it drains';
INSERT INTO asymm.sync_wake (listening) VALUES (true);
-- Capture caches the flag per backend (reading it was a third of the capture function's time):
-- every committed change of it sends a relcache invalidation of the table, which empties those
-- caches (extension/src/sync.c, wake_cached).  TRUNCATE invalidates by itself.
CREATE FUNCTION asymm._sync_wake_changed() RETURNS trigger
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asymm_sync_wake_changed';
COMMENT ON FUNCTION asymm._sync_wake_changed() IS 'Statement trigger of asymm.sync_wake: makes every backend re-read the wake flag once the change commits';
CREATE TRIGGER sync_wake_changed AFTER INSERT OR UPDATE OR DELETE ON asymm.sync_wake
    FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_wake_changed();

-- TRUNCATE capture: rare, so a plain SECURITY DEFINER function (op 'T' makes the worker clear the
-- table's keys; the INSERT/UPDATE/DELETE capture below never writes it).  A partition of a tracked
-- table (sql/43_sync_exact.sql) queues a 'P' for the tracked table instead: the worker tombstones
-- the keys whose rows are gone, those of the other partitions stay.  (TRUNCATE of the tracked
-- table itself fires its partitions' triggers too; the worker skips a prune that a 'T' of the
-- same transaction makes moot.)  The tracked table is found in the catalog, not taken from the
-- trigger.
CREATE FUNCTION asymm._sync_truncated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)
    SELECT asymm.sync_slot(), pg_current_xact_id(), a.relid, CASE WHEN a.relid = TG_RELID THEN 'T' ELSE 'P' END, NULL
      FROM (SELECT TG_RELID AS relid UNION SELECT p.relid FROM pg_partition_ancestors(TG_RELID) p) a  -- (none for a plain table)
     WHERE EXISTS (SELECT 1 FROM asymm.sync_tables t WHERE t.rel = a.relid);
    PERFORM asymm.sync_notify();
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION asymm._sync_truncated() IS 'TRUNCATE trigger of tracked tables and their partitions: queues a T outbox row (the worker clears the table''s Redis keys), or for a partition a P row (the worker removes the keys of rows gone)';

-- The capture of INSERT/UPDATE/DELETE, for every tracked table: a C trigger function
-- (extension/src/sync.c has the full argument).  In short:
-- * statement-level AFTER triggers with transition tables: one outbox row per statement, whose
--   keys are exactly what the worker computes when it re-reads rows (pk::text, or
--   jsonb_build_array(pk...)::text for a composite key); the key columns are the triggers'
--   arguments, set by asymm.track() from the primary key it records in asymm.sync_tables;
-- * the row goes straight into the current slot's partition (heap insert + its index), with no
--   SQL statement to plan or start, and NOTIFY asymm_sync is sent at most once per transaction,
--   only while the worker waits (asymm.sync_wake);
-- * it writes the outbox itself, without SQL, so writers of a tracked table need no right on
--   schema asymm: nothing is granted to PUBLIC.  It refuses to run except as an AFTER ... FOR EACH
--   STATEMENT trigger with its transition tables, and only ever writes I/U/D rows for its own
--   table (TG_RELID) and its own transaction: what it records is what the statement changed.
--   Creating a trigger with it needs EXECUTE on it (revoked from PUBLIC).
-- * an extension member, so pg_dump/pg_restore recreate the triggers (with their arguments)
--   against the restored extension, and DROP EXTENSION refuses while tables are tracked.
--
-- The canonical key text of a row (the one definition; asymm.sync.keys.KEY_SETTINGS mirrors it):
-- pk::text for a one-column key, jsonb_build_array(pk, ...)::text for a composite one, computed
-- with TimeZone = UTC, DateStyle = 'ISO, MDY', IntervalStyle = postgres, extra_float_digits = 1
-- and bytea_output = hex.  Output functions read those settings, so without them two
-- writers with different sessions would name one row by two Redis keys (a timestamptz key under
-- two time zones).  The daemon's connection and asymm.sync_key_text() (what asymm.cache uses for
-- a key it cannot canonicalise itself) set the same values; the capture sets them in C (key_settings
-- in extension/src/sync.c), only for key types whose text reads them (not int, numeric, text, uuid,
-- bool): a SET clause here would save and restore them on every statement (~8 us).
CREATE FUNCTION asymm._sync_capture() RETURNS trigger
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'asymm_sync_capture';  -- (it pins the key settings itself, see key_settings in sync.c)
COMMENT ON FUNCTION asymm._sync_capture() IS 'INSERT/UPDATE/DELETE trigger of tracked tables (statement level, transition tables; arguments: the key columns): queues one outbox row of keys per statement';

CREATE FUNCTION asymm.sync_key_text(rel regclass, parts text[]) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC' SET DateStyle = 'ISO, MDY' SET IntervalStyle = 'postgres' SET extra_float_digits = 1
SET bytea_output = 'hex'
AS $$
DECLARE
    types text[];
    expr text;
    result text;
    state text;
    message text;
BEGIN
    SELECT t.key_types INTO types FROM asymm.sync_tables t WHERE t.rel = sync_key_text.rel;
    IF types IS NULL THEN
        RAISE EXCEPTION 'table % is not tracked', rel USING ERRCODE = 'undefined_object',
            HINT = format('Track it first: SELECT asymm.track(%L).', rel::text);
    END IF;
    IF cardinality(parts) IS DISTINCT FROM cardinality(types) OR array_position(parts, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'the key of % has % part(s), got %', rel, cardinality(types), coalesce(cardinality(parts), 0)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Give one non-NULL value per primary-key column, in key order.';
    END IF;
    -- (the types are format_type() names from the catalog, quoted where needed: no caller text)
    IF cardinality(types) = 1 THEN
        expr := format('SELECT ($1[1]::%s)::text', types[1]);
    ELSE
        SELECT format('SELECT jsonb_build_array(%s)::text', string_agg(format('$1[%s]::%s', i, types[i]), ', ' ORDER BY i))
          INTO expr FROM generate_subscripts(types, 1) AS i;
    END IF;
    BEGIN
        EXECUTE expr INTO result USING parts;
    EXCEPTION WHEN data_exception THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
        RAISE EXCEPTION 'invalid key for %: %', rel, message USING ERRCODE = state,
            HINT = format('The key columns are of type %s.', array_to_string(types, ', '));
    END;
    RETURN result;
END
$$;
COMMENT ON FUNCTION asymm.sync_key_text(regclass, text[]) IS 'The canonical key text (the part of a Redis key after the table) of the row whose primary key parts, as text, are given: each part is read by its column type''s input function and written back under the settings the capture uses';

-- A tracked table whose name no longer matches its Redis keys (ALTER TABLE ... RENAME / SET SCHEMA,
-- ALTER SCHEMA ... RENAME): queue an 'X' row carrying the old names (a JSON array [schema, table]:
-- a 'schema.table' text would be ambiguous, "a.b".c against a."b.c"), so the sync worker clears the
-- keys under it (a reader of the old name must not get rows that no longer change), and copy the
-- table again under its new name.  The worker skips the clearing when the old name belongs to a
-- tracked table again by then (renamed back, or another table took it): that table's own backfill
-- resets those keys.
CREATE FUNCTION asymm._sync_forget_old_names() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    moved integer;
BEGIN
    WITH renamed AS (
        UPDATE asymm.sync_tables t
           SET redis_name = jsonb_build_array(n.nspname, c.relname)::text, backfill_state = 'pending',
               backfill_cursor = NULL
          FROM asymm.sync_tables o, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE o.rel = t.rel AND c.oid = t.rel
           AND t.redis_name IS DISTINCT FROM jsonb_build_array(n.nspname, c.relname)::text
        RETURNING t.rel::oid AS rel, o.redis_name AS old_name),
    queued AS (
        INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)
        SELECT asymm.sync_slot(), pg_current_xact_id(), r.rel, 'X', ARRAY[r.old_name]
          FROM renamed r WHERE r.old_name IS NOT NULL)
    SELECT count(*) INTO moved FROM renamed;
    IF moved > 0 THEN
        PERFORM asymm.sync_notify();
    END IF;
    RETURN moved;
END
$$;
COMMENT ON FUNCTION asymm._sync_forget_old_names() IS 'Tracked tables renamed since their keys were written: queue the clearing of the keys under the old name and a new backfill (count of tables)';

CREATE FUNCTION asymm.track(rel regclass, sensitive text[] DEFAULT '{}') RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols text[];
    types text[];
    kind "char";
    args text;
    bad text;
    trig name;
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION 'rel must not be NULL' USING ERRCODE = 'null_value_not_allowed',
              HINT = 'Pass a table, e.g. asymm.track(''public.orders'').';
    END IF;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = rel;
    IF kind NOT IN ('r', 'p') OR rel::oid IN ('asymm.sync_outbox'::regclass, 'asymm.sync_tables'::regclass)
       OR (SELECT relnamespace FROM pg_class WHERE oid = rel)
          IN ('asymm'::regnamespace, 'pg_catalog'::regnamespace, 'information_schema'::regnamespace) THEN
        RAISE EXCEPTION 'rel %: only ordinary user tables can be tracked', rel
              USING ERRCODE = 'wrong_object_type', HINT = 'Pass a plain or partitioned table outside schemas asymm, pg_catalog and information_schema.';
    END IF;
    SELECT array_agg(a.attname::text ORDER BY k.ord), array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord)
      INTO cols, types
      FROM pg_index i
      CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = rel AND i.indisprimary;
    IF cols IS NULL THEN
        RAISE EXCEPTION 'rel %: a tracked table needs a primary key', rel
              USING ERRCODE = 'invalid_table_definition', HINT = 'Add a PRIMARY KEY: Redis keys are built from it.';
    END IF;
    sensitive := coalesce(sensitive, '{}');
    SELECT s INTO bad FROM unnest(sensitive) s  -- (a NULL element is a column that does not exist)
     WHERE s IS NULL OR NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = s
                                                     AND a.attnum > 0 AND NOT a.attisdropped);
    IF FOUND THEN
        RAISE EXCEPTION 'sensitive: column % does not exist in %', asymm._shown(bad), rel
              USING ERRCODE = 'undefined_column', HINT = 'Name existing columns of the table.';
    END IF;
    PERFORM asymm._sync_refuse_untrusted_types(rel);
    IF sensitive && cols THEN
        RAISE EXCEPTION 'sensitive: primary key columns cannot be sensitive (%)', array_to_string(cols, ', ')
              USING ERRCODE = 'invalid_parameter_value', HINT = 'The key is part of the Redis key name; leave it out.';
    END IF;
    -- A partition's changes are recorded under its tracked ancestor (sql/43_sync_exact.sql): one of
    -- a tree at most.
    SELECT t.rel::text INTO bad FROM asymm.sync_tables t
     WHERE t.rel <> track.rel
       AND (t.rel::oid IN (SELECT a.relid::oid FROM pg_partition_ancestors(track.rel) a)
            OR t.rel::oid IN (SELECT x.relid::oid FROM pg_partition_tree(track.rel) x));
    IF FOUND THEN
        RAISE EXCEPTION 'rel %: % is tracked, and a partition and its partitioned table cannot both be', rel, bad
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Track the topmost partitioned table only: it covers all its partitions.';
    END IF;
    -- The capture function learns the key columns from the triggers' arguments, the same list
    -- as asymm.sync_tables.key_columns: capture and worker agree on the key even if the primary
    -- key is later changed (re-tracking picks the new one up).
    SELECT string_agg(quote_literal(c), ', ' ORDER BY o) INTO args FROM unnest(cols) WITH ORDINALITY AS u(c, o);
    FOR trig IN SELECT tgname FROM pg_trigger WHERE tgrelid = rel AND tgname LIKE 'asymm\_sync\_%' LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trig, rel);
    END LOOP;
    EXECUTE format('CREATE TRIGGER asymm_sync_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_capture(%s)', rel, args);
    EXECUTE format('CREATE TRIGGER asymm_sync_upd AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows'
                   ' NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_capture(%s)', rel, args);
    EXECUTE format('CREATE TRIGGER asymm_sync_del AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_capture(%s)', rel, args);
    EXECUTE format('CREATE TRIGGER asymm_sync_trunc AFTER TRUNCATE ON %s FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION asymm._sync_truncated()', rel);

    -- (Re)tracking starts a fresh backfill: the daemon reads the table in snapshots taken after
    -- this transaction commits, and every change not visible to them is in the outbox.
    INSERT INTO asymm.sync_tables AS t (rel, key_columns, key_types, sensitive)
    VALUES (rel, cols, types, sensitive)
    ON CONFLICT ON CONSTRAINT sync_tables_pkey DO UPDATE
       SET key_columns = excluded.key_columns, key_types = excluded.key_types, sensitive = excluded.sensitive,
           tracked_at = now(), backfill_state = 'pending', backfill_cursor = NULL;
    INSERT INTO asymm.sync_sensitive_pins AS p (rel, attnums)
    VALUES (rel, ARRAY(SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = ANY (sensitive)
                          AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum))
    ON CONFLICT ON CONSTRAINT sync_sensitive_pins_pkey DO UPDATE SET attnums = excluded.attnums;
    -- Records the table's Redis name (a new row has none yet), and clears the keys under an old one
    -- (re-tracking a table renamed while the event trigger was off).
    PERFORM asymm._sync_forget_old_names();
    PERFORM asymm._grant_tracked_to_daemons(rel);
    -- Exactness through DDL (sql/43_sync_exact.sql): the columns the keys are written with, and the
    -- capture triggers on every partition (the backfill copies their rows).
    UPDATE asymm.sync_tables t SET column_signature = asymm._sync_column_signature(t.rel) WHERE t.rel = track.rel;
    DELETE FROM asymm.sync_partitions s WHERE s.root = track.rel;  -- (re)installed with the current key
    PERFORM asymm._sync_follow_partitions(false);
    PERFORM asymm.sync_notify();
    PERFORM asymm._sync_fire_always(rel);  -- (last: it is an ALTER TABLE, see sql/44_sync_always.sql)
END
$$;
COMMENT ON FUNCTION asymm.track(regclass, text[]) IS 'Mirror a table into Redis: installs statement-level capture triggers and queues a backfill; sensitive columns are dropped or HMACed';

CREATE FUNCTION asymm.untrack(rel regclass, keep_keys boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    trig name;
    name text;
BEGIN
    SELECT coalesce(t.redis_name, jsonb_build_array(n.nspname, c.relname)::text) INTO name
      FROM asymm.sync_tables t JOIN pg_class c ON c.oid = t.rel JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE t.rel = untrack.rel;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    FOR trig IN SELECT tgname FROM pg_trigger WHERE tgrelid = rel AND tgname LIKE 'asymm\_sync\_%' LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trig, rel);
    END LOOP;
    DELETE FROM asymm.sync_tables t WHERE t.rel = untrack.rel;
    -- The keys go in the background, as for a dropped table (asymm._sync_sql_drop): an 'X' row
    -- with the names they were written under.  The worker skips it if the table is tracked again
    -- by then (its new backfill resets the keys itself).
    IF NOT coalesce(keep_keys, false) THEN
        INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)
        VALUES (asymm.sync_slot(), pg_current_xact_id(), rel, 'X', ARRAY[name]);
        PERFORM asymm.sync_notify();
    END IF;
    PERFORM asymm._sync_follow_partitions();  -- its partitions lose their triggers
    RETURN true;
END
$$;
COMMENT ON FUNCTION asymm.untrack(regclass, boolean) IS 'Stop mirroring a table: removes its capture triggers; the sync worker then removes its Redis keys, unless keep_keys is true';

CREATE FUNCTION asymm.sync_backfill(rel regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE asymm.sync_tables t SET backfill_state = 'pending', backfill_cursor = NULL WHERE t.rel = sync_backfill.rel;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'rel %: not tracked', rel USING ERRCODE = 'undefined_object',
              HINT = 'Track it first with asymm.track(); SELECT rel FROM asymm.sync_tables lists tracked tables.';
    END IF;
    PERFORM asymm.sync_notify();
END
$$;
COMMENT ON FUNCTION asymm.sync_backfill(regclass) IS 'Ask the sync worker to re-copy a tracked table into Redis (consistent with concurrent writes)';

CREATE FUNCTION asymm.sync_heartbeat() RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)
    VALUES (asymm.sync_slot(), pg_current_xact_id(), 0, 'H', ARRAY[(extract(epoch FROM clock_timestamp()))::text]);
    SELECT asymm.sync_notify();
$$;
COMMENT ON FUNCTION asymm.sync_heartbeat() IS 'Commit a timestamp through the outbox; the sync worker measures commit-to-Redis lag when it applies it';

CREATE FUNCTION asymm.sync_status() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object(
        'position', s.position::text,
        'horizon', pg_snapshot_xmin(pg_current_snapshot())::text,
        'backlog_rows', (SELECT count(*) FROM asymm.sync_outbox o WHERE o.xid >= s.position AND o.rel <> 0),
        'backlog_keys', (SELECT coalesce(sum(cardinality(o.keys)), 0) FROM asymm.sync_outbox o
                          WHERE o.xid >= s.position AND o.rel <> 0),
        'batches', s.batches, 'rows_applied', s.rows_applied, 'keys_applied', s.keys_applied,
        'last_batch_at', s.last_batch_at, 'lag_ms', s.lag_ms, 'lag_at', s.lag_at,
        'last_error', s.last_error, 'last_error_at', s.last_error_at,
        'resyncs', s.resyncs, 'truncations', s.truncations, 'redis_warning', s.redis_warning,
        -- What holds the horizon back: the oldest transaction id still running, in ANY database of
        -- the cluster (snapshots are cluster-wide) or prepared (two-phase).  No query text, no role.
        'horizon_held_by', (
            SELECT jsonb_build_object('kind', o.kind, 'database', o.datname, 'pid', o.pid,
                                      'this_database', o.datname = current_database(),
                                      'xid_age', age(o.xid), 'xact_age_s', round(extract(epoch FROM now() - o.since)::numeric, 3))
              FROM (SELECT 'backend'::text AS kind, a.datname, a.pid, a.backend_xid AS xid, a.xact_start AS since
                      FROM pg_stat_activity a WHERE a.backend_xid IS NOT NULL
                    UNION ALL
                    SELECT 'prepared', p.database, NULL, p.transaction, p.prepared FROM pg_prepared_xacts p) o
             ORDER BY age(o.xid) DESC LIMIT 1),
        'tables', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'table', t.rel::text, 'key', t.key_columns, 'sensitive', t.sensitive,
                       'backfill', t.backfill_state, 'backfilled_at', t.backfilled_at,
                       'rows_backfilled', t.rows_backfilled, 'error', t.sync_error,
                       'error_at', t.sync_error_at) ORDER BY t.rel::text), '[]'::jsonb)
                     FROM asymm.sync_tables t))
      FROM asymm.sync_state s
$$;
COMMENT ON FUNCTION asymm.sync_status() IS 'Redis sync health: position, backlog, lag, last error, tracked tables (read-only)';

-- A tracked table that is dropped (DROP TABLE, DROP SCHEMA ... CASCADE, DROP OWNED): forget its
-- configuration (its triggers went with it) and queue an 'X' outbox row carrying the
-- table's schema and name (a JSON array, as in asymm._sync_forget_old_names), so the sync worker
-- clears its keys in Redis (the catalog no longer knows the name by then).  Never fails the user's DDL: an error becomes a WARNING.
CREATE FUNCTION asymm._sync_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    BEGIN
        IF to_regclass('asymm.sync_tables') IS NULL THEN
            RETURN;  -- DROP EXTENSION asymm CASCADE: our tables are gone already
        END IF;
        WITH gone AS (
            DELETE FROM asymm.sync_tables t
             USING pg_event_trigger_dropped_objects() d
             WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = t.rel::oid
            RETURNING t.rel::oid AS rel, jsonb_build_array(d.schema_name, d.object_name)::text AS name)
        INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)
        SELECT asymm.sync_slot(), pg_current_xact_id(), g.rel, 'X', ARRAY[g.name] FROM gone g;
        IF FOUND THEN
            PERFORM asymm.sync_notify();
        END IF;
    EXCEPTION WHEN others THEN
        RAISE WARNING 'asymm: could not forget the dropped tracked table after %: %', tg_tag, sqlerrm
              USING HINT = 'Its row in asymm.sync_tables and its Redis keys may remain; DELETE the row by hand.';
    END;
    -- A dropped partition of a tracked table: its rows are gone from the table (sql/43_sync_exact.sql).
    BEGIN
        IF to_regprocedure('asymm._sync_forget_dropped_partitions()') IS NOT NULL THEN
            PERFORM asymm._sync_forget_dropped_partitions();
        END IF;
    EXCEPTION WHEN others THEN
        RAISE WARNING 'asymm: could not follow the drop of a partition of a tracked table after %: %', tg_tag, sqlerrm
              USING HINT = 'Its rows may stay in Redis: run SELECT asymm.sync_backfill(''<table>'').';
    END;
END
$$;
COMMENT ON FUNCTION asymm._sync_sql_drop() IS 'Event trigger function: a dropped tracked table leaves asymm.sync_tables and has its Redis keys cleared by the sync worker (never fails the DDL)';

CREATE EVENT TRIGGER asymm_sync_sql_drop ON sql_drop
    EXECUTE FUNCTION asymm._sync_sql_drop();
COMMENT ON EVENT TRIGGER asymm_sync_sql_drop IS 'asymm: a dropped tracked table stops being mirrored and its Redis keys are cleared';

-- Sensitivity follows the column, not its name: after any ALTER TABLE, each tracked table's
-- sensitive names become the current names of its pinned columns (a RENAME COLUMN renames them, a
-- DROP COLUMN removes them).  A table with no pin in this database (restored by pg_restore, whose
-- oids and attnums are new) is pinned from its names first.  Changing sync_tables.sensitive
-- changes the sync worker's tables fingerprint, so the worker throws away a batch read with the
-- old list, in the same snapshot as the rename, and rebuilds its statements.
CREATE FUNCTION asymm._sync_follow_sensitive() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    changed integer;
BEGIN
    INSERT INTO asymm.sync_sensitive_pins (rel, attnums)
    SELECT t.rel, ARRAY(SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = t.rel AND a.attname = ANY (t.sensitive)
                           AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
      FROM asymm.sync_tables t
     WHERE NOT EXISTS (SELECT FROM asymm.sync_sensitive_pins p WHERE p.rel = t.rel)
    ON CONFLICT DO NOTHING;
    WITH current AS (
        SELECT p.rel, coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attnum IS NOT NULL), '{}') AS names,
               coalesce(array_agg(a.attnum ORDER BY a.attnum) FILTER (WHERE a.attnum IS NOT NULL), '{}') AS attnums
          FROM asymm.sync_sensitive_pins p
          LEFT JOIN pg_attribute a ON a.attrelid = p.rel AND a.attnum = ANY (p.attnums) AND NOT a.attisdropped
         GROUP BY p.rel),
    pins AS (
        UPDATE asymm.sync_sensitive_pins p SET attnums = c.attnums
          FROM current c WHERE c.rel = p.rel AND p.attnums IS DISTINCT FROM c.attnums)
    UPDATE asymm.sync_tables t SET sensitive = c.names
      FROM current c
     WHERE c.rel = t.rel AND NOT (t.sensitive @> c.names AND c.names @> t.sensitive);
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END
$$;
COMMENT ON FUNCTION asymm._sync_follow_sensitive() IS 'Event trigger helper: the sensitive names of each tracked table follow its pinned columns (renamed, dropped); pins a restored table from its names; internal';

-- Renames (see asymm._sync_forget_old_names).  On PostgreSQL 15 an event trigger function cannot be
-- PL/Python; this one is PL/pgSQL and, like the drop one, never fails the user's DDL for a rename.
CREATE FUNCTION asymm._sync_ddl_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('asymm.sync_firing_always', true) = 'on' THEN
        RETURN;  -- asymm's own ALTER TABLE ... ENABLE ALWAYS TRIGGER (asymm._sync_fire_always)
    END IF;
    BEGIN
        IF to_regclass('asymm.sync_tables') IS NOT NULL THEN
            PERFORM asymm._sync_forget_old_names();
        END IF;
    EXCEPTION WHEN others THEN
        RAISE WARNING 'asymm: could not follow the rename of a tracked table after %: %', tg_tag, sqlerrm
              USING HINT = 'Run SELECT asymm.track(''<table>'') again: keys under the old name stay in Redis until then.';
    END;
    BEGIN
        IF tg_tag = 'ALTER TABLE' AND to_regclass('asymm.sync_tables') IS NOT NULL THEN
            PERFORM asymm._sync_follow_sensitive();
        END IF;
    EXCEPTION WHEN others THEN
        RAISE WARNING 'asymm: could not follow the sensitive columns after %: %', tg_tag, sqlerrm
              USING HINT = 'Run SELECT asymm.track(''<table>'', sensitive => ...) again; until then the sync protects both the old and the new names.';
    END;
    -- Column DDL and partitions of tracked tables (sql/43_sync_exact.sql): never fails the DDL.
    BEGIN
        IF to_regprocedure('asymm._sync_follow_partitions(boolean)') IS NOT NULL
           AND to_regprocedure('asymm._sync_follow_columns()') IS NOT NULL THEN  -- (not while installing)
            PERFORM asymm._sync_follow_partitions();
            PERFORM asymm._sync_follow_columns();
        END IF;
    EXCEPTION WHEN others THEN
        RAISE WARNING 'asymm: could not follow a column or partition change of a tracked table after %: %', tg_tag, sqlerrm
              USING HINT = 'Run SELECT asymm.track(''<table>'') again: its Redis keys may be stale until then.';
    END;
    -- The one DDL this trigger refuses: a tracked table given a column of a type a non-superuser
    -- owns (ALTER TABLE ... ADD COLUMN / ALTER COLUMN ... TYPE), whose casts would run as the daemon.
    IF tg_tag = 'ALTER TABLE' AND to_regclass('asymm.sync_tables') IS NOT NULL THEN
        PERFORM asymm._sync_refuse_untrusted_types(t.rel)
           FROM asymm.sync_tables t
          WHERE t.rel::oid IN (SELECT c.objid FROM pg_event_trigger_ddl_commands() c
                                WHERE c.classid = 'pg_class'::regclass);
    END IF;
END
$$;
COMMENT ON FUNCTION asymm._sync_ddl_end() IS 'Event trigger function: a renamed tracked table has the keys under its old name cleared and is copied again under the new one; refuses only a column of a non-superuser''s type on a tracked table';

CREATE EVENT TRIGGER asymm_sync_ddl_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA', 'CREATE TABLE')
    EXECUTE FUNCTION asymm._sync_ddl_end();
COMMENT ON EVENT TRIGGER asymm_sync_ddl_end IS 'asymm: a tracked table renamed (or moved to another schema, or whose schema is renamed) is mirrored under its new name';

-- ===== sql/41_sync_alerts.sql =====
-- asymm: since 0.2.0
-- When the Redis cache falls behind: the threshold above which the daemon notifies webhooks.
INSERT INTO asymm.setting_defaults (name, default_value, value_type, min_value, max_value, allowed_values, pattern, description) VALUES
    ('sync.lag_alert_ms', '5000', 'number', '1', '86400000', NULL, NULL,
     'Notify webhooks (event sync_lag) when commit-to-Redis lag, or the age of the last heartbeat that reached Redis, exceeds this many milliseconds');

-- ===== sql/42_sync_types.sql =====
-- asymm: since 0.2.0
-- Column types a tracked table may have.  The daemon turns rows into JSON (row_to_json, to_jsonb)
-- and keys into text; both conversions call a cast to json or text when the column's type has one,
-- and the owner of a type may create such casts.  A type owned by a role that is not a superuser is
-- therefore that role's code, run with the daemon's rights on every synced row: a tracked table may
-- not have a column of such a type (looking through domains, arrays, ranges and composite types).
-- Built-in types and the types of extensions a superuser installed (citext, hstore, vector...) are
-- fine: nobody else can give them a cast.
CREATE FUNCTION asymm._sync_untrusted_types(rel regclass) RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH RECURSIVE used(column_name, type_oid, depth) AS (
    SELECT a.attname::text, a.atttypid, 0
      FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT u.column_name, x.inner_type, u.depth + 1
      FROM used u JOIN pg_type t ON t.oid = u.type_oid
      CROSS JOIN LATERAL (
          SELECT t.typbasetype AS inner_type WHERE t.typtype = 'd'
          UNION ALL SELECT t.typelem WHERE t.typelem <> 0 AND t.typsubscript = 'array_subscript_handler'::regproc
          UNION ALL SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = t.oid
          UNION ALL SELECT a.atttypid FROM pg_attribute a
                     WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
      ) x
     WHERE u.depth < 8
)
SELECT array_agg(DISTINCT format('%I (%s, owned by %I)', u.column_name, u.type_oid::regtype, r.rolname)
                 ORDER BY format('%I (%s, owned by %I)', u.column_name, u.type_oid::regtype, r.rolname))
  FROM used u JOIN pg_type t ON t.oid = u.type_oid JOIN pg_roles r ON r.oid = t.typowner
 WHERE NOT r.rolsuper
$$;
COMMENT ON FUNCTION asymm._sync_untrusted_types(regclass) IS 'Columns of a table whose type (through domains, arrays, ranges, composites) belongs to a role that is not a superuser, whose casts would run as the sync daemon; NULL when none; internal';

CREATE FUNCTION asymm._sync_refuse_untrusted_types(rel regclass) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad text[] := asymm._sync_untrusted_types(rel);
BEGIN
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'tracked table %: column % has a type a non-superuser owns', rel, array_to_string(bad, ', ')
              USING ERRCODE = 'insufficient_privilege',
                    HINT = 'The owner of a type can give it a cast to json or text, which the sync daemon would run on every row: use a built-in type or a superuser''s (or untrack the table first).';
    END IF;
END
$$;
COMMENT ON FUNCTION asymm._sync_refuse_untrusted_types(regclass) IS 'Error when a tracked table has a column of a type owned by a non-superuser (see asymm._sync_untrusted_types); internal';

-- ===== sql/43_sync_exact.sql =====
-- asymm: since 0.2.0
-- Keeping Redis exact through DDL on tracked tables (issue 16, points 4 and 5): column changes,
-- and partitions written, attached, detached, truncated or dropped on their own.  Called from the
-- event triggers and asymm.track()/untrack() in sql/40_sync.sql.

-- Columns.  The sync writes each row as JSON of all its columns, so ADD COLUMN (with or without a
-- DEFAULT), DROP COLUMN, ALTER COLUMN ... TYPE and RENAME COLUMN change the document of every
-- existing row without an INSERT/UPDATE the capture would see.  asymm.sync_tables keeps a
-- signature of the table's live columns (attnum, name, type); the ddl_command_end event trigger
-- compares it with the catalog and queues a backfill when it differs.  attnum is part of it: a
-- column dropped and re-added under the same name and type in one ALTER TABLE has new values.
CREATE FUNCTION asymm._sync_column_signature(rel regclass) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(string_agg(format('%s %I %s', a.attnum, a.attname, format_type(a.atttypid, a.atttypmod)),
                               ', ' ORDER BY a.attnum), '')
      FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
$$;
COMMENT ON FUNCTION asymm._sync_column_signature(regclass) IS 'The live columns of a table (attnum, name, type) as one text: a change means every Redis document of the table is stale; internal';

CREATE FUNCTION asymm._sync_follow_columns() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
    changed integer := 0;
BEGIN
    FOR t IN
        SELECT s.rel, s.sensitive, asymm._sync_column_signature(s.rel) AS sig,
               (SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord)
                  FROM unnest(s.key_columns) WITH ORDINALITY AS k(name, ord)
                  JOIN pg_attribute a ON a.attrelid = s.rel AND a.attname = k.name
                                     AND a.attnum > 0 AND NOT a.attisdropped) AS types,
               cardinality(s.key_columns) AS nkeys
          FROM asymm.sync_tables s
         WHERE EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = s.rel)
           AND s.column_signature IS DISTINCT FROM asymm._sync_column_signature(s.rel)
         ORDER BY s.rel::oid
    LOOP
        IF cardinality(t.types) = t.nkeys THEN
            -- key_types follow too (ALTER COLUMN ... TYPE of a key column): the worker casts key text to them
            UPDATE asymm.sync_tables s
               SET column_signature = t.sig, key_types = t.types, backfill_state = 'pending', backfill_cursor = NULL
             WHERE s.rel = t.rel;
        ELSE
            -- A key column renamed or dropped: the triggers' arguments name it, so every write would
            -- fail, and so would a backfill.  Track the table again (its primary key now); should
            -- that fail (no primary key left), leave it as it is and say so.
            BEGIN
                PERFORM asymm.track(t.rel, t.sensitive);
            EXCEPTION WHEN others THEN
                RAISE WARNING 'asymm: tracked table %: a key column is gone and it could not be tracked again: %',
                      t.rel, sqlerrm
                      USING HINT = 'Writes to it fail until SELECT asymm.track() succeeds on it, or asymm.untrack() it.';
                CONTINUE;
            END;
        END IF;
        changed := changed + 1;
    END LOOP;
    IF changed > 0 THEN
        PERFORM asymm.sync_notify();
    END IF;
    RETURN changed;
END
$$;
COMMENT ON FUNCTION asymm._sync_follow_columns() IS 'Tracked tables whose columns changed since their keys were written (ADD/DROP/ALTER TYPE/RENAME COLUMN): queue a backfill (count of tables); internal (event trigger)';

-- Partitions.  PostgreSQL fires a partitioned table's statement triggers only for statements on
-- the table itself; a statement on a partition fires the partition's.  So tracking a partitioned
-- table also puts the capture triggers on each of its partitions, at every level, and the ones
-- created or attached later (ddl_command_end); the C capture records their changes under the
-- tracked table (extension/src/sync.c, capture_target).  Which partitions carry them, and for
-- which tracked table, is recorded here: after DETACH PARTITION or DROP TABLE the catalog no
-- longer says whose partition it was.  Rows that leave the tracked table that way (or by TRUNCATE
-- of a partition) queue a 'P' (prune) outbox row for it: the worker walks the table's Redis keys
-- and writes tombstones for those whose rows are gone (control/asymm/sync/engine.py, _prune).
CREATE TABLE asymm.sync_partitions (
    part  regclass PRIMARY KEY,
    root  regclass NOT NULL
);
COMMENT ON TABLE asymm.sync_partitions IS 'Partitions (every level) of tracked partitioned tables that carry capture triggers, and the tracked table they belong to';
SELECT pg_catalog.pg_extension_config_dump('asymm.sync_partitions', '');

-- Put the capture triggers on a partition (the tracked table's key columns as arguments), or
-- take them off (install false).
CREATE FUNCTION asymm._sync_partition_triggers(part regclass, root regclass, install boolean) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text;
    trig name;
BEGIN
    FOR trig IN SELECT tgname FROM pg_trigger WHERE tgrelid = part AND tgname LIKE 'asymm\_sync\_%' AND NOT tgisinternal LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trig, part);
    END LOOP;
    IF NOT install THEN
        RETURN;
    END IF;
    SELECT string_agg(quote_literal(c), ', ' ORDER BY o) INTO args
      FROM asymm.sync_tables t, unnest(t.key_columns) WITH ORDINALITY AS u(c, o) WHERE t.rel = root;
    EXECUTE format('CREATE TRIGGER asymm_sync_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_capture(%s)', part, args);
    EXECUTE format('CREATE TRIGGER asymm_sync_upd AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows'
                   ' NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_capture(%s)', part, args);
    EXECUTE format('CREATE TRIGGER asymm_sync_del AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_capture(%s)', part, args);
    EXECUTE format('CREATE TRIGGER asymm_sync_trunc AFTER TRUNCATE ON %s FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION asymm._sync_truncated()', part);
    PERFORM asymm._sync_fire_always(part);
END
$$;
COMMENT ON FUNCTION asymm._sync_partition_triggers(regclass, regclass, boolean) IS 'Install (or remove) the capture triggers of a partition of a tracked table; internal';

-- Bring the partitions' triggers in line with the catalog: every partition (all levels, foreign
-- tables excepted: no transition tables there) of every tracked partitioned table gets them, and
-- every recorded one that is no longer there (detached, or its tracked table untracked) loses
-- them.  A partition attached with rows has its keys queued as 'I' outbox rows (they entered the
-- tracked table without any INSERT; the worker re-reads them); one that left queues a 'P' row.
-- with_rows false (asymm.track: the backfill copies what is there) queues no keys.
CREATE FUNCTION asymm._sync_follow_partitions(with_rows boolean DEFAULT true) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
    key_expr text;
    moved integer := 0;
BEGIN
    -- gone: no longer a partition of the tracked table recorded for it
    FOR p IN
        SELECT s.part, s.root, (c.oid IS NOT NULL) AS still_exists,
               EXISTS (SELECT 1 FROM asymm.sync_tables t WHERE t.rel = s.root) AS root_tracked
          FROM asymm.sync_partitions s LEFT JOIN pg_class c ON c.oid = s.part
         WHERE c.oid IS NULL OR NOT EXISTS (SELECT 1 FROM asymm.sync_tables t WHERE t.rel = s.root)
            OR s.part::oid NOT IN (SELECT x.relid::oid FROM pg_partition_tree(s.root) x WHERE x.level > 0)
         ORDER BY s.part::oid
    LOOP
        IF p.still_exists THEN
            PERFORM asymm._sync_partition_triggers(p.part, p.root, false);
        END IF;
        IF p.root_tracked THEN
            INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)
            VALUES (asymm.sync_slot(), pg_current_xact_id(), p.root, 'P', NULL);
        END IF;
        DELETE FROM asymm.sync_partitions s WHERE s.part::oid = p.part::oid;
        moved := moved + 1;
    END LOOP;
    -- new: partitions of tracked tables without their triggers (created, attached, or tracked now)
    FOR p IN
        SELECT x.relid::regclass AS part, t.rel AS root, c.relkind, t.key_columns
          FROM asymm.sync_tables t JOIN pg_class r ON r.oid = t.rel AND r.relkind = 'p'
         CROSS JOIN LATERAL pg_partition_tree(t.rel) x JOIN pg_class c ON c.oid = x.relid
         WHERE x.level > 0 AND c.relkind IN ('r', 'p')
           AND NOT EXISTS (SELECT 1 FROM asymm.sync_partitions s WHERE s.part = x.relid::regclass)
         ORDER BY x.relid
    LOOP
        PERFORM asymm._sync_partition_triggers(p.part, p.root, true);
        INSERT INTO asymm.sync_partitions (part, root) VALUES (p.part, p.root);
        IF with_rows AND p.relkind = 'r' THEN
            -- the key text as the capture computes it (control/asymm/sync/tables.py, key_expr); only
            -- keys leave this statement, and the worker reads the rows with its own rights
            SELECT CASE WHEN cardinality(p.key_columns) = 1 THEN format('t.%I::text', p.key_columns[1])
                        ELSE format('jsonb_build_array(%s)::text',
                                    (SELECT string_agg(format('t.%I', k), ', ' ORDER BY o)
                                       FROM unnest(p.key_columns) WITH ORDINALITY AS u(k, o))) END
              INTO key_expr;
            EXECUTE format('INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)'
                           ' SELECT asymm.sync_slot(), pg_current_xact_id(), $1, ''I'', array_agg(k.key)'
                           '   FROM (SELECT %s AS key, (row_number() OVER () - 1) / 10000 AS chunk FROM ONLY %s t) k'
                           '  GROUP BY k.chunk', key_expr, p.part)
              USING p.root::oid;
        END IF;
        moved := moved + 1;
    END LOOP;
    IF moved > 0 THEN
        PERFORM asymm.sync_notify();
    END IF;
    RETURN moved;
END
$$;
COMMENT ON FUNCTION asymm._sync_follow_partitions(boolean) IS 'Partitions of tracked tables get (or lose) the capture triggers; rows entering with ATTACH are queued, rows leaving with DETACH queue a prune (count of partitions changed); internal';

-- Partitions dropped (DROP TABLE, DROP ... CASCADE), called from the sql_drop event trigger: their
-- rows left the tracked table, which is pruned (unless it went too).
CREATE FUNCTION asymm._sync_forget_dropped_partitions() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pruned integer;
BEGIN
    WITH gone AS (
        DELETE FROM asymm.sync_partitions s
         USING pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = s.part::oid
        RETURNING s.root),
    queued AS (
        INSERT INTO asymm.sync_outbox (slot, xid, rel, op, keys)
        SELECT DISTINCT asymm.sync_slot(), pg_current_xact_id(), g.root::oid, 'P'::"char", NULL::text[]
          FROM gone g WHERE EXISTS (SELECT 1 FROM asymm.sync_tables t WHERE t.rel = g.root)
        RETURNING 1)
    SELECT count(*) INTO pruned FROM queued;
    IF pruned > 0 THEN
        PERFORM asymm.sync_notify();
    END IF;
    RETURN pruned;
END
$$;
COMMENT ON FUNCTION asymm._sync_forget_dropped_partitions() IS 'Dropped partitions of tracked tables: queue a prune of the tracked table (count of tables); internal (sql_drop event trigger)';

-- ===== sql/44_sync_always.sql =====
-- asymm: since 0.2.0
-- The capture triggers fire whatever session_replication_role says.  An ordinary trigger (ENABLE,
-- i.e. "origin") does not fire in a session with session_replication_role = replica: the apply
-- worker of logical replication, pglogical, Bucardo and some migration tools write that way, and
-- every change they made to a tracked table would be missing from Redis for good.  So asymm.track()
-- (and the partitions it follows) makes them ENABLE ALWAYS.  pg_dump keeps that state.  A DBA who
-- wants a session that bypasses the capture still has ALTER TABLE ... DISABLE TRIGGER.
--
-- ENABLE ALWAYS is an ALTER TABLE, which fires asymm's own ddl_command_end trigger: the
-- transaction-local flag asymm.sync_firing_always makes it return at once (asymm._sync_ddl_end),
-- so following partitions or columns cannot recurse into itself.
CREATE FUNCTION asymm._sync_fire_always(rel regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    trig name;
    was text := current_setting('asymm.sync_firing_always', true);
BEGIN
    PERFORM set_config('asymm.sync_firing_always', 'on', true);
    FOR trig IN SELECT tgname FROM pg_trigger
                 WHERE tgrelid = rel AND tgname LIKE 'asymm\_sync\_%' AND NOT tgisinternal AND tgenabled <> 'A' LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', rel, trig);
    END LOOP;
    PERFORM set_config('asymm.sync_firing_always', coalesce(was, ''), true);
END
$$;
COMMENT ON FUNCTION asymm._sync_fire_always(regclass) IS 'Make a tracked table''s (or partition''s) capture triggers ENABLE ALWAYS, so that sessions with session_replication_role = replica are captured too; internal';

-- ===== sql/50_drift.sql =====
-- asymm: since 0.2.0
-- Schema drift (SPEC section 6): the DDL log written by event triggers, baselines of the schema,
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
           AND c.schema_name IS DISTINCT FROM 'asymm';
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
         WHERE o.schema IS DISTINCT FROM 'asymm';
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

-- ---------------------------------------------------------------------------------------------
-- Snapshots and baselines
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION asymm._drift_acl(acl aclitem[]) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce(jsonb_agg(DISTINCT CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(x.grantee)) END
                          || ':' || x.privilege_type || CASE WHEN x.is_grantable THEN ':grant' ELSE '' END), '[]'::jsonb)
  FROM aclexplode(acl) AS x
$$;
COMMENT ON FUNCTION asymm._drift_acl(aclitem[]) IS 'An ACL as a sorted list of grantee:privilege[:grant], independent of grantors';

-- One element per object: kind, key (OID-based, stable across renames inside one database),
-- parent key, local name, schema, identity (portable, quoted), qname (quoted name usable in DDL)
-- and props (compared; keys starting with "_" are kept for plans, never compared).
CREATE FUNCTION asymm._drift_snapshot(schemas text[], extra_nsp oid[] DEFAULT '{}') RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH nsp AS (
    SELECT n.oid, n.nspname, n.nspowner, n.nspacl FROM pg_namespace n
     WHERE (n.nspname = ANY (schemas) OR n.oid = ANY (extra_nsp)
            OR (schemas IS NULL AND n.nspname NOT IN ('asymm', 'information_schema')
                AND n.nspname !~ '^pg_'))
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                          AND d.objid = n.oid AND d.deptype = 'e')
),
member AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e'),
rel AS (
    SELECT c.*, n.nspname, format('%I.%I', n.nspname, c.relname) AS qname
      FROM pg_class c JOIN nsp n ON n.oid = c.relnamespace
     WHERE NOT EXISTS (SELECT 1 FROM member m WHERE m.classid = 'pg_class'::regclass AND m.objid = c.oid)
),
items AS (
    SELECT jsonb_build_object('kind', 'schema', 'key', 'nsp:' || n.oid, 'oid', n.oid, 'parent', NULL,
               'name', n.nspname, 'schema', n.nspname, 'identity', format('%I', n.nspname),
               'qname', format('%I', n.nspname),
               'props', jsonb_build_object('owner', pg_get_userbyid(n.nspowner),
                   'acl', asymm._drift_acl(coalesce(n.nspacl, acldefault('n', n.nspowner))))) AS item
      FROM nsp n
    UNION ALL
    SELECT jsonb_build_object('kind', 'table', 'key', 'rel:' || c.oid, 'oid', c.oid,
               'parent', 'nsp:' || c.relnamespace, 'name', c.relname, 'schema', c.nspname,
               'identity', c.qname, 'qname', c.qname,
               'props', jsonb_build_object(
                   'relkind', c.relkind, 'owner', pg_get_userbyid(c.relowner),
                   'acl', asymm._drift_acl(coalesce(c.relacl, acldefault('r', c.relowner))),
                   'persistence', c.relpersistence,
                   'partition_key', CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
                   'partition_of', (SELECT format('%I.%I', pn.nspname, pc.relname)
                                      FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent
                                      JOIN pg_namespace pn ON pn.oid = pc.relnamespace
                                     WHERE i.inhrelid = c.oid AND c.relispartition),
                   'partition_bound', CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END))
      FROM rel c WHERE c.relkind IN ('r', 'p')
    UNION ALL
    SELECT jsonb_build_object('kind', 'column', 'key', 'att:' || a.attrelid || ':' || a.attnum,
               'oid', a.attrelid, 'parent', 'rel:' || a.attrelid, 'name', a.attname, 'schema', c.nspname,
               'identity', c.qname || '.' || quote_ident(a.attname), 'qname', quote_ident(a.attname),
               'props', jsonb_build_object(
                   'type', format_type(a.atttypid, a.atttypmod),
                   'notnull', a.attnotnull,
                   'default', CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END,
                   'generated', CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END,
                   'identity', nullif(a.attidentity::text, ''),
                   'collation', CASE WHEN a.attcollation <> t.typcollation
                                     THEN (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                                             JOIN pg_namespace cn ON cn.oid = co.collnamespace
                                            WHERE co.oid = a.attcollation) END,
                   '_attnum', a.attnum,
                   '_inherited', a.attinhcount > 0))
      FROM rel c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      JOIN pg_type t ON t.oid = a.atttypid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE c.relkind IN ('r', 'p')
    UNION ALL
    SELECT jsonb_build_object('kind', 'constraint', 'key', 'con:' || k.oid, 'oid', k.oid,
               'parent', 'rel:' || k.conrelid, 'name', k.conname, 'schema', c.nspname,
               'identity', quote_ident(k.conname) || ' on ' || c.qname, 'qname', quote_ident(k.conname),
               'props', jsonb_build_object(
                   'type', k.contype, 'def', pg_get_constraintdef(k.oid), 'validated', k.convalidated,
                   '_index_def', CASE WHEN k.contype IN ('p', 'u') THEN pg_get_indexdef(k.conindid) END,
                   '_table', c.qname, '_partitioned', c.relkind = 'p'))
      FROM pg_constraint k JOIN rel c ON c.oid = k.conrelid
     WHERE k.contype IN ('c', 'f', 'p', 'u', 'x') AND k.conparentid = 0 AND k.conislocal
    UNION ALL
    SELECT jsonb_build_object('kind', 'index', 'key', 'rel:' || ic.oid, 'oid', ic.oid,
               'parent', 'rel:' || i.indrelid, 'name', ic.relname, 'schema', ic.nspname,
               'identity', ic.qname, 'qname', ic.qname,
               'props', jsonb_build_object(
                   'def', substring(pg_get_indexdef(ic.oid) FROM 'USING .*$'),
                   'unique', i.indisunique,
                   'valid', i.indisvalid,
                   '_ddl', pg_get_indexdef(ic.oid),
                   '_table', tc.qname, '_partitioned', ic.relkind = 'I'))
      FROM pg_index i JOIN rel ic ON ic.oid = i.indexrelid JOIN rel tc ON tc.oid = i.indrelid
     WHERE NOT ic.relispartition
       AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                          AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
    UNION ALL
    SELECT jsonb_build_object('kind', 'view', 'key', 'rel:' || c.oid, 'oid', c.oid,
               'parent', 'nsp:' || c.relnamespace, 'name', c.relname, 'schema', c.nspname,
               'identity', c.qname, 'qname', c.qname,
               'props', jsonb_build_object(
                   'relkind', c.relkind, 'def', pg_get_viewdef(c.oid), 'owner', pg_get_userbyid(c.relowner),
                   'acl', asymm._drift_acl(coalesce(c.relacl, acldefault('r', c.relowner)))))
      FROM rel c WHERE c.relkind IN ('v', 'm')
    UNION ALL
    SELECT jsonb_build_object('kind', 'sequence', 'key', 'rel:' || c.oid, 'oid', c.oid,
               'parent', 'nsp:' || c.relnamespace, 'name', c.relname, 'schema', c.nspname,
               'identity', c.qname, 'qname', c.qname,
               'props', jsonb_build_object(
                   'type', format_type(s.seqtypid, NULL), 'start', s.seqstart, 'increment', s.seqincrement,
                   'min', s.seqmin, 'max', s.seqmax, 'cycle', s.seqcycle, 'cache', s.seqcache,
                   'owned_by', (SELECT format('%s.%I', dc.oid::regclass::text, da.attname)
                                  FROM pg_depend d JOIN pg_class dc ON dc.oid = d.refobjid
                                  JOIN pg_attribute da ON da.attrelid = d.refobjid AND da.attnum = d.refobjsubid
                                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                   AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a'),
                   'owner', pg_get_userbyid(c.relowner),
                   'acl', asymm._drift_acl(coalesce(c.relacl, acldefault('s', c.relowner)))))
      FROM rel c JOIN pg_sequence s ON s.seqrelid = c.oid
     WHERE c.relkind = 'S'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'i')
    UNION ALL
    SELECT jsonb_build_object('kind', 'function', 'key', 'proc:' || p.oid, 'oid', p.oid,
               'parent', 'nsp:' || p.pronamespace, 'name', p.proname, 'schema', n.nspname,
               'identity', format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
               'qname', format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
               'props', jsonb_build_object(
                   'prokind', p.prokind, 'language', l.lanname, 'result', pg_get_function_result(p.oid),
                   'arguments', pg_get_function_arguments(p.oid),
                   'source', p.prosrc, 'volatility', p.provolatile, 'strict', p.proisstrict,
                   'security_definer', p.prosecdef, 'config', p.proconfig,
                   'owner', pg_get_userbyid(p.proowner),
                   'acl', asymm._drift_acl(coalesce(p.proacl, acldefault('f', p.proowner))),
                   '_ddl', pg_get_functiondef(p.oid)))
      FROM pg_proc p JOIN nsp n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
     WHERE p.prokind IN ('f', 'p')
       AND NOT EXISTS (SELECT 1 FROM member m WHERE m.classid = 'pg_proc'::regclass AND m.objid = p.oid)
    UNION ALL
    SELECT jsonb_build_object('kind', 'trigger', 'key', 'trg:' || g.oid, 'oid', g.oid,
               'parent', 'rel:' || g.tgrelid, 'name', g.tgname, 'schema', c.nspname,
               'identity', quote_ident(g.tgname) || ' on ' || c.qname, 'qname', quote_ident(g.tgname),
               'props', jsonb_build_object(
                   'def', replace(replace(pg_get_triggerdef(g.oid), ' ON ' || c.qname || ' ', ' ON <table> '),
                                  'TRIGGER ' || quote_ident(g.tgname) || ' ', 'TRIGGER <name> '),
                   'enabled', g.tgenabled,
                   '_ddl', pg_get_triggerdef(g.oid), '_table', c.qname))
      FROM pg_trigger g JOIN rel c ON c.oid = g.tgrelid
     WHERE NOT g.tgisinternal AND g.tgparentid = 0
)
SELECT coalesce(jsonb_agg(item ORDER BY item ->> 'kind', item ->> 'identity'), '[]'::jsonb) FROM items
$$;
COMMENT ON FUNCTION asymm._drift_snapshot(text[], oid[]) IS 'The schema objects drift tracks (tables, columns, constraints, indexes, views, sequences, functions, triggers, schemas) as one jsonb array';

CREATE TABLE asymm.drift_baselines (
    name         text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,63}$'),
    schemas      text[],
    database_oid oid NOT NULL,
    captured_at  timestamptz NOT NULL DEFAULT now(),
    captured_by  name NOT NULL DEFAULT current_user,
    last_ddl_id  bigint NOT NULL DEFAULT 0,
    snapshot     jsonb NOT NULL
);
COMMENT ON TABLE asymm.drift_baselines IS 'Named schema baselines captured by asymm.baseline(); kept by pg_dump';
SELECT pg_catalog.pg_extension_config_dump('asymm.drift_baselines', '');

CREATE TABLE asymm.drift_findings (
    baseline    text NOT NULL REFERENCES asymm.drift_baselines (name) ON DELETE CASCADE ON UPDATE CASCADE,
    fingerprint text NOT NULL,
    item        jsonb NOT NULL,
    detection   text NOT NULL CHECK (detection IN ('event', 'reconciliation')),
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    PRIMARY KEY (baseline, fingerprint)
);
COMMENT ON TABLE asymm.drift_findings IS 'Drift recorded by asymm.drift_reconcile() (the daemon), with when it was first and last seen';


-- A baseline of nothing would report "no drift" forever: refuse every schema list that cannot be
-- what the caller meant (empty, NULL or duplicate names, a schema that does not exist, a system or
-- extension schema, which the snapshot leaves out), before the old baseline is replaced.
CREATE FUNCTION asymm._drift_check_schemas(schemas text[]) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad text;
BEGIN
    IF schemas IS NULL THEN
        RETURN;  -- every user schema
    END IF;
    IF cardinality(schemas) = 0 OR array_ndims(schemas) <> 1 THEN
        RAISE EXCEPTION 'a baseline needs at least one schema'
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Name the schemas in a one-dimensional array, or pass NULL for every user schema.';
    END IF;
    IF array_position(schemas, NULL) IS NOT NULL OR '' = ANY (schemas) THEN
        RAISE EXCEPTION 'a baseline schema name cannot be NULL or empty'
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Name existing schemas (case-sensitive).';
    END IF;
    SELECT s INTO bad FROM unnest(schemas) s GROUP BY s HAVING count(*) > 1 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'schema % is named twice', asymm._shown(bad)
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Name each schema once.';
    END IF;
    SELECT string_agg(asymm._shown(s), ', ' ORDER BY s) INTO bad
      FROM unnest(schemas) s WHERE NOT EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = s);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'schema % does not exist', bad
              USING ERRCODE = 'invalid_schema_name',
                    HINT = 'Schema names are case-sensitive; SELECT nspname FROM pg_namespace lists them.';
    END IF;
    SELECT string_agg(format('"%s"', n.nspname), ', ' ORDER BY n.nspname) INTO bad
      FROM pg_namespace n
     WHERE n.nspname = ANY (schemas)
       AND (n.nspname ~ '^pg_' OR n.nspname IN ('information_schema', 'asymm')
            OR EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                          AND d.objid = n.oid AND d.deptype = 'e'));
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'schema % cannot be baselined: it belongs to the system or to an extension', bad
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'A baseline covers the schemas of the application; extensions have their own versions.';
    END IF;
END
$$;
COMMENT ON FUNCTION asymm._drift_check_schemas(text[]) IS 'Refuse a baseline schema list that would capture nothing meaningful (empty, duplicate, missing, system or extension schemas)';

CREATE FUNCTION asymm.baseline(name text, schemas text[] DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    snap jsonb;
    baseline_name text := name;
BEGIN
    IF baseline_name IS NULL OR baseline_name !~ '^[A-Za-z0-9_.:-]{1,63}$' THEN
        RAISE EXCEPTION 'invalid baseline name %', asymm._shown(baseline_name)
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'A baseline name is 1 to 63 letters, digits, "_", ".", ":" or "-".';
    END IF;
    PERFORM asymm._drift_check_schemas(schemas);
    snap := asymm._drift_snapshot(schemas);
    INSERT INTO asymm.drift_baselines AS b (name, schemas, database_oid, snapshot, last_ddl_id)
    VALUES (baseline_name, schemas,
            (SELECT oid FROM pg_database WHERE datname = current_database()), snap,
            coalesce((SELECT max(id) FROM asymm.ddl_log), 0))
    ON CONFLICT ON CONSTRAINT drift_baselines_pkey DO UPDATE
       SET schemas = excluded.schemas, database_oid = excluded.database_oid, snapshot = excluded.snapshot,
           captured_at = now(), captured_by = current_user, last_ddl_id = excluded.last_ddl_id;
    UPDATE asymm.drift_findings SET resolved_at = now()
     WHERE baseline = baseline_name AND resolved_at IS NULL;
    RETURN jsonb_array_length(snap);
END
$$;
COMMENT ON FUNCTION asymm.baseline(text, text[]) IS 'Capture (or move) the named schema baseline; schemas NULL means every user schema. Returns the number of objects';

CREATE FUNCTION asymm.drift_accept(name text) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    scope text[];
BEGIN
    SELECT b.schemas INTO scope FROM asymm.drift_baselines b WHERE b.name = drift_accept.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no baseline named %', asymm._shown(drift_accept.name)
              USING ERRCODE = 'undefined_object', HINT = 'SELECT name FROM asymm.drift_baselines lists them.';
    END IF;
    -- Accepting a dropped schema means the baseline stops covering it; a baseline none of whose
    -- schemas remains would capture nothing (asymm.baseline() refuses it).
    IF scope IS NOT NULL THEN
        SELECT array_agg(s ORDER BY o) INTO scope
          FROM unnest(scope) WITH ORDINALITY AS u (s, o)
         WHERE EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = u.s);
        IF scope IS NULL THEN
            RAISE EXCEPTION 'none of the schemas of baseline "%" exists any more', drift_accept.name
                  USING ERRCODE = 'invalid_schema_name',
                        HINT = 'Capture it again with asymm.baseline(name, schemas), or delete it from asymm.drift_baselines.';
        END IF;
    END IF;
    RETURN asymm.baseline(drift_accept.name, scope);
END
$$;
COMMENT ON FUNCTION asymm.drift_accept(text) IS 'Accept the current schema as the new state of the named baseline';

-- The comparison itself (PL/Python): pairs objects by OID key within the same database, then by
-- identity; reports renames and moves as such; attaches a plan back to the baseline.
CREATE FUNCTION asymm._drift_compare(base jsonb, cur jsonb, same_db boolean, lock_timeout text DEFAULT '2s')
RETURNS jsonb
LANGUAGE plpython3u STABLE
SET search_path = pg_catalog, pg_temp
AS $py$
import json

if base is None or cur is None:
    return None  # as a STRICT function would: nothing to compare
B = json.loads(base)
C = json.loads(cur)
qi = plpy.quote_ident
ql = plpy.quote_literal


def key(o):
    return (o["kind"], o["key"])


def ident_key(o):
    return (o["kind"], o["identity"])


bmap = {key(o): o for o in B}
cmap = {key(o): o for o in C}
pair = {}      # base key -> cur object
rpair = {}     # cur key -> base object
if same_db:
    for k, o in bmap.items():
        if k in cmap:
            pair[k] = cmap[k]
            rpair[k] = o
cur_by_ident = {}
for k, o in cmap.items():
    if k not in rpair:
        cur_by_ident.setdefault(ident_key(o), o)
for k, o in bmap.items():
    if k in pair:
        continue
    c = cur_by_ident.pop(ident_key(o), None)
    if c is not None:
        pair[k] = c
        rpair[key(c)] = o

# Definitions print qualified names: once a schema or relation is renamed, every view, trigger,
# default or partition that mentions it prints differently.  Translate current names back to the
# baseline names before comparing, so one rename is reported once.
renames = []
for k, o in bmap.items():
    c = pair.get(k)
    if c is None or o["kind"] not in ("schema", "table", "view", "sequence", "function"):
        continue
    if o["kind"] == "schema" and o["name"] != c["name"]:
        renames.append((c["qname"] + ".", o["qname"] + "."))
    elif o["kind"] in ("table", "view", "sequence") and o["qname"] != c["qname"]:
        renames.append((c["qname"], o["qname"]))
renames.sort(key=lambda r: -len(r[0]))
TRANSLATED = ("def", "default", "generated", "partition_of", "owned_by", "source")


def translate(value):
    if not isinstance(value, str):
        return value
    for cur_text, base_text in renames:
        value = value.replace(cur_text, base_text)
    return value


base_by_key = {o["key"]: o for o in B}
cur_by_key = {o["key"]: o for o in C}
REL_CHILD = {"column", "constraint", "index", "trigger"}
REL_KW = {"table": "TABLE", "view": "VIEW", "sequence": "SEQUENCE", "index": "INDEX", "function": "FUNCTION",
          "schema": "SCHEMA"}


def kw(o):
    if o["kind"] == "view" and o["props"].get("relkind") == "m":
        return "MATERIALIZED VIEW"
    if o["kind"] == "function" and o["props"].get("prokind") == "p":
        return "PROCEDURE"
    return REL_KW[o["kind"]]


def parent_base(o):
    return base_by_key.get(o["parent"]) if o.get("parent") else None


def parent_paired(o_cur):
    """The baseline partner of a current object's parent, if any."""
    p = o_cur.get("parent")
    if not p:
        return None
    c = cur_by_key.get(p)
    return rpair.get(("table", p)) or rpair.get(("schema", p)) if c is not None else None


def table_now(o_cur):
    """Name of a current object's table once the plan has renamed things back."""
    pb = parent_paired(o_cur)
    return pb["qname"] if pb else cur_by_key[o_cur["parent"]]["qname"]


def schema_name_after(cur_parent_key):
    pb = rpair.get(("schema", cur_parent_key))
    if pb:
        return pb["name"]
    c = cur_by_key.get(cur_parent_key)
    return c["name"] if c else None


items = []


def stmt(phase, sql, hazards=(), transactional=True, online=False):
    return {"phase": phase, "sql": sql, "hazards": list(hazards), "transactional": transactional, "online": online}


def add(kind, obj_b, obj_c, prop, old, new, severity, hazards, plan, detail=""):
    o = obj_b or obj_c
    oids = sorted({int(x["oid"]) for x in (obj_b, obj_c) if x} |
                  {int(x["parent"].split(":")[1]) for x in (obj_b, obj_c)
                   if x and x["kind"] in REL_CHILD and x["parent"]})
    items.append({
        "kind": kind, "object_type": o["kind"],
        "identity": (obj_c or obj_b)["identity"],
        "baseline_identity": obj_b["identity"] if obj_b else None,
        "property": prop, "old": old, "new": new, "severity": severity, "hazards": list(hazards),
        "detail": detail, "plan": plan,
        "match_oids": oids,
        "match_identities": sorted({x["identity"] for x in (obj_b, obj_c) if x}
                                   | {x["identity"].split(" on ", 1)[-1] for x in (obj_b, obj_c)
                                      if x and x["kind"] in ("constraint", "trigger")}
                                   | {x["identity"].rsplit(".", 1)[0] for x in (obj_b, obj_c)
                                      if x and x["kind"] == "column"}
                                   | {x["props"]["partition_of"] for x in (obj_b, obj_c)
                                      if x and x["props"].get("partition_of")}),
    })


# ---- code that a statement runs ----------------------------------------------------------------
# Some ALTER TABLE forms evaluate an expression a role wrote, with the rights of whoever runs the
# statement (ADD COLUMN's default, once, for the "missing value"; a generated column; a domain's
# checks; VALIDATE of a CHECK; ALTER TYPE ... USING; the partition constraint of ATTACH), even on
# an empty table (constant-folding IMMUTABLE calls).  CREATE INDEX and REFRESH run as the table's
# owner and are not listed.  Under the pinned search_path, pg_get_expr() qualifies every function,
# operator and type outside pg_catalog, so a qualified name is another role's code: the plan
# avoids such evaluations where it can and flags the rest with a "runs code of role X" hazard.
import re

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_STRING = re.compile(r"'(?:[^']|'')*'")
_CALL = re.compile(r'(?<![A-Za-z0-9_$."])(' + _IDENT + r')\.(' + _IDENT + r')\s*\(')
_OPERATOR = re.compile(r'OPERATOR\((' + _IDENT + r')\.([^)\s]+)\)')
_CAST = re.compile(r'::(' + _IDENT + r')\.(' + _IDENT + r')')
_owner_plans = {}


def unquote(ident):
    return ident[1:-1].replace('""', '"') if ident.startswith('"') else ident


def catalog_owners(what, schema, name):
    """Owners the catalog knows of a function, operator or type called schema.name."""
    queries = {
        "function": "SELECT DISTINCT pg_get_userbyid(p.proowner) AS o FROM pg_proc p"
                    " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 AND p.proname = $2",
        "operator": "SELECT DISTINCT pg_get_userbyid(p.oprowner) AS o FROM pg_operator p"
                    " JOIN pg_namespace n ON n.oid = p.oprnamespace WHERE n.nspname = $1 AND p.oprname = $2",
        "type": "SELECT DISTINCT pg_get_userbyid(t.typowner) AS o FROM pg_type t"
                " JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1 AND t.typname = $2",
    }
    if what not in _owner_plans:
        _owner_plans[what] = plpy.prepare(queries[what], ["text", "text"])
    return [r["o"] for r in plpy.execute(_owner_plans[what], [schema, name])]


def owners_of(what, schema_q, name_q):
    schema, name = unquote(schema_q), unquote(name_q)
    if what == "function":
        known = sorted({f["props"]["owner"] for f in B
                        if f["kind"] == "function" and f["schema"] == schema and f["name"] == name})
        if known:
            return known
    return sorted(set(catalog_owners(what, schema, name))) or [None]


def expr_code(expr):
    """[(owner, label)] of the other roles' code an expression calls: qualified functions,
    operators and casts outside pg_catalog (a cast may run a cast function or a domain's checks)."""
    if not expr:
        return []
    text = _STRING.sub("''", expr)
    found = []
    for m in _CALL.finditer(text):
        if unquote(m.group(1)) != "pg_catalog":
            found += [(o, f"{m.group(1)}.{m.group(2)}()") for o in owners_of("function", m.group(1), m.group(2))]
    for m in _OPERATOR.finditer(text):
        if unquote(m.group(1)) != "pg_catalog":
            found += [(o, f"OPERATOR({m.group(1)}.{m.group(2)})")
                      for o in owners_of("operator", m.group(1), m.group(2))]
    for m in _CAST.finditer(text):
        if unquote(m.group(1)) != "pg_catalog":
            found += [(o, f"cast to {m.group(1)}.{m.group(2)}") for o in owners_of("type", m.group(1), m.group(2))]
    return found


_domain_plan = []


def type_code(type_text):
    """A domain with CHECK constraints runs them on every value it takes, the first time even
    without a row (loading a domain constant-folds its checks)."""
    if not type_text or "." not in type_text:
        return []
    if not _domain_plan:
        _domain_plan.append(plpy.prepare(
            "SELECT pg_get_userbyid(t.typowner) AS o FROM pg_type t WHERE t.oid = to_regtype($1)"
            "   AND t.typtype = 'd' AND EXISTS (SELECT 1 FROM pg_constraint k"
            "                                    WHERE k.contypid = t.oid AND k.contype = 'c')", ["text"]))
    try:
        rows = plpy.execute(_domain_plan[0], [type_text])
    except plpy.SPIError:
        return []
    return [(r["o"], f"checks of domain {type_text}") for r in rows]


def runs_code(*found_lists):
    """One "runs code of role X: ..." hazard per role, in a stable order."""
    by_owner = {}
    for found in found_lists:
        for owner, label in found:
            labels = by_owner.setdefault(owner, [])
            if label not in labels:
                labels.append(label)
    return [("runs code of role " + qi(owner) if owner else "runs code of an unknown role") + ": "
            + ", ".join(labels) for owner, labels in sorted(by_owner.items(), key=lambda kv: kv[0] or "")]


def table_check_code(table_q):
    """Code of the CHECK constraints of a table (in the baseline or now): an ALTER TYPE re-validates
    those on the column; SET NOT NULL and ATTACH PARTITION constant-fold all of them, to see whether
    they already prove the new constraint."""
    return [x for k in B + C if k["kind"] == "constraint" and k["props"].get("type") == "c"
            and k["props"].get("_table") == table_q for x in expr_code(k["props"].get("def"))]


def partition_key_code(parent_q):
    """A partition key runs its expressions over the rows of a partition being attached."""
    for t in B + C:
        if t["kind"] == "table" and t["qname"] == parent_q and t["props"].get("partition_key"):
            return expr_code(t["props"]["partition_key"])
    return []


# ---- statements that (re)create baseline objects ---------------------------------------------
# Phases: functions are (re)created at 50, before everything that calls them: column defaults
# with code (SET DEFAULT, 52), columns whose generated expression or default must be evaluated
# (52, their NOT NULL at 53), constraints (60-63), indexes (61), views (70), triggers (71).

def column_sql(col, with_default=True):
    p = col["props"]
    s = col["qname"] + " " + p["type"]
    if p.get("collation"):
        s += " COLLATE " + p["collation"]
    if p.get("generated"):
        s += " GENERATED ALWAYS AS (" + p["generated"] + ") STORED"
    if p.get("identity"):
        s += " GENERATED " + ("ALWAYS" if p["identity"] == "a" else "BY DEFAULT") + " AS IDENTITY"
    if p.get("default") is not None and with_default:
        s += " DEFAULT " + p["default"]
    if p.get("notnull"):
        s += " NOT NULL"
    return s


def set_default(table, col):
    """ALTER COLUMN ... SET DEFAULT stores the expression and evaluates nothing."""
    return stmt(52, f"ALTER TABLE {table} ALTER COLUMN {col['qname']} SET DEFAULT {col['props']['default']}")


def add_column(table, col):
    """Re-add a dropped column without evaluating its owner's code where that can be avoided.

    ADD COLUMN ... DEFAULT evaluates a non-volatile default once, at ALTER time, even on an empty
    table: a default that calls another role's code is added afterwards with SET DEFAULT, unless
    the column is NOT NULL (existing rows need its value: flagged, to be run as that role)."""
    p = col["props"]
    code = expr_code(p.get("default"))
    evaluates = bool(p.get("generated")) and bool(expr_code(p["generated"]))
    split = bool(code) and not p.get("notnull")
    plain = dict(col, props=dict(p, notnull=False))
    hazards = ["data loss: the old values cannot be restored"] + runs_code(
        [] if split else code, expr_code(p.get("generated")), type_code(p.get("type")))
    phase = 52 if (code and not split) or evaluates else 40
    plan = [stmt(phase, f"ALTER TABLE {table} ADD COLUMN {column_sql(plain, with_default=not split)}",
                 hazards=hazards)]
    if split:
        plan.append(set_default(table, col))
    if p.get("notnull") and not p.get("identity"):
        plan += not_null_route(table, col["qname"], col["name"], phase=43 if phase == 40 else 53)
    return plan


def not_null_route(table, col_q, col_name, phase=43):
    cname = qi(("asymm_nn_" + col_name)[:63])
    return [
        stmt(phase, f"ALTER TABLE {table} ADD CONSTRAINT {cname} CHECK ({col_q} IS NOT NULL) NOT VALID", online=True),
        stmt(phase, f"ALTER TABLE {table} VALIDATE CONSTRAINT {cname}", online=True),
        stmt(phase, f"ALTER TABLE {table} ALTER COLUMN {col_q} SET NOT NULL", online=True,
             hazards=runs_code(table_check_code(table))),
        stmt(phase, f"ALTER TABLE {table} DROP CONSTRAINT {cname}"),
    ]


def create_constraint(k, fresh_table=False):
    p = k["props"]
    t = p["_table"]
    if p["type"] in ("p", "u") and p.get("_index_def") and not p.get("_partitioned") and not fresh_table:
        idx = p["_index_def"].replace(" INDEX ", " INDEX CONCURRENTLY ", 1)
        idx_name = idx.split(" CONCURRENTLY ", 1)[1].split(" ON ", 1)[0]
        return [stmt(60, idx, transactional=False, online=True),
                stmt(60, f"ALTER TABLE {t} ADD CONSTRAINT {k['qname']} "
                         f"{'PRIMARY KEY' if p['type'] == 'p' else 'UNIQUE'} USING INDEX {idx_name}", online=True)]
    phase = 63 if p["type"] == "f" else (60 if p["type"] in ("p", "u", "x") else 62)
    # A CHECK is added NOT VALID (which evaluates nothing) and then validated, even on a table the
    # plan just created: validating prepares the expression, which constant-folds its calls.
    # (A validated CHECK of a new plain table goes inline into its CREATE TABLE instead.)
    if p["type"] == "c" or (p["type"] == "f" and not fresh_table and not p.get("_partitioned")):
        out = [stmt(phase, f"ALTER TABLE {t} ADD CONSTRAINT {k['qname']} {p['def']} NOT VALID", online=True)]
        if p.get("validated"):
            out.append(stmt(phase, f"ALTER TABLE {t} VALIDATE CONSTRAINT {k['qname']}", online=True,
                            hazards=runs_code(expr_code(p["def"])) if p["type"] == "c" else ()))
        return out
    return [stmt(phase, f"ALTER TABLE {t} ADD CONSTRAINT {k['qname']} {p['def']}",
                 hazards=() if fresh_table else ("long exclusive lock",))]


def create_index(i, fresh_table=False):
    p = i["props"]
    if p.get("_partitioned") or fresh_table:
        return [stmt(61, p["_ddl"], hazards=() if fresh_table else ("blocks writes while building",))]
    return [stmt(61, p["_ddl"].replace(" INDEX ", " INDEX CONCURRENTLY ", 1), transactional=False, online=True)]


def acl_plan(o, old, new, phase=81):
    target = kw(o) + " " + o["qname"]
    if o["kind"] == "view":
        target = "TABLE " + o["qname"]
    out = []
    for entry in sorted(set(new) - set(old)):
        grantee, priv = entry.split(":")[:2]
        out.append(stmt(phase, f"REVOKE {priv} ON {target} FROM {grantee}"))
    for entry in sorted(set(old) - set(new)):
        parts = entry.split(":")
        out.append(stmt(phase, f"GRANT {parts[1]} ON {target} TO {parts[0]}"
                               + (" WITH GRANT OPTION" if len(parts) > 2 else "")))
    return out


def children(base_parent_key, kind):
    return [o for o in B if o.get("parent") == base_parent_key and o["kind"] == kind]


ACL_KIND = {"table": "r", "view": "r", "sequence": "s", "function": "f", "schema": "n"}


def ownership_after_create(o):
    """A re-created object starts with the creator as owner and default privileges: put back
    the baseline owner and grants."""
    p = o["props"]
    if "owner" not in p:
        return []
    out = []
    me = plpy.execute("SELECT current_user AS u")[0]["u"]
    if p["owner"] != me:
        out.append(stmt(80, f"ALTER {kw(o)} {o['qname']} OWNER TO {qi(p['owner'])}"))
    default = json.loads(plpy.execute(
        "SELECT asymm._drift_acl(acldefault(%s, %s::regrole))::text AS a"
        % (ql(ACL_KIND[o["kind"]]), ql(p["owner"])))[0]["a"])
    return out + acl_plan(o, p.get("acl") or [], default)


def create_relation(o):
    return create_relation_only(o) + ownership_after_create(o)


def create_relation_only(o):
    p = o["props"]
    if o["kind"] == "table":
        inline, later = [], []
        if p.get("partition_of"):
            sql = f"CREATE TABLE {o['qname']} PARTITION OF {p['partition_of']} {p['partition_bound']}"
            hazards = runs_code(partition_key_code(p["partition_of"]))
        else:
            cols = sorted(children(o["key"], "column"), key=lambda c: c["props"]["_attnum"])
            # CREATE TABLE evaluates no default or CHECK, but a default must not name a
            # function before the plan re-creates it (phase 50): those are set afterwards.
            later = [c for c in cols if expr_code(c["props"].get("default"))]
            inline = [k for k in children(o["key"], "constraint")
                      if k["props"]["type"] == "c" and k["props"].get("validated")]
            sql = f"CREATE {'UNLOGGED ' if p.get('persistence') == 'u' else ''}TABLE {o['qname']} (" + \
                ", ".join([column_sql(c, with_default=c not in later) for c in cols]
                          + [f"CONSTRAINT {k['qname']} {k['props']['def']}" for k in inline]) + ")"
            if p.get("partition_key"):
                sql += " PARTITION BY " + p["partition_key"]
            # ... but it plans a generated expression and a partition key (checking that they are
            # immutable), which constant-folds their calls.
            hazards = runs_code(expr_code(p.get("partition_key")),
                                *[expr_code(c["props"].get("generated")) for c in cols])
        phase = 32 if not p.get("partition_of") else 33
        out = [stmt(phase, sql, hazards=hazards)] + [set_default(o["qname"], c) for c in later]
        for k in children(o["key"], "constraint"):
            if k not in inline:
                out += create_constraint(k, fresh_table=True)
        for i in children(o["key"], "index"):
            out += create_index(i, fresh_table=True)
        for t in children(o["key"], "trigger"):
            out.append(stmt(71, t["props"]["_ddl"]))
        return out
    if o["kind"] == "view":
        if p["relkind"] == "m":
            # WITH NO DATA, filled by REFRESH once its owner is back: CREATE ... WITH DATA would run
            # the view's query (its functions) with the rights of whoever applies the plan, a
            # superuser; REFRESH runs it as the view's owner, in a security-restricted operation.
            return [stmt(70, f"CREATE MATERIALIZED VIEW {o['qname']} AS {p['def'].rstrip().rstrip(';')} WITH NO DATA"),
                    stmt(82, f"REFRESH MATERIALIZED VIEW {o['qname']}", hazards=("long exclusive lock",))]
        return [stmt(70, f"CREATE VIEW {o['qname']} AS {p['def'].rstrip(';')}")]
    if o["kind"] == "sequence":
        out = [stmt(31, f"CREATE SEQUENCE {o['qname']} AS {p['type']} INCREMENT BY {p['increment']}"
                        f" MINVALUE {p['min']} MAXVALUE {p['max']} START WITH {p['start']} CACHE {p['cache']}"
                        + (" CYCLE" if p["cycle"] else ""))]
        if p.get("owned_by"):
            out.append(stmt(45, f"ALTER SEQUENCE {o['qname']} OWNED BY {p['owned_by']}"))
        return out
    if o["kind"] == "function":
        return [stmt(50, o["props"]["_ddl"])]
    if o["kind"] == "schema":
        return [stmt(30, f"CREATE SCHEMA {o['qname']}")]
    raise ValueError(o["kind"])


def drop_relation(o, for_added=True):
    p = o["props"]
    if o["kind"] == "table":
        return [stmt(91, f"DROP TABLE {o['qname']}", hazards=("data loss",))]
    if o["kind"] == "view":
        return [stmt(11, f"DROP {kw(o)} {o['qname']}")]
    if o["kind"] == "sequence":
        return [stmt(92, f"DROP SEQUENCE {o['qname']}", hazards=("data loss",))]
    if o["kind"] == "function":
        return [stmt(15, f"DROP {kw(o)} {o['qname']}")]
    if o["kind"] == "schema":
        return [stmt(93, f"DROP SCHEMA {o['qname']}")]
    if o["kind"] == "index":
        if p.get("_partitioned"):
            return [stmt(14, f"DROP INDEX {o['qname']}")]
        return [stmt(14, f"DROP INDEX CONCURRENTLY {o['qname']}", transactional=False, online=True)]
    raise ValueError(o["kind"])


# ---- removed -----------------------------------------------------------------------------------
removed_keys = {o["key"] for o in B if key(o) not in pair}
added_keys = {o["key"] for o in C if key(o) not in rpair}

for o in B:
    if key(o) in pair:
        continue
    if o["kind"] in REL_CHILD and o["parent"] in removed_keys:
        continue  # folded into the CREATE TABLE of its table
    p = o["props"]
    if o["kind"] == "column":
        plan = add_column(base_by_key[o["parent"]]["qname"], o)
        add("removed", o, None, None, p, None, "destructive", ["data loss"], plan)
    elif o["kind"] == "constraint":
        add("removed", o, None, None, p["def"], None, "functional", ["constraint dropped"], create_constraint(o))
    elif o["kind"] == "index":
        add("removed", o, None, None, p["def"], None, "functional", ["index dropped"], create_index(o))
    elif o["kind"] == "trigger":
        add("removed", o, None, None, p["def"], None, "functional", ["trigger dropped"],
            [stmt(71, p["_ddl"])])
    elif o["kind"] in ("table", "sequence", "schema"):
        add("removed", o, None, None, None, None, "destructive", ["data loss"] if o["kind"] != "schema" else [],
            create_relation(o))
    else:
        add("removed", o, None, None, None, None, "functional", [], create_relation(o))

# ---- added -------------------------------------------------------------------------------------
for o in C:
    if key(o) in rpair:
        continue
    if o["kind"] in REL_CHILD and o["parent"] in added_keys:
        continue
    p = o["props"]
    if o["kind"] == "column":
        t = table_now(o)
        add("added", None, o, None, None, p, "functional", [],
            [stmt(90, f"ALTER TABLE {t} DROP COLUMN {o['qname']}", hazards=("data loss",))])
    elif o["kind"] == "constraint":
        add("added", None, o, None, None, p["def"], "functional", [],
            [stmt(12 if p["type"] == "f" else 13, f"ALTER TABLE {p['_table']} DROP CONSTRAINT {o['qname']}")])
    elif o["kind"] == "index":
        add("added", None, o, None, None, p["def"], "cosmetic", [], drop_relation(o))
    elif o["kind"] == "trigger":
        add("added", None, o, None, None, p["def"], "functional", [],
            [stmt(10, f"DROP TRIGGER {o['qname']} ON {p['_table']}")])
    else:
        add("added", None, o, None, None, None, "functional", [], drop_relation(o))

# ---- paired: renamed, moved, changed -----------------------------------------------------------
ENABLED = {"O": "ENABLE", "D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}
for o in B:
    c = pair.get(key(o))
    if c is None:
        continue
    bp, cp = o["props"], c["props"]
    kind = o["kind"]
    # moved: a relation or function whose schema is not the partner of the baseline schema
    if kind in ("table", "view", "sequence", "function"):
        sb = pair.get(("schema", o["parent"]))
        moved = (sb["key"] != c["parent"]) if sb else (o["schema"] != c["schema"])
        cur_q = qi(schema_name_after(c["parent"]) or c["schema"]) + "." + \
            (c["qname"].split(".", 1)[1] if kind != "function" else c["qname"].split(".", 1)[1])
        plan = []
        if moved:
            plan.append(stmt(21, f"ALTER {kw(o)} {cur_q} SET SCHEMA {qi(o['schema'])}"))
            cur_q = qi(o["schema"]) + "." + cur_q.split(".", 1)[1]
        if o["name"] != c["name"]:
            plan.append(stmt(21, f"ALTER {kw(o)} {cur_q} RENAME TO {qi(o['name'])}"))
        if moved:
            add("moved", o, c, "schema", o["schema"], c["schema"], "functional", ["breaks dependents"], plan)
        elif plan:
            add("renamed", o, c, "name", o["name"], c["name"], "functional", ["breaks dependents"], plan)
    elif kind == "schema" and o["name"] != c["name"]:
        add("renamed", o, c, "name", o["name"], c["name"], "functional", ["breaks dependents"],
            [stmt(20, f"ALTER SCHEMA {c['qname']} RENAME TO {o['qname']}")])
    elif kind in REL_CHILD and o["name"] != c["name"]:
        t = base_by_key[o["parent"]]["qname"]
        if kind == "column":
            sql = f"ALTER TABLE {t} RENAME COLUMN {c['qname']} TO {o['qname']}"
        elif kind == "constraint":
            sql = f"ALTER TABLE {t} RENAME CONSTRAINT {c['qname']} TO {o['qname']}"
        elif kind == "trigger":
            sql = f"ALTER TRIGGER {c['qname']} ON {t} RENAME TO {o['qname']}"
        else:
            sql = f"ALTER INDEX {qi(o['schema'])}.{qi(c['name'])} RENAME TO {qi(o['name'])}"
        add("renamed", o, c, "name", o["name"], c["name"], "functional" if kind == "column" else "cosmetic",
            ["breaks dependents"] if kind == "column" else [], [stmt(22, sql)])

    # property changes
    for prop in sorted(set(bp) | set(cp)):
        if prop.startswith("_"):
            continue
        old, new = bp.get(prop), cp.get(prop)
        if old == new or (prop in TRANSLATED and old == translate(new)):
            continue
        plan, severity, hazards, k = [], "functional", [], "changed"
        if kind == "column":
            t = base_by_key[o["parent"]]["qname"]
            col = o["qname"]
            if prop == "type":
                hazards = ["table rewrite", "long exclusive lock"]
                # The cast may be another role's (cast function, domain checks), and the rewrite
                # re-validates the table's CHECKs on the column.
                plan = [stmt(41, f"ALTER TABLE {t} ALTER COLUMN {col} TYPE {old} USING {col}::{old}",
                             hazards=["table rewrite", "long exclusive lock", "possible data loss"]
                             + runs_code(type_code(old), expr_code(f"{col}::{old}"), table_check_code(t)))]
            elif prop == "default":
                # SET DEFAULT evaluates nothing; after phase 50, so that its functions exist.
                plan = [stmt(52, f"ALTER TABLE {t} ALTER COLUMN {col} SET DEFAULT {old}") if old is not None
                        else stmt(42, f"ALTER TABLE {t} ALTER COLUMN {col} DROP DEFAULT")]
            elif prop == "notnull":
                if old:
                    plan = not_null_route(t, col, o["name"])
                else:
                    plan = [stmt(43, f"ALTER TABLE {t} ALTER COLUMN {col} DROP NOT NULL")]
                    hazards = ["long exclusive lock"]
            elif prop == "identity":
                if old and not new:
                    plan = [stmt(44, f"ALTER TABLE {t} ALTER COLUMN {col} ADD GENERATED "
                                     f"{'ALWAYS' if old == 'a' else 'BY DEFAULT'} AS IDENTITY")]
                elif new and not old:
                    plan = [stmt(44, f"ALTER TABLE {t} ALTER COLUMN {col} DROP IDENTITY")]
                else:
                    plan = [stmt(44, f"ALTER TABLE {t} ALTER COLUMN {col} SET GENERATED "
                                     f"{'ALWAYS' if old == 'a' else 'BY DEFAULT'}")]
            elif prop == "generated":
                if new and not old:
                    plan = [stmt(44, f"ALTER TABLE {t} ALTER COLUMN {col} DROP EXPRESSION")]
                else:
                    code = runs_code(expr_code(old), expr_code(bp.get("default")), type_code(bp.get("type")))
                    plan = [stmt(44, f"ALTER TABLE {t} DROP COLUMN {col}", hazards=("data loss",)),
                            stmt(52 if code else 44, f"ALTER TABLE {t} ADD COLUMN {column_sql(o)}",
                                 hazards=["table rewrite", "long exclusive lock"] + code)]
                    hazards = ["table rewrite"]
            elif prop == "collation":
                plan = [stmt(41, f"ALTER TABLE {t} ALTER COLUMN {col} TYPE {bp['type']}"
                                 + (f" COLLATE {old}" if old else ' COLLATE "default"'),
                             hazards=["long exclusive lock"] + runs_code(type_code(bp["type"]),
                                                                         table_check_code(t)))]
        elif kind == "constraint":
            t = bp["_table"]
            if prop == "validated" and old and not new:
                k, hazards = "invalid", ["constraint not validated"]
                plan = [stmt(62, f"ALTER TABLE {t} VALIDATE CONSTRAINT {o['qname']}", online=True,
                             hazards=runs_code(expr_code(bp["def"])) if bp.get("type") == "c" else ())]
            elif prop == "validated":
                severity = "cosmetic"
            else:
                plan = [stmt(13, f"ALTER TABLE {cp['_table']} DROP CONSTRAINT {c['qname']}")] + create_constraint(o)
        elif kind == "index":
            if prop == "valid" and old and not new:
                k, hazards = "invalid", ["index invalid"]
                # Drop and rebuild rather than REINDEX: pg_dump leaves invalid indexes out, and an
                # invalid index left by a failed CREATE INDEX CONCURRENTLY is best rebuilt anew.
                plan = [stmt(14, f"DROP INDEX CONCURRENTLY IF EXISTS {qi(o['schema'])}.{qi(c['name'])}",
                             transactional=False, online=True)] + create_index(o)
            elif prop == "valid":
                severity = "cosmetic"
            elif prop in ("def", "unique"):
                if prop == "unique" and "def" in [p2 for p2 in bp if bp.get(p2) != cp.get(p2)]:
                    continue
                hazards = ["index dropped"]
                plan = drop_relation(dict(c, qname=qi(o["schema"]) + "." + qi(o["name"]))) + create_index(o)
        elif kind == "trigger":
            if prop == "enabled":
                plan = [stmt(71, f"ALTER TABLE {bp['_table']} {ENABLED[old]} TRIGGER {o['qname']}")]
            else:
                plan = [stmt(10, f"DROP TRIGGER {c['qname']} ON {cp['_table']}"), stmt(71, bp["_ddl"])]
        elif prop == "owner":
            plan = [stmt(80, f"ALTER {kw(o)} {o['qname']} OWNER TO {qi(old)}")]
            hazards = ["privilege change"]
        elif prop == "acl":
            plan = acl_plan(o, old, new)
            hazards = ["privilege change"]
        elif kind == "view":
            # CREATE OR REPLACE VIEW cannot drop or retype columns: drop and re-create instead.
            plan = [stmt(11, f"DROP {kw(c)} {o['qname']}", hazards=("breaks dependents",))] + create_relation(o)
        elif kind == "function":
            # One statement for all the changes of a function: the first changed property carries it.
            changed = [p2 for p2 in sorted(set(bp) | set(cp)) if not p2.startswith("_")
                       and p2 not in ("owner", "acl") and bp.get(p2) != cp.get(p2)
                       and not (p2 in TRANSLATED and bp.get(p2) == translate(cp.get(p2)))]
            if prop != changed[0]:
                plan = []
            elif {"result", "prokind"} & set(changed):
                plan = [stmt(15, f"DROP {kw(c)} {o['qname']}")] + create_relation(o)
            else:
                plan = [stmt(50, bp["_ddl"])]
        elif kind == "sequence":
            clause = {"type": f"AS {old}", "start": f"START WITH {old}", "increment": f"INCREMENT BY {old}",
                      "min": f"MINVALUE {old}", "max": f"MAXVALUE {old}", "cycle": "CYCLE" if old else "NO CYCLE",
                      "cache": f"CACHE {old}", "owned_by": f"OWNED BY {old or 'NONE'}"}[prop]
            plan = [stmt(45, f"ALTER SEQUENCE {o['qname']} {clause}")]
        elif kind == "table":
            t = o["qname"]
            if prop in ("partition_of", "partition_bound"):
                if prop == "partition_bound" and "partition_of" in [p2 for p2 in bp if bp.get(p2) != cp.get(p2)]:
                    continue
                plan = []
                if new:
                    plan.append(stmt(33, f"ALTER TABLE {cp['partition_of']} DETACH PARTITION {t}"))
                if old:
                    plan.append(stmt(33, f"ALTER TABLE {old if prop == 'partition_of' else bp['partition_of']} "
                                         f"ATTACH PARTITION {t} {bp['partition_bound']}",
                                     hazards=["scans the partition"] + runs_code(partition_key_code(
                                         old if prop == 'partition_of' else bp['partition_of']),
                                         table_check_code(t))))
            elif prop == "persistence":
                plan = [stmt(41, f"ALTER TABLE {t} SET {'UNLOGGED' if old == 'u' else 'LOGGED'}",
                             hazards=("table rewrite", "long exclusive lock"))]
            else:
                plan = []
                severity = "destructive"
                hazards = ["data loss"]
        add(k, o, c, prop, old, new, severity, hazards, plan)

order = {"removed": 0, "renamed": 1, "moved": 2, "changed": 3, "invalid": 4, "added": 5}
items.sort(key=lambda i: (order[i["kind"]], i["object_type"], i["identity"], i["property"] or ""))
return json.dumps(items)
$py$;
COMMENT ON FUNCTION asymm._drift_compare(jsonb, jsonb, boolean, text) IS 'Compare two snapshots: drift items with kind, severity, hazards and the statements that go back to the first';

CREATE FUNCTION asymm._drift_items(baseline_name text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b asymm.drift_baselines;
    extra oid[];
BEGIN
    SELECT * INTO b FROM asymm.drift_baselines WHERE name = baseline_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no baseline named %', asymm._shown(baseline_name)
              USING ERRCODE = 'undefined_object',
                    HINT = 'Capture one with SELECT asymm.baseline(name); SELECT name FROM asymm.drift_baselines lists them.';
    END IF;
    -- A renamed schema is still in scope: follow the baseline's schema OIDs.
    SELECT coalesce(array_agg((e ->> 'oid')::oid), '{}') INTO extra
      FROM jsonb_array_elements(b.snapshot) e WHERE e ->> 'kind' = 'schema';
    RETURN asymm._drift_compare(
        b.snapshot,
        asymm._drift_snapshot(b.schemas, CASE WHEN b.schemas IS NULL THEN '{}' ELSE extra END),
        b.database_oid = (SELECT oid FROM pg_database WHERE datname = current_database()),
        asymm.setting('drift.lock_timeout'));
END
$$;
COMMENT ON FUNCTION asymm._drift_items(text) IS 'Raw drift items of one baseline (with their plan statements) as jsonb';

CREATE FUNCTION asymm.drift(name text DEFAULT NULL)
RETURNS TABLE (baseline text, kind text, object_type text, identity text, baseline_identity text,
               property text, old_value jsonb, new_value jsonb, severity text, hazards text[],
               who name, changed_at timestamptz, command_tag text, statement text, txid xid8,
               detection text, plan jsonb)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT b.name, i ->> 'kind', i ->> 'object_type', i ->> 'identity', i ->> 'baseline_identity',
       i ->> 'property', i -> 'old', i -> 'new', i ->> 'severity',
       ARRAY(SELECT jsonb_array_elements_text(i -> 'hazards')),
       l.role_name, l.logged_at, l.command_tag,
       -- the statement text only to a login role that may read asymm.ddl_log itself: a DDL's text can
       -- hold a password (ALTER ROLE ... PASSWORD sent in the same query string), and a reader may not
       CASE WHEN pg_catalog.has_table_privilege(session_user, 'asymm.ddl_log', 'SELECT') THEN l.statement END,
       l.txid,
       CASE WHEN l.id IS NULL THEN 'reconciliation' ELSE 'event' END,
       i -> 'plan'
  FROM asymm.drift_baselines b
 CROSS JOIN LATERAL jsonb_array_elements(asymm._drift_items(b.name)) AS i
  LEFT JOIN LATERAL (
        SELECT * FROM asymm.ddl_log l
         WHERE l.id > b.last_ddl_id
           AND (l.objid IN (SELECT (jsonb_array_elements_text(i -> 'match_oids'))::oid)
                OR l.object_identity IN (SELECT jsonb_array_elements_text(i -> 'match_identities')))
         ORDER BY l.object_identity IN (i ->> 'identity', i ->> 'baseline_identity') DESC, l.id DESC
         LIMIT 1) AS l ON true
 WHERE drift.name IS NULL OR b.name = drift.name
 ORDER BY b.name, CASE i ->> 'kind' WHEN 'removed' THEN 0 WHEN 'renamed' THEN 1 WHEN 'moved' THEN 2
                                     WHEN 'changed' THEN 3 WHEN 'invalid' THEN 4 ELSE 5 END,
          i ->> 'object_type', i ->> 'identity', i ->> 'property'
$$;
COMMENT ON FUNCTION asymm.drift(text) IS 'Differences between a baseline (every baseline when NULL) and the live schema, with severity, hazards, who/when from the DDL log and the plan back';

CREATE FUNCTION asymm.drift_plan(name text)
RETURNS TABLE (step integer, phase integer, statement text, transactional boolean, online boolean, hazards text[])
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT (row_number() OVER (ORDER BY (s.value ->> 'phase')::int, s.ord, s.pos))::int,
       (s.value ->> 'phase')::int, s.value ->> 'sql', (s.value ->> 'transactional')::boolean,
       (s.value ->> 'online')::boolean, ARRAY(SELECT jsonb_array_elements_text(s.value -> 'hazards'))
  FROM (SELECT p.value, i.ord, p.ordinality AS pos
          FROM jsonb_array_elements(asymm._drift_items(drift_plan.name)) WITH ORDINALITY AS i(item, ord)
         CROSS JOIN LATERAL jsonb_array_elements(i.item -> 'plan') WITH ORDINALITY AS p) AS s
 ORDER BY 1
$$;
COMMENT ON FUNCTION asymm.drift_plan(text) IS 'Dependency-ordered statements that bring the schema back to the named baseline (online forms first)';

CREATE FUNCTION asymm.drift_sql(name text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce(string_agg(
           CASE WHEN cardinality(p.hazards) > 0
                THEN '-- hazards: ' || array_to_string(p.hazards, ', ') || E'\n' ELSE '' END
           || CASE WHEN NOT p.transactional THEN E'-- cannot run inside a transaction block\n' ELSE '' END
           || format('SET lock_timeout = %L;', asymm.setting('drift.lock_timeout')) || E'\n'
           || p.statement || ';', E'\n' ORDER BY p.step), '-- no drift')
  FROM asymm.drift_plan(drift_sql.name) p
$$;
COMMENT ON FUNCTION asymm.drift_sql(text) IS 'The migration plan of asymm.drift_plan() as one psql script, each statement preceded by its lock_timeout';

CREATE FUNCTION asymm.drift_reconcile() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fresh integer := 0;
    n integer;
BEGIN
    WITH d AS (
        SELECT d.baseline, md5(concat_ws('|', d.kind, d.object_type, d.identity, d.property, d.new_value::text)) AS fp,
               to_jsonb(d) - 'plan' AS item, d.detection
          FROM asymm.drift() d
    ), ins AS (
        INSERT INTO asymm.drift_findings AS f (baseline, fingerprint, item, detection)
        SELECT baseline, fp, item, detection FROM d
        ON CONFLICT (baseline, fingerprint) DO UPDATE
           SET last_seen = now(), resolved_at = NULL, item = excluded.item
        RETURNING (xmax = 0) AS inserted
    ), gone AS (
        UPDATE asymm.drift_findings f SET resolved_at = now()
         WHERE f.resolved_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM d WHERE d.baseline = f.baseline AND d.fp = f.fingerprint)
        RETURNING 1
    )
    SELECT count(*) FILTER (WHERE inserted), (SELECT count(*) FROM gone) INTO fresh, n FROM ins;
    RETURN fresh;
END
$$;
COMMENT ON FUNCTION asymm.drift_reconcile() IS 'Full catalog diff of every baseline, recorded in asymm.drift_findings (daemon task); returns the number of new findings';

-- ===== sql/96_daemon_role.sql =====
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

-- ===== sql/98_reader.sql =====
-- asymm: since 0.2.0
-- Reader roles, and the one 0.1.0 function that ran with its caller's search_path.
--
-- 0.1.0's asymm.grant_reader() granted every STABLE or IMMUTABLE function whose name does not
-- start with "_", and SELECT on the views: volatility is not what a function does (a VOLATILE
-- report such as asymm.coherence() writes nothing; a STABLE SECURITY DEFINER function could reveal
-- what its owner may read), the views call internal functions, and the reports read tables.  So a
-- reader was refused asymm top, annotations, coherence, graph, impact, drift, advise, verify and
-- duplicates.  Now the list is explicit: every function named below (all its overloads) reads and
-- writes nothing but the backend-local state of the call itself, and every table named below holds
-- reports or history, never a secret.  Not granted: asymm.ddl_log (the full text of every DDL
-- statement: CREATE USER MAPPING ... OPTIONS (password ...) is DDL), the sync outbox (row keys of
-- tables the reader may not read), and everything that writes.  A user table's rows are never
-- made readable through asymm: asymm.find_duplicates() runs with the reader's own rights.

ALTER FUNCTION asymm.plpython_version() SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION asymm.grant_reader(grantee regrole) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    readers CONSTANT text[] := ARRAY[
        -- core
        'setting', 'version', 'plpython_version', 'status',
        -- annotations: the view, resolve, the vocabulary, fingerprints (internals the view and
        -- resolve() call with the caller's rights)
        'annotation_vocabulary', 'normalize_query', 'query_fingerprint', 'amplify', 'resolve',
        '_annotation_rank', '_annotation_problem', '_relkind_matches', '_address_object', '_cache_valid',
        '_locate', '_target_label', '_tuple', '_ranked', '_resolve_address', '_address_of',
        '_column_address', '_query_address', '_parse_target', '_session_lookup',
        -- Semantic Sonar (verdicts only; infer() writes annotations).  Statements are planned as
        -- their authors (asymm._explain_as): a reader plans only its own and its roles' statements.
        'coherence', 'coherence_verdicts', 'generic_plan', '_generic_plan', 'plan_cost_class', '_plan_cost_class',
        '_pgss_queries', '_plan_as_refusal', '_explain_as', '_param_types_as', '_shown',
        '_plannable', '_relation_rows', '_observed_lineage',
        -- telemetry and state reports
        'query_history', 'query_report', 'slow_queries', 'smoothness', '_pg_stat_statements_schema',
        'find_duplicates', 'state_report', 'index_health', '_row_state_columns', '_refuse_row_security',
        -- sync and drift reports
        'sync_status', 'sync_key_text', 'drift', 'drift_plan', 'drift_sql', '_drift_items', '_drift_compare',
        '_drift_snapshot', '_drift_acl'];
    tables CONSTANT text[] := ARRAY[
        'setting_defaults', 'setting_values', 'daemons',
        'annotation_entries', 'annotation_target_cache', 'annotation_conflicts',
        'queries', 'query_stats', 'query_stats_minute', 'telemetry_state', 'state_history',
        'index_suggestions', 'index_suggestion_baselines',
        'sync_tables', 'sync_sensitive_pins', 'sync_state', 'drift_baselines', 'drift_findings'];
    grantee_name name := asymm._role_name(grantee);
    fn regprocedure;
    rel regclass;
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA asymm TO %I', grantee_name);
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = 'asymm'::regnamespace AND p.proname = ANY (readers)
         ORDER BY p.oid
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', fn, grantee_name);
    END LOOP;
    FOR rel IN
        SELECT c.oid::regclass FROM pg_class c
         WHERE c.relnamespace = 'asymm'::regnamespace
           AND (c.relkind IN ('v', 'm') OR (c.relkind IN ('r', 'p') AND c.relname = ANY (tables)))
         ORDER BY c.oid
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO %I', rel, grantee_name);
    END LOOP;
END
$$;
COMMENT ON FUNCTION asymm.grant_reader(regrole) IS 'Let a role use the read-only part of asymm: schema usage, the report functions and views, SELECT on the report and history tables (never on asymm.ddl_log or the sync outbox); nothing that writes';

-- ===== sql/99_privileges.sql =====
-- asymm: always
-- Runs at the end of every install and upgrade script, so that whatever a version adds starts
-- locked down: nothing in schema asymm is executable by PUBLIC until a DBA grants it (for the
-- read-only part, asymm.grant_reader()).  Must stay idempotent.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA asymm FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA asymm FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA asymm FROM PUBLIC;
