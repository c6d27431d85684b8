-- asymm: since 0.2.0
-- When the Redis cache falls behind: the threshold above which the daemon notifies webhooks.
INSERT INTO asymm.setting_defaults (name, default_value, value_type, min_value, max_value, allowed_values, pattern, description) VALUES
    ('sync.lag_alert_ms', '5000', 'number', '1', '86400000', NULL, NULL,
     'Notify webhooks (event sync_lag) when commit-to-Redis lag, or the age of the last heartbeat that reached Redis, exceeds this many milliseconds');
