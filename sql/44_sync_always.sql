-- asymm: since 0.2.0
-- The capture triggers fire whatever session_replication_role says.  An ordinary trigger (ENABLE,
-- i.e. "origin") does not fire in a session with session_replication_role = replica: the apply
-- worker of logical replication, pglogical, Bucardo and some migration tools write that way, and
-- every change they made to a tracked table would be missing from Redis for good.  So asymm.track()
-- (and the partitions it follows) makes them ENABLE ALWAYS.  pg_dump keeps that state.  A DBA who
-- wants a session that bypasses the capture still has ALTER TABLE ... DISABLE TRIGGER.
--
-- ENABLE ALWAYS is an ALTER TABLE, which fires asymm's own ddl_command_end trigger: the
-- transaction-local flag asymm.sync_firing_always makes it return at once (asymm._sync_ddl_end),
-- so following partitions or columns cannot recurse into itself.
CREATE FUNCTION asymm._sync_fire_always(rel regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    trig name;
    was text := current_setting('asymm.sync_firing_always', true);
BEGIN
    PERFORM set_config('asymm.sync_firing_always', 'on', true);
    FOR trig IN SELECT tgname FROM pg_trigger
                 WHERE tgrelid = rel AND tgname LIKE 'asymm\_sync\_%' AND NOT tgisinternal AND tgenabled <> 'A' LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', rel, trig);
    END LOOP;
    PERFORM set_config('asymm.sync_firing_always', coalesce(was, ''), true);
END
$$;
COMMENT ON FUNCTION asymm._sync_fire_always(regclass) IS 'Make a tracked table''s (or partition''s) capture triggers ENABLE ALWAYS, so that sessions with session_replication_role = replica are captured too; internal';
