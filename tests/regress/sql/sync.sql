-- Redis sync: tracking, capture into the outbox, bad input.
SET client_min_messages = warning;
CREATE EXTENSION asymm CASCADE;
RESET client_min_messages;

CREATE TABLE sync_items (id int PRIMARY KEY, name text, secret text);
CREATE TABLE sync_pairs (a int, b text, PRIMARY KEY (a, b));
CREATE TABLE sync_nokey (x int);
SELECT asymm.track('sync_items', sensitive => '{secret}');
SELECT asymm.track('sync_pairs');
SELECT rel, key_columns, key_types, sensitive, backfill_state FROM asymm.sync_tables ORDER BY rel::text;

BEGIN;
INSERT INTO sync_items SELECT g, 'n' || g, 's' FROM generate_series(1, 3) g;
UPDATE sync_items SET id = 10 WHERE id = 1;
DELETE FROM sync_items WHERE id = 2;
INSERT INTO sync_pairs VALUES (1, 'x');
UPDATE sync_items SET name = 'none' WHERE false;
COMMIT;
TRUNCATE sync_pairs;
SELECT rel::regclass, op, (SELECT array_agg(k ORDER BY k) FROM unnest(keys) k) AS keys
  FROM asymm.sync_outbox ORDER BY xid, op, rel::regclass::text;
SELECT count(DISTINCT xid) AS transactions FROM asymm.sync_outbox;

-- bad input
SELECT asymm.track('sync_nokey');
SELECT asymm.track('sync_items', sensitive => '{nope}');
SELECT asymm.track('sync_items', sensitive => '{id}');
SELECT asymm.track('asymm.sync_state');
SELECT asymm.track(NULL);
SELECT asymm.sync_backfill('sync_nokey');

-- the capture function runs only as the statement-level AFTER trigger asymm.track() creates
SELECT asymm._sync_capture();
CREATE TRIGGER bad_row AFTER INSERT ON sync_nokey FOR EACH ROW EXECUTE FUNCTION asymm._sync_capture('x');
INSERT INTO sync_nokey VALUES (1);
DROP TRIGGER bad_row ON sync_nokey;
CREATE TRIGGER bad_before BEFORE INSERT ON sync_nokey FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_capture('x');
INSERT INTO sync_nokey VALUES (1);
DROP TRIGGER bad_before ON sync_nokey;
CREATE TRIGGER bad_notable AFTER INSERT ON sync_nokey FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_capture('x');
INSERT INTO sync_nokey VALUES (1);
DROP TRIGGER bad_notable ON sync_nokey;
CREATE TRIGGER bad_truncate AFTER TRUNCATE ON sync_nokey FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_capture('x');
TRUNCATE sync_nokey;
DROP TRIGGER bad_truncate ON sync_nokey;
CREATE TRIGGER bad_noargs AFTER INSERT ON sync_nokey REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION asymm._sync_capture();
INSERT INTO sync_nokey VALUES (1);
DROP TRIGGER bad_noargs ON sync_nokey;
ALTER TABLE sync_pairs RENAME COLUMN b TO b2;  -- a key column renamed: the event trigger tracks it again
INSERT INTO sync_pairs VALUES (2, 'y');
SELECT key_columns FROM asymm.sync_tables WHERE rel = 'sync_pairs'::regclass;
ALTER EVENT TRIGGER asymm_sync_ddl_end DISABLE;  -- renamed behind asymm's back: capture refuses
ALTER TABLE sync_pairs RENAME COLUMN b2 TO b;
INSERT INTO sync_pairs VALUES (3, 'y');
ALTER EVENT TRIGGER asymm_sync_ddl_end ENABLE;
SELECT asymm.track('sync_pairs');
SELECT count(*) AS outbox_rows_from_misuse FROM asymm.sync_outbox WHERE rel = 'sync_nokey'::regclass;

-- a partitioned table: the parent's triggers capture rows of every partition, moves included
CREATE TABLE sync_parted (id int PRIMARY KEY, v int) PARTITION BY RANGE (id);
CREATE TABLE sync_parted_1 PARTITION OF sync_parted FOR VALUES FROM (0) TO (10);
CREATE TABLE sync_parted_2 PARTITION OF sync_parted FOR VALUES FROM (10) TO (20);
SELECT asymm.track('sync_parted');
INSERT INTO sync_parted VALUES (1, 0), (15, 0);
UPDATE sync_parted SET id = 5 WHERE id = 15;
-- a CHECK constraint a DBA adds to the outbox holds for capture too (the general insert path)
ALTER TABLE asymm.sync_outbox_0 ADD CONSTRAINT no_deletes CHECK (op <> 'D') NOT VALID;
ALTER TABLE asymm.sync_outbox_1 ADD CONSTRAINT no_deletes CHECK (op <> 'D') NOT VALID;
UPDATE sync_parted SET v = 1 WHERE id = 1;
DO $$
BEGIN
    DELETE FROM sync_parted WHERE id = 1;  -- the error names the slot and the xid: not printed
    RAISE EXCEPTION 'the outbox constraint was not enforced';
EXCEPTION WHEN check_violation THEN
    RAISE NOTICE 'capture refused by the outbox''s CHECK constraint';
END
$$;
ALTER TABLE asymm.sync_outbox_0 DROP CONSTRAINT no_deletes;
ALTER TABLE asymm.sync_outbox_1 DROP CONSTRAINT no_deletes;
DELETE FROM sync_parted WHERE id = 1;
SELECT op, keys FROM asymm.sync_outbox WHERE rel = 'sync_parted'::regclass ORDER BY xid;
SELECT asymm.untrack('sync_parted');
DROP TABLE sync_parted;

SELECT asymm.untrack('sync_items'), asymm.untrack('sync_items');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'sync_items'::regclass;
SELECT (asymm.sync_status() -> 'tables') -> 0 ->> 'table' AS still_tracked;
SELECT asymm.untrack('sync_pairs');
DROP TABLE sync_items, sync_pairs, sync_nokey;

DROP EXTENSION asymm;
