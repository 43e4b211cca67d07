-- What each agent may do to plugins through its tools (`plugins_install`, `plugins_disable`, …),
-- granted by the operator (admin API, UI, CLI); separate from what plugins themselves may do. One
-- row per granted capability (`plugins.install`, `plugins.disable`, `plugins.uninstall`, …); no
-- row, no grant. granted_by: who granted it (admin API, admin UI session, CLI user); never a
-- secret. The other backend's folder holds the same logical schema.
CREATE TABLE IF NOT EXISTS agent_plugin_grants (
  agent_id TEXT NOT NULL,
  capability TEXT NOT NULL,
  granted_by TEXT NOT NULL,
  granted_at BIGINT NOT NULL,
  PRIMARY KEY (agent_id, capability)
);
