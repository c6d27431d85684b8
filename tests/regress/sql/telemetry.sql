-- Telemetry and State Sonar SQL API (no timings in the output).
SET client_min_messages = warning;
CREATE EXTENSION asymm CASCADE;
RESET client_min_messages;

SELECT name, value, value_type FROM asymm.settings WHERE name LIKE 'telemetry.%' ORDER BY name;

-- the first snapshot only records the baseline
SELECT r->>'baseline' AS baseline, r->>'written' AS written FROM asymm.snapshot() r;
CREATE TABLE regress_items (id int PRIMARY KEY, grp int, label text);
INSERT INTO regress_items SELECT g, g % 3, CASE WHEN g % 3 = 0 THEN NULL ELSE 'x' END FROM generate_series(1, 9) g;
SELECT count(*) FROM regress_items WHERE grp = 1;
SELECT count(*) FROM regress_items WHERE grp = 2;
SELECT r->>'baseline' AS baseline, r->>'reset' AS reset FROM asymm.snapshot() r;
SELECT query, calls, rows FROM asymm.query_report('1 hour')
 WHERE query LIKE '%regress_items%' ORDER BY query;
-- only asymm's own calls moved since: they are recorded (their texts are new, so not yet known
-- as asymm's own) but reports always leave asymm's own statements out
SELECT r->>'reset' AS reset FROM asymm.snapshot() r;
SELECT count(*) AS own_statements_reported FROM asymm.query_report('1 hour') WHERE query LIKE '%asymm.%';
SELECT count(*) AS slow FROM asymm.slow_queries(100, '1 hour');
SELECT asymm.smoothness('1 hour');
SELECT asymm.slow_queries(-1, '1 hour');

-- duplicates by SHA-256 of the values
SELECT copies, row_values FROM asymm.find_duplicates('regress_items');
SELECT copies, row_values FROM asymm.find_duplicates('regress_items', '{label}');
SELECT * FROM asymm.find_duplicates('regress_items', '{nope}');
SELECT relation, row_count, distinct_states, duplicate_rows, duplicate_fraction
  FROM asymm.state_report('{regress_items}');

-- index health
CREATE INDEX regress_items_grp ON regress_items (grp);
CREATE INDEX regress_items_grp2 ON regress_items (grp);
CREATE INDEX regress_items_grp_label ON regress_items (grp, label);
SELECT category, index_name, detail, drop_statement FROM asymm.index_health()
 WHERE table_name = 'regress_items' ORDER BY category, index_name;

DROP TABLE regress_items;
DROP EXTENSION asymm;
