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
