-- Plugin alerts: what the admin must see about a plugin until it is dealt with (a crash-loop
-- auto-disable, a plugin skipped at boot because the previous process died activating it, a tampered
-- version directory). A row is cleared (cleared_at set) when the operator enables the plugin again
-- or uninstalls it; cleared rows stay as history until the plugin's data is purged.
CREATE TABLE IF NOT EXISTS plugin_alerts (
  id TEXT PRIMARY KEY,
  plugin_id TEXT NOT NULL,
  plugin_version TEXT,
  kind TEXT NOT NULL,
  message TEXT NOT NULL,
  detail_json TEXT,
  created_at BIGINT NOT NULL,
  cleared_at BIGINT
);
CREATE INDEX IF NOT EXISTS idx_plugin_alerts_plugin ON plugin_alerts (plugin_id, created_at);
