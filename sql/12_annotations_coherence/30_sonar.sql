-- asymm: since 0.2.0
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
