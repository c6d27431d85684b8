-- Schema drift: the DDL log, baselines, drift items and plans.
SET client_min_messages = warning;
CREATE EXTENSION asymm CASCADE;
RESET client_min_messages;

-- asymm's own DDL is not in the log
SELECT count(*) AS own_ddl_logged FROM asymm.ddl_log;
SELECT evtname, evtevent FROM pg_event_trigger WHERE evtname LIKE 'asymm_drift_%' ORDER BY 1;

CREATE SCHEMA shop;
CREATE TABLE shop.items (id int PRIMARY KEY, name text NOT NULL, price numeric CHECK (price >= 0));
CREATE INDEX items_name ON shop.items (name);
SELECT asymm.baseline('regress', ARRAY['shop']) AS objects;
SELECT count(*) AS drift_after_baseline FROM asymm.drift('regress');

-- a rolled-back DDL leaves no trace
BEGIN;
DROP TABLE shop.items;
ROLLBACK;
SELECT count(*) AS logged_after_rollback FROM asymm.ddl_log WHERE command_tag = 'DROP TABLE';

ALTER TABLE shop.items RENAME COLUMN name TO title;
DROP INDEX shop.items_name;
ALTER TABLE shop.items ALTER COLUMN price TYPE numeric(10,2);
SELECT event, command_tag, object_type, object_identity, role_name, statement
  FROM asymm.ddl_log ORDER BY id;

SELECT kind, object_type, identity, property, old_value, new_value, severity, hazards, who, detection
  FROM asymm.drift('regress');
SELECT step, statement, transactional, hazards FROM asymm.drift_plan('regress');

-- bad input
SELECT asymm.baseline('no spaces allowed');
SELECT * FROM asymm.drift_plan('missing');
-- a baseline of nothing is refused, and the old one kept (its drift is still reported)
SELECT asymm.baseline('regress', ARRAY['no_such_schema']);
SELECT asymm.baseline('regress', '{}');
SELECT asymm.baseline('regress', ARRAY['shop', 'shop']);
SELECT asymm.baseline('regress', ARRAY['pg_catalog']);
SELECT count(*) AS drift_still_reported FROM asymm.drift('regress');

-- accepting moves the baseline
SELECT asymm.drift_accept('regress') > 0 AS accepted;
SELECT count(*) AS drift_after_accept FROM asymm.drift('regress');

DROP SCHEMA shop CASCADE;
DROP EXTENSION asymm;
SELECT count(*) AS leftover_event_triggers FROM pg_event_trigger;
