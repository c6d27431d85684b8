-- asymm: since 0.2.0
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
