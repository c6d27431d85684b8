-- asymm: since 0.2.0
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
