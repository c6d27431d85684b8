-- asymm: since 0.2.0
-- The comparison itself (PL/Python, control/asymm/drift/compare.py): pairs objects by OID key
-- within the same database, then by identity; reports renames and moves as such; attaches a plan
-- back to the baseline.
CREATE FUNCTION asymm._drift_compare(base jsonb, cur jsonb, same_db boolean, lock_timeout text DEFAULT '2s')
RETURNS jsonb
LANGUAGE plpython3u STABLE
SET search_path = pg_catalog, pg_temp
AS $plpython$
-- asymm: include control/asymm/drift/compare.py
return compare(base, cur, same_db, lock_timeout, plpy)
$plpython$;
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
         ORDER BY (l.object_identity IN (i ->> 'identity', i ->> 'baseline_identity')) IS TRUE DESC,
                  EXISTS (SELECT 1 FROM jsonb_array_elements_text(i -> 'match_names') AS n
                           WHERE l.statement ~* ('(^|[^[:alnum:]_$])"?'
                                                 || regexp_replace(n, '([^[:alnum:]_ ])', '\\\1', 'g')
                                                 || '"?($|[^[:alnum:]_$])')) DESC,
                  l.id DESC
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
SELECT (row_number() OVER (ORDER BY (s.value ->> 'phase')::int, coalesce((s.value ->> 'seq')::int, 0), s.ord,
                              s.pos))::int,
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
    -- DDL the event triggers did not see (session_replication_role = replica, a disabled trigger)
    -- may have renamed an annotated object: its stored address, what pg_dump carries, follows
    -- the OID cache here, so that the annotation survives the next dump and restore.
    PERFORM asymm._annotations_refresh('{}', true);
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
