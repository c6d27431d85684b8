-- Core SQL API: install, settings, status, privileges.
SET client_min_messages = warning;
CREATE EXTENSION asymm CASCADE;
RESET client_min_messages;

SELECT asymm.version() = (SELECT default_version FROM pg_available_extensions WHERE name = 'asymm') AS current_version;
SELECT name, value, value_type, changed FROM asymm.settings WHERE name LIKE 'daemon.%' ORDER BY name;

-- typed settings
SELECT asymm.set_setting('daemon.stale_after', '30 s');
SELECT asymm.setting('daemon.stale_after');
SELECT name, value, changed FROM asymm.settings WHERE changed;
SELECT asymm.set_setting('daemon.stale_after', 'soon');
SELECT asymm.set_setting('daemon.stale_after', NULL);
SELECT asymm.set_setting('no.such.setting', '1');
SELECT asymm.setting('no.such.setting');
SELECT asymm.reset_setting('daemon.stale_after');
-- every setting has a rule: out of range, not an allowed value, not matching its pattern
SELECT asymm.set_setting('sync.batch_rows', '-1');
SELECT asymm.set_setting('daemon.pulse_period', '-1 s');
SELECT asymm.set_setting('advisor.budget_mb', '-5');
SELECT asymm.set_setting('sync.sensitive_mode', 'encrypt');
SELECT asymm.set_setting('sync.key_prefix', 'a{b}c');
SELECT asymm.set_setting('telemetry.spike_factor', 'NaN');
SELECT name, allowed FROM asymm.settings WHERE name LIKE 'daemon.%' OR name = 'sync.sensitive_mode' ORDER BY name;
SELECT count(*) AS overrides FROM asymm.setting_values;

-- status reports what asymm depends on
SELECT s ->> 'version' = asymm.version() AS version_ok,
       (s ->> 'pg_stat_statements_loaded')::boolean AS pgss,
       s ->> 'plpython' LIKE '3.%' AS plpython,
       jsonb_typeof(s -> 'daemons') AS daemons
  FROM asymm.status() AS s;

-- the leader is whoever holds the leader lock: none, then this session (not a registered daemon)
SELECT asymm.status() -> 'leader' AS no_leader;
SELECT pg_advisory_lock(7022089754892846162);
SELECT (s -> 'leader' ->> 'backend_pid')::int = pg_backend_pid() AS holder_is_me,
       s -> 'leader' -> 'daemon_id' AS daemon_id
  FROM asymm.status() AS s;
SELECT pg_advisory_unlock(7022089754892846162);

-- nothing is executable by PUBLIC
SELECT count(*) AS public_functions
  FROM pg_proc p
 WHERE p.pronamespace = 'asymm'::regnamespace
   AND has_function_privilege('public', p.oid, 'EXECUTE');

-- a reader role can read, not write
CREATE ROLE asymm_regress_reader;
SELECT asymm.grant_reader('asymm_regress_reader');
SET ROLE asymm_regress_reader;
SELECT asymm.setting('daemon.pulse_period');
SELECT asymm.set_setting('daemon.pulse_period', '1 s');
RESET ROLE;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA asymm FROM asymm_regress_reader;
REVOKE ALL ON ALL TABLES IN SCHEMA asymm FROM asymm_regress_reader;
REVOKE ALL ON SCHEMA asymm FROM asymm_regress_reader;
DROP ROLE asymm_regress_reader;

DROP EXTENSION asymm;
SELECT count(*) AS leftovers FROM pg_namespace WHERE nspname = 'asymm';
