-- One change feed instead of timers. Every write to what a server keeps in memory or acts on (its
-- plugins and their versions, consents and secrets; trust settings; integration rows; agents, their
-- assignments and grants; skills) bumps that topic's counter in `changes`, in the transaction that
-- makes it, by trigger: no write path, not even a hand-written statement, can forget it. A server
-- compares the counters with those its caches were read at and reloads exactly what moved.
-- The other backend's folder holds the same logical schema.
--
-- SQLite has no cross-process notification: a server asks SQLite whether any connection committed
-- (PRAGMA data_version) and reads this row only then. One row, so concurrent writers never wait on
-- each other in different orders.
CREATE TABLE IF NOT EXISTS changes (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  plugins BIGINT NOT NULL DEFAULT 0,
  trust BIGINT NOT NULL DEFAULT 0,
  integrations BIGINT NOT NULL DEFAULT 0,
  agents BIGINT NOT NULL DEFAULT 0,
  skills BIGINT NOT NULL DEFAULT 0
);
INSERT INTO changes (id) VALUES (1) ON CONFLICT (id) DO NOTHING;

CREATE TRIGGER IF NOT EXISTS plugins_insert_changes AFTER INSERT ON plugins
BEGIN UPDATE changes SET plugins = plugins + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS plugins_update_changes AFTER UPDATE ON plugins
BEGIN UPDATE changes SET plugins = plugins + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS plugins_delete_changes AFTER DELETE ON plugins
BEGIN UPDATE changes SET plugins = plugins + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS plugin_versions_insert_changes AFTER INSERT ON plugin_versions
BEGIN UPDATE changes SET plugins = plugins + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS plugin_versions_update_changes AFTER UPDATE ON plugin_versions
BEGIN UPDATE changes SET plugins = plugins + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS plugin_versions_delete_changes AFTER DELETE ON plugin_versions
BEGIN UPDATE changes SET plugins = plugins + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS plugin_consents_insert_changes AFTER INSERT ON plugin_consents
BEGIN UPDATE changes SET plugins = plugins + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS plugin_consents_update_changes AFTER UPDATE ON plugin_consents
BEGIN UPDATE changes SET plugins = plugins + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS plugin_consents_delete_changes AFTER DELETE ON plugin_consents
BEGIN UPDATE changes SET plugins = plugins + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS plugin_disclosure_acks_insert_changes AFTER INSERT ON plugin_disclosure_acks
BEGIN UPDATE changes SET plugins = plugins + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS plugin_disclosure_acks_update_changes AFTER UPDATE ON plugin_disclosure_acks
BEGIN UPDATE changes SET plugins = plugins + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS plugin_disclosure_acks_delete_changes AFTER DELETE ON plugin_disclosure_acks
BEGIN UPDATE changes SET plugins = plugins + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS plugin_secrets_insert_changes AFTER INSERT ON plugin_secrets
BEGIN UPDATE changes SET plugins = plugins + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS plugin_secrets_update_changes AFTER UPDATE ON plugin_secrets
BEGIN UPDATE changes SET plugins = plugins + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS plugin_secrets_delete_changes AFTER DELETE ON plugin_secrets
BEGIN UPDATE changes SET plugins = plugins + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS trust_entries_insert_changes AFTER INSERT ON trust_entries
BEGIN UPDATE changes SET trust = trust + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS trust_entries_update_changes AFTER UPDATE ON trust_entries
BEGIN UPDATE changes SET trust = trust + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS trust_entries_delete_changes AFTER DELETE ON trust_entries
BEGIN UPDATE changes SET trust = trust + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS trust_revision_insert_changes AFTER INSERT ON trust_revision
BEGIN UPDATE changes SET trust = trust + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS trust_revision_update_changes AFTER UPDATE ON trust_revision
BEGIN UPDATE changes SET trust = trust + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS trust_revision_delete_changes AFTER DELETE ON trust_revision
BEGIN UPDATE changes SET trust = trust + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS integrations_insert_changes AFTER INSERT ON integrations
BEGIN UPDATE changes SET integrations = integrations + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS integrations_update_changes AFTER UPDATE ON integrations
BEGIN UPDATE changes SET integrations = integrations + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS integrations_delete_changes AFTER DELETE ON integrations
BEGIN UPDATE changes SET integrations = integrations + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS agents_insert_changes AFTER INSERT ON agents
BEGIN UPDATE changes SET agents = agents + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS agents_update_changes AFTER UPDATE ON agents
BEGIN UPDATE changes SET agents = agents + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS agents_delete_changes AFTER DELETE ON agents
BEGIN UPDATE changes SET agents = agents + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS agent_integrations_insert_changes AFTER INSERT ON agent_integrations
BEGIN UPDATE changes SET agents = agents + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS agent_integrations_update_changes AFTER UPDATE ON agent_integrations
BEGIN UPDATE changes SET agents = agents + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS agent_integrations_delete_changes AFTER DELETE ON agent_integrations
BEGIN UPDATE changes SET agents = agents + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS agent_plugin_grants_insert_changes AFTER INSERT ON agent_plugin_grants
BEGIN UPDATE changes SET agents = agents + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS agent_plugin_grants_update_changes AFTER UPDATE ON agent_plugin_grants
BEGIN UPDATE changes SET agents = agents + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS agent_plugin_grants_delete_changes AFTER DELETE ON agent_plugin_grants
BEGIN UPDATE changes SET agents = agents + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS skills_insert_changes AFTER INSERT ON skills
BEGIN UPDATE changes SET skills = skills + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS skills_update_changes AFTER UPDATE ON skills
BEGIN UPDATE changes SET skills = skills + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS skills_delete_changes AFTER DELETE ON skills
BEGIN UPDATE changes SET skills = skills + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS skill_files_insert_changes AFTER INSERT ON skill_files
BEGIN UPDATE changes SET skills = skills + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS skill_files_update_changes AFTER UPDATE ON skill_files
BEGIN UPDATE changes SET skills = skills + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS skill_files_delete_changes AFTER DELETE ON skill_files
BEGIN UPDATE changes SET skills = skills + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS skill_assignments_insert_changes AFTER INSERT ON skill_assignments
BEGIN UPDATE changes SET skills = skills + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS skill_assignments_update_changes AFTER UPDATE ON skill_assignments
BEGIN UPDATE changes SET skills = skills + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS skill_assignments_delete_changes AFTER DELETE ON skill_assignments
BEGIN UPDATE changes SET skills = skills + 1 WHERE id = 1; END;
