-- asymm: since 0.2.0
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
