-- asymm: since 0.2.0
-- Named baselines (kept by pg_dump), their findings, and the functions that capture and accept them.

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
