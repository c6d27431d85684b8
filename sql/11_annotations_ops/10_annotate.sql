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
