-- asymm: since 0.3.0
-- The index advisor's storage price (issue 18): an index's bytes are weighed against what it
-- saves, so that a wide index that serves a statement a little better than a narrow one does not
-- win on gain alone.  docs/advisor.md, "Storage".

INSERT INTO asymm.setting_defaults (name, default_value, value_type, min_value, max_value, allowed_values, pattern, description) VALUES
    ('advisor.storage_weight', '0.25', 'number', '0', '100', NULL, NULL, 'Storage price of an index: one as big as the tables it indexes must save this fraction of the workload''s remaining cost; 0: storage is free (only advisor.budget_mb bounds it)');
