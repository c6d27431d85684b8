-- Annotations SQL API: annotate overloads, validation errors, the view, amplify, harmonize,
-- propagate, resolve, renames/moves/drops, query fingerprints, generic plans and coherence.
SET client_min_messages = warning;
CREATE EXTENSION asymm CASCADE;
RESET client_min_messages;
\set SHOW_CONTEXT never

CREATE SCHEMA shop;
SET search_path = shop, public;
CREATE TABLE customers (id int PRIMARY KEY, dropped_later int, name text, email text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, total numeric);
CREATE INDEX orders_total_idx ON orders (total);
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
CREATE FUNCTION order_total(int) RETURNS numeric LANGUAGE sql AS 'SELECT total FROM shop.orders WHERE id = $1';

-- every overload writes one row
SELECT asymm.annotate('customers'::regclass, 'dataEntity', 'global', 'Stabilization', 'O(log n)', '{create,query}') IS NOT NULL AS table_ok;
SELECT asymm.annotate('customers'::regclass, 'email', 'contact', 'local', 'Balance', 'O(1)', '{query}') IS NOT NULL AS column_ok;
SELECT asymm.annotate('order_total(int)'::regprocedure, 'totalOf', 'schema', 'Optimization', 'O(log n)', '{query}') IS NOT NULL AS function_ok;
SELECT asymm.annotate('orders_total_idx', 'byTotal', 'local', 'Balance', 'O(log n)', '{optimize}') IS NOT NULL AS index_by_text_ok;
SELECT asymm.annotate('order_total(integer)', 'totalOf', 'schema', 'Optimization', 'O(log n)', '{query,cache}') IS NOT NULL AS function_by_text_ok;
SELECT asymm.annotate_query('SELECT * FROM orders WHERE id = 42', 'dataQuery', 'local', 'Balance', 'O(log n)', '{query}') IS NOT NULL AS query_ok;
SELECT target, target_type, resolved, symbol, scope, regime, cost, lineage, source, confidence, evidence
  FROM asymm.annotations ORDER BY target, source;

-- bad input: an ERROR naming the field and the accepted values, nothing written
SELECT count(*) AS before FROM asymm.annotation_entries;
SELECT asymm.annotate('customers', '', 'global', 'Balance', 'O(n)', '{}');
SELECT asymm.annotate('customers', 'has space', 'global', 'Balance', 'O(n)', '{}');
SELECT asymm.annotate('customers', 'x', 'galaxy', 'Balance', 'O(n)', '{}');
SELECT asymm.annotate('customers', 'x', 'global', 'Chaos', 'O(n)', '{}');
SELECT asymm.annotate('customers', 'x', 'global', 'Balance', 'O(n^3)', '{}');
SELECT asymm.annotate('customers', 'x', 'global', 'Balance', NULL, '{}');
SELECT asymm.annotate('customers', 'x', 'global', 'Balance', 'O(n)', '{create,create}');
SELECT asymm.annotate('customers', 'x', 'global', 'Balance', 'O(n)', '{Create}');
SELECT asymm.annotate('customers', 'x', 'global', 'Balance', 'O(n)', '{"two words"}');
SELECT asymm.annotate('no_such_table', 'x', 'global', 'Balance', 'O(n)', '{}');
SELECT asymm.annotate('customers'::regclass, 'no_such_column', 'x', 'global', 'Balance', 'O(n)', '{}');
SELECT asymm.annotate(1234567890123, 'x', 'global', 'Balance', 'O(n)', '{}');
SELECT asymm.annotate_query('  -- nothing ', 'x', 'global', 'Balance', 'O(n)', '{}');
SELECT count(*) AS after FROM asymm.annotation_entries;

-- ⊕ amplify: wider scope, worse cost, lineage union, 1-(1-ca)(1-cb); commutative
SELECT asymm.amplify(ROW('a', 'local', 'Balance', 'O(1)', '{create}', 'inferred', 0.5, 1),
                     ROW('b', 'schema', 'Exploration', 'O(n)', '{query,create}', 'user', 0.5, 2));
SELECT asymm.amplify(ROW('b', 'schema', 'Exploration', 'O(n)', '{query,create}', 'user', 0.5, 2),
                     ROW('a', 'local', 'Balance', 'O(1)', '{create}', 'inferred', 0.5, 1));

-- ▷ propagate: to columns, reading views, FK-referencing tables; never over a user annotation
SELECT asymm.propagate('customers');
SELECT target, source, symbol, round(confidence::numeric, 2) AS confidence
  FROM asymm.annotations WHERE source = 'propagated' ORDER BY target;
SELECT asymm.propagate('orders');
SELECT target, source, symbol FROM asymm.annotations WHERE target LIKE 'shop.big_orders%' ORDER BY target;

-- ⊣ resolve and ⊗ harmonize: user > propagated > inferred, conflicts logged once
SELECT asymm.resolve('orders');
SELECT asymm.annotate('orders', 'orderEntity', 'schema', 'Balance', 'O(log n)', '{create,update}') IS NOT NULL AS user_wins;
SELECT asymm.resolve('orders');
SELECT asymm.harmonize('orders');
SELECT asymm.harmonize('orders');
SELECT target_names, fields, (winner).source AS winner, (loser).source AS loser FROM asymm.annotation_conflicts;
SELECT asymm.resolve('customers'::regclass, 'email');
SELECT asymm.resolve('order_total(int)'::regprocedure);
SELECT (asymm.resolve('big_orders')).source AS view_annotation_source;

-- query fingerprints: constants, parameters, case, comments and spacing do not matter
SELECT asymm.normalize_query($q$SELECT * FROM "Orders" o WHERE o.id IN (1, 2, 3) AND note = 'it''s' -- c
  /* block /* nested */ */ AND total > $1;$q$);
SELECT asymm.query_fingerprint('select * from orders where id = 42') = asymm.query_fingerprint('SELECT *  FROM Orders WHERE id=$1') AS same,
       asymm.query_fingerprint('select * from orders where id = 42') = asymm.query_fingerprint('select * from customers where id = 42') AS different;
SELECT asymm.resolve('query ' || asymm.query_fingerprint('SELECT * FROM orders WHERE id = $1'));

-- generic plans (PREPARE + EXPLAIN EXECUTE, force_generic_plan) and their cost class
INSERT INTO customers SELECT g, NULL, 'n' || g, 'e' || g FROM generate_series(1, 3000) g;
INSERT INTO orders SELECT g, 1 + g % 3000, g FROM generate_series(1, 5000) g;
CREATE TABLE tiny (id int PRIMARY KEY, v text);
INSERT INTO tiny VALUES (1, 'a');
ANALYZE customers, orders, tiny;
SELECT asymm.plan_cost_class(asymm.generic_plan('SELECT * FROM orders WHERE id = $1')) ->> 'cost' AS pk_lookup;
SELECT asymm.plan_cost_class(asymm.generic_plan('SELECT * FROM orders WHERE customer_id = $1')) ->> 'cost' AS full_scan;
SELECT asymm.plan_cost_class(asymm.generic_plan('SELECT * FROM orders WHERE customer_id = $1 ORDER BY customer_id, total')) ->> 'cost' AS sorted_scan;
SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_material = off;
SELECT asymm.plan_cost_class(asymm.generic_plan('SELECT * FROM orders o, customers c WHERE o.customer_id + c.id = $1')) ->> 'cost' AS nested_scans;
RESET enable_hashjoin; RESET enable_mergejoin; RESET enable_material;
SELECT asymm.plan_cost_class(asymm.generic_plan('SELECT 1')) ->> 'cost' AS no_scan;
SELECT asymm.generic_plan('SELECT 1; DROP TABLE orders');
SELECT count(*) AS leftover_prepared FROM pg_prepared_statements;

-- Semantic Sonar: a tiny table scanned sequentially is "not evaluable", not incoherent
-- (a query annotation is planned as its author, with the search_path a new session of that role gets)
DO $$ BEGIN EXECUTE format('ALTER ROLE %I IN DATABASE %I SET search_path = shop, public', current_user, current_database()); END $$;
SELECT asymm.annotate_query('SELECT * FROM tiny WHERE v = $1', 'tinyQuery', 'local', 'Balance', 'O(log n)', '{query}') IS NOT NULL;
SELECT asymm.annotate_query('SELECT * FROM orders WHERE customer_id = $1', 'scanQuery', 'local', 'Balance', 'O(log n)', '{query}') IS NOT NULL;
SELECT target, cost, verdict, reason FROM asymm.coherence_verdicts() WHERE target_type = 'query' ORDER BY reason;
-- (table verdicts depend on when statistics are flushed: only check that the counts add up)
SELECT (c ->> 'total')::int AS total,
       (c ->> 'coherent')::int + (c ->> 'incoherent')::int + (c ->> 'not_evaluable')::int = (c ->> 'total')::int AS counts_add_up,
       (c ->> 'score')::numeric BETWEEN 0 AND 100 AS score_in_range, c ->> 'goal' AS goal
  FROM asymm.coherence() AS c;
DO $$ BEGIN EXECUTE format('ALTER ROLE %I IN DATABASE %I RESET search_path', current_user, current_database()); END $$;

-- lifecycle: renames and moves are followed, drops remove
ALTER TABLE customers RENAME TO clients;
ALTER TABLE clients RENAME COLUMN email TO mail;
CREATE SCHEMA archive;
ALTER TABLE clients SET SCHEMA archive;
ALTER INDEX orders_total_idx RENAME TO orders_by_total;
ALTER FUNCTION order_total(int) RENAME TO total_of;
SELECT target, target_type, target_names, resolved FROM asymm.annotations WHERE source = 'user' ORDER BY target;
ALTER TABLE archive.clients DROP COLUMN mail;
DROP FUNCTION total_of(int);
DROP INDEX orders_by_total;
SELECT target, source FROM asymm.annotations WHERE target_type <> 'query' ORDER BY target, source;
DROP TABLE archive.clients CASCADE;
SELECT target, source FROM asymm.annotations WHERE target_type <> 'query' ORDER BY target, source;
SELECT count(*) AS unresolved FROM asymm.unresolved_annotations;

RESET search_path;
DROP SCHEMA shop, archive CASCADE;
DROP EXTENSION asymm;
