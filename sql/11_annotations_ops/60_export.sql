-- asymm: since 0.3.0
-- Annotations travel with pg_dump (asymm.annotation_entries is a configuration table), but not with
-- pg_dump --schema-only, which is what a DBA copies between environments (issue 19).  Export
-- writes them as JSON keyed by the portable address of each target; import writes them back into
-- a database where those targets exist.  Propagated copies are not exported: asymm.propagate()
-- derives them again.  Neither is SECURITY DEFINER: they read and write with the caller's rights.

CREATE FUNCTION asymm.export_annotations() RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce(jsonb_agg(jsonb_build_object(
           'target_type', e.target_type, 'target_names', to_jsonb(e.target_names),
           'target_args', to_jsonb(e.target_args), 'query_text', e.query_text, 'symbol', e.symbol,
           'scope', e.scope, 'regime', e.regime, 'cost', e.cost, 'lineage', to_jsonb(e.lineage),
           'source', e.source, 'confidence', e.confidence, 'evidence', e.evidence)
         ORDER BY e.target_type, e.target_names, e.target_args, e.source), '[]'::jsonb)
  FROM asymm.annotation_entries e
 WHERE e.derived_from IS NULL
$$;
COMMENT ON FUNCTION asymm.export_annotations() IS 'Every annotation but propagated copies, as a JSON array keyed by target address (for asymm.import_annotations() after a schema-only copy)';

CREATE FUNCTION asymm.import_annotations(annotations jsonb) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a jsonb;
    n integer := 0;
    required text[] := ARRAY['target_type', 'target_names', 'symbol', 'scope', 'regime', 'cost'];
BEGIN
    IF annotations IS NULL OR jsonb_typeof(annotations) <> 'array' THEN
        RAISE EXCEPTION 'import_annotations expects a JSON array, got %', coalesce(jsonb_typeof(annotations), 'NULL')
              USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass the output of asymm.export_annotations().';
    END IF;
    FOR a IN SELECT value FROM jsonb_array_elements(annotations) LOOP
        n := n + 1;
        IF jsonb_typeof(a) <> 'object' OR NOT (a ?& required)
           OR jsonb_typeof(a -> 'target_names') <> 'array'
           OR (a ? 'target_args' AND jsonb_typeof(a -> 'target_args') NOT IN ('array', 'null'))
           OR (a ? 'lineage' AND jsonb_typeof(a -> 'lineage') NOT IN ('array', 'null')) THEN
            RAISE EXCEPTION 'annotation % of the import is not an exported annotation', n
                  USING ERRCODE = 'invalid_parameter_value',
                        HINT = 'Each element needs ' || array_to_string(required, ', ')
                               || ' (target_names, target_args and lineage as arrays).';
        END IF;
        INSERT INTO asymm.annotation_entries AS e
               (target_type, target_names, target_args, query_text, symbol, scope, regime, cost, lineage,
                source, confidence, evidence)
        VALUES (a ->> 'target_type',
                ARRAY(SELECT jsonb_array_elements_text(a -> 'target_names')),
                ARRAY(SELECT jsonb_array_elements_text(coalesce(nullif(a -> 'target_args', 'null'), '[]'))),
                a ->> 'query_text', a ->> 'symbol', a ->> 'scope', a ->> 'regime', a ->> 'cost',
                ARRAY(SELECT jsonb_array_elements_text(coalesce(nullif(a -> 'lineage', 'null'), '[]'))),
                coalesce(a ->> 'source', 'user'), coalesce((a ->> 'confidence')::double precision, 1),
                coalesce((a ->> 'evidence')::integer, 1))
        ON CONFLICT ON CONSTRAINT annotation_entries_target_key DO UPDATE
           SET symbol = excluded.symbol, scope = excluded.scope, regime = excluded.regime, cost = excluded.cost,
               lineage = excluded.lineage, query_text = excluded.query_text, confidence = excluded.confidence,
               evidence = excluded.evidence, updated_at = clock_timestamp();
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION asymm.import_annotations(jsonb) IS 'Write back annotations exported by asymm.export_annotations() (replacing those of the same targets); returns how many; all or nothing';
