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
-- Planning text asymm did not write (README, "Security"): only ever as the role that wrote it, in a
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

-- The role a query annotation's text is planned as (README, "Security").  A text pg_stat_statements
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
