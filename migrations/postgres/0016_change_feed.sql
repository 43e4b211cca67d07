-- One change feed instead of timers. Every write to what a server keeps in memory or acts on (its
-- plugins and their versions, consents and secrets; trust settings; integration rows; agents, their
-- assignments and grants; skills) bumps that topic's counter in `changes`, in the transaction that
-- makes it, by trigger: no write path, not even a hand-written statement, can forget it. A server
-- compares the counters with those its caches were read at and reloads exactly what moved.
-- The other backend's folder holds the same logical schema.
--
-- Postgres also tells every listening server at commit (NOTIFY nitejar_changes, payload the topic);
-- a new queued run is told the same way (payload `runs`, no counter: the runs table is the state).
-- One row, so concurrent writers never wait on each other in different orders.
CREATE TABLE IF NOT EXISTS changes (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  plugins BIGINT NOT NULL DEFAULT 0,
  trust BIGINT NOT NULL DEFAULT 0,
  integrations BIGINT NOT NULL DEFAULT 0,
  agents BIGINT NOT NULL DEFAULT 0,
  skills BIGINT NOT NULL DEFAULT 0
);
INSERT INTO changes (id) VALUES (1) ON CONFLICT (id) DO NOTHING;

CREATE OR REPLACE FUNCTION nitejar_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_ARGV[0] <> 'runs' THEN
    EXECUTE format('UPDATE changes SET %I = %I + 1 WHERE id = 1', TG_ARGV[0], TG_ARGV[0]);
  END IF;
  PERFORM pg_notify('nitejar_changes', TG_ARGV[0]);
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS plugins_changes ON plugins;
CREATE TRIGGER plugins_changes AFTER INSERT OR UPDATE OR DELETE ON plugins
  FOR EACH STATEMENT EXECUTE FUNCTION nitejar_changed('plugins');
DROP TRIGGER IF EXISTS plugin_versions_changes ON plugin_versions;
CREATE TRIGGER plugin_versions_changes AFTER INSERT OR UPDATE OR DELETE ON plugin_versions
  FOR EACH STATEMENT EXECUTE FUNCTION nitejar_changed('plugins');
DROP TRIGGER IF EXISTS plugin_consents_changes ON plugin_consents;
CREATE TRIGGER plugin_consents_changes AFTER INSERT OR UPDATE OR DELETE ON plugin_consents
  FOR EACH STATEMENT EXECUTE FUNCTION nitejar_changed('plugins');
DROP TRIGGER IF EXISTS plugin_disclosure_acks_changes ON plugin_disclosure_acks;
CREATE TRIGGER plugin_disclosure_acks_changes AFTER INSERT OR UPDATE OR DELETE ON plugin_disclosure_acks
  FOR EACH STATEMENT EXECUTE FUNCTION nitejar_changed('plugins');
DROP TRIGGER IF EXISTS plugin_secrets_changes ON plugin_secrets;
CREATE TRIGGER plugin_secrets_changes AFTER INSERT OR UPDATE OR DELETE ON plugin_secrets
  FOR EACH STATEMENT EXECUTE FUNCTION nitejar_changed('plugins');
DROP TRIGGER IF EXISTS trust_entries_changes ON trust_entries;
CREATE TRIGGER trust_entries_changes AFTER INSERT OR UPDATE OR DELETE ON trust_entries
  FOR EACH STATEMENT EXECUTE FUNCTION nitejar_changed('trust');
DROP TRIGGER IF EXISTS trust_revision_changes ON trust_revision;
CREATE TRIGGER trust_revision_changes AFTER INSERT OR UPDATE OR DELETE ON trust_revision
  FOR EACH STATEMENT EXECUTE FUNCTION nitejar_changed('trust');
DROP TRIGGER IF EXISTS integrations_changes ON integrations;
CREATE TRIGGER integrations_changes AFTER INSERT OR UPDATE OR DELETE ON integrations
  FOR EACH STATEMENT EXECUTE FUNCTION nitejar_changed('integrations');
DROP TRIGGER IF EXISTS agents_changes ON agents;
CREATE TRIGGER agents_changes AFTER INSERT OR UPDATE OR DELETE ON agents
  FOR EACH STATEMENT EXECUTE FUNCTION nitejar_changed('agents');
DROP TRIGGER IF EXISTS agent_integrations_changes ON agent_integrations;
CREATE TRIGGER agent_integrations_changes AFTER INSERT OR UPDATE OR DELETE ON agent_integrations
  FOR EACH STATEMENT EXECUTE FUNCTION nitejar_changed('agents');
DROP TRIGGER IF EXISTS agent_plugin_grants_changes ON agent_plugin_grants;
CREATE TRIGGER agent_plugin_grants_changes AFTER INSERT OR UPDATE OR DELETE ON agent_plugin_grants
  FOR EACH STATEMENT EXECUTE FUNCTION nitejar_changed('agents');
DROP TRIGGER IF EXISTS skills_changes ON skills;
CREATE TRIGGER skills_changes AFTER INSERT OR UPDATE OR DELETE ON skills
  FOR EACH STATEMENT EXECUTE FUNCTION nitejar_changed('skills');
DROP TRIGGER IF EXISTS skill_files_changes ON skill_files;
CREATE TRIGGER skill_files_changes AFTER INSERT OR UPDATE OR DELETE ON skill_files
  FOR EACH STATEMENT EXECUTE FUNCTION nitejar_changed('skills');
DROP TRIGGER IF EXISTS skill_assignments_changes ON skill_assignments;
CREATE TRIGGER skill_assignments_changes AFTER INSERT OR UPDATE OR DELETE ON skill_assignments
  FOR EACH STATEMENT EXECUTE FUNCTION nitejar_changed('skills');

DROP TRIGGER IF EXISTS runs_changes ON runs;
CREATE TRIGGER runs_changes AFTER INSERT ON runs
  FOR EACH STATEMENT EXECUTE FUNCTION nitejar_changed('runs');
