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
AS $plpython$
-- asymm: include control/asymm/annotations/problem.py
return annotation_problem(entry)
$plpython$;
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
