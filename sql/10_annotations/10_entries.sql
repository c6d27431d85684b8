-- asymm: since 0.2.0
-- Annotations: the σ ρ γ κ λ catalog, its validation, addressing and lifecycle.
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
