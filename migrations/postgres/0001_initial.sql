-- Nitejar schema, Postgres flavour. The SQLite folder holds the same logical schema.
--
-- Conventions: booleans are BIGINT 0/1 (integers, as in SQLite, so that rows read the same on both
-- backends), JSON is TEXT, timestamps are BIGINT Unix milliseconds, ids are UUIDv7 text. Exception:
-- `integrations` keeps second-resolution timestamps, as written by earlier Nitejar releases.
--
-- Every statement is `IF NOT EXISTS` (or an `ALTER` that is a no-op on a fresh database), so that a
-- database written by an earlier Nitejar release gains what it lacks and keeps what it has.

-- Channel instances. Legacy-compatible: same columns and types as earlier releases, plus `plugin_id`.
CREATE TABLE IF NOT EXISTS integrations (
  id TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  name TEXT NOT NULL,
  config TEXT,
  scope TEXT NOT NULL DEFAULT 'global',
  enabled BIGINT NOT NULL DEFAULT 1,
  created_at BIGINT NOT NULL DEFAULT (extract(epoch from now())::bigint),
  updated_at BIGINT NOT NULL DEFAULT (extract(epoch from now())::bigint),
  plugin_id TEXT
);
ALTER TABLE integrations ADD COLUMN IF NOT EXISTS plugin_id TEXT;
CREATE INDEX IF NOT EXISTS idx_integrations_type ON integrations (type);
CREATE INDEX IF NOT EXISTS idx_integrations_plugin ON integrations (plugin_id);

CREATE TABLE IF NOT EXISTS plugins (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  enabled BIGINT NOT NULL DEFAULT 0,
  trust_level TEXT NOT NULL DEFAULT 'unknown',
  source_kind TEXT NOT NULL,
  source_ref TEXT,
  current_version TEXT,
  current_checksum TEXT,
  current_install_path TEXT,
  manifest_json TEXT NOT NULL,
  config_json TEXT,
  last_load_error TEXT,
  last_loaded_at BIGINT,
  installed_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS plugin_versions (
  plugin_id TEXT NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
  version TEXT NOT NULL,
  checksum TEXT NOT NULL,
  install_path TEXT NOT NULL,
  manifest_json TEXT NOT NULL,
  signature_json TEXT,
  installed_at BIGINT NOT NULL,
  PRIMARY KEY (plugin_id, version)
);
CREATE INDEX IF NOT EXISTS idx_plugin_versions_plugin ON plugin_versions (plugin_id);

-- `scope` is '' when the acknowledgement is not scoped: a NULL in a primary key would let duplicates in.
CREATE TABLE IF NOT EXISTS plugin_disclosure_acks (
  plugin_id TEXT NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
  permission TEXT NOT NULL,
  scope TEXT NOT NULL DEFAULT '',
  acknowledged BIGINT NOT NULL DEFAULT 0,
  acknowledged_at BIGINT,
  PRIMARY KEY (plugin_id, permission, scope)
);
CREATE INDEX IF NOT EXISTS idx_plugin_disclosure_acks_plugin_ack
  ON plugin_disclosure_acks (plugin_id, acknowledged);

-- Receipts. No foreign key to `plugins`, on purpose: receipts are the audit trail and must be storable
-- for built-ins, for plugins whose install failed before they got a row, and after an uninstall.
CREATE TABLE IF NOT EXISTS plugin_events (
  id TEXT PRIMARY KEY,
  plugin_id TEXT NOT NULL,
  plugin_version TEXT,
  kind TEXT NOT NULL,
  status TEXT NOT NULL,
  work_item_id TEXT,
  job_id TEXT,
  hook_name TEXT,
  duration_ms BIGINT,
  detail_json TEXT,
  created_at BIGINT NOT NULL,
  execution_mode TEXT NOT NULL DEFAULT 'in_process'
);
-- Earlier releases declared a foreign key to plugins and second-resolution integer timestamps.
ALTER TABLE plugin_events ADD COLUMN IF NOT EXISTS execution_mode TEXT NOT NULL DEFAULT 'in_process';
ALTER TABLE plugin_events DROP CONSTRAINT IF EXISTS plugin_events_plugin_id_fkey;
ALTER TABLE plugin_events ALTER COLUMN created_at TYPE BIGINT;
-- Keyset pagination of one plugin's events, newest first.
CREATE INDEX IF NOT EXISTS idx_plugin_events_plugin_created
  ON plugin_events (plugin_id, created_at DESC, id DESC);

-- Package bytes per installed version, so that every machine can materialise the same version.
CREATE TABLE IF NOT EXISTS plugin_artifacts (
  plugin_id TEXT NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
  version TEXT NOT NULL,
  tgz_blob BYTEA NOT NULL,
  size_bytes BIGINT NOT NULL,
  checksum TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (plugin_id, version)
);

CREATE TABLE IF NOT EXISTS skills (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  slug TEXT NOT NULL,
  description TEXT,
  category TEXT NOT NULL DEFAULT 'general',
  source_kind TEXT NOT NULL,
  plugin_id TEXT REFERENCES plugins (id) ON DELETE SET NULL,
  source_ref TEXT,
  content TEXT NOT NULL,
  is_directory BIGINT NOT NULL DEFAULT 0,
  version TEXT,
  checksum TEXT,
  enabled BIGINT NOT NULL DEFAULT 1,
  tags_json TEXT,
  requires_tools_json TEXT,
  metadata_json TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_skills_slug ON skills (slug);
CREATE INDEX IF NOT EXISTS idx_skills_plugin_id ON skills (plugin_id);

CREATE TABLE IF NOT EXISTS skill_files (
  id TEXT PRIMARY KEY,
  skill_id TEXT NOT NULL REFERENCES skills (id) ON DELETE CASCADE,
  relative_path TEXT NOT NULL,
  content TEXT NOT NULL,
  content_type TEXT,
  size_bytes BIGINT,
  checksum TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_skill_files_path ON skill_files (skill_id, relative_path);

CREATE TABLE IF NOT EXISTS skill_assignments (
  id TEXT PRIMARY KEY,
  skill_id TEXT NOT NULL REFERENCES skills (id) ON DELETE CASCADE,
  skill_slug TEXT NOT NULL,
  scope TEXT NOT NULL,
  scope_id TEXT,
  priority BIGINT NOT NULL DEFAULT 0,
  auto_inject BIGINT NOT NULL DEFAULT 0,
  enabled BIGINT NOT NULL DEFAULT 1,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_skill_assignments_unique
  ON skill_assignments (skill_id, scope, scope_id);
CREATE INDEX IF NOT EXISTS idx_skill_assignments_scope ON skill_assignments (scope, scope_id);

CREATE TABLE IF NOT EXISTS agents (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  handle TEXT,
  config TEXT,
  status TEXT NOT NULL DEFAULT 'idle',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_agents_handle ON agents (handle);

CREATE TABLE IF NOT EXISTS agent_integrations (
  agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  integration_id TEXT NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (agent_id, integration_id)
);

-- Work items outlive the integration that created them (core data is never deleted by a plugin or an
-- integration operation), so `integration_id` is a plain column, not a foreign key.
CREATE TABLE IF NOT EXISTS work_items (
  id TEXT PRIMARY KEY,
  integration_id TEXT,
  session_key TEXT NOT NULL,
  source TEXT NOT NULL,
  source_ref TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'NEW',
  title TEXT NOT NULL,
  payload TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_work_items_integration ON work_items (integration_id);
CREATE INDEX IF NOT EXISTS idx_work_items_session_key ON work_items (session_key);

-- Keys are inserted before the work item exists (dedup comes first), then attached to it.
CREATE TABLE IF NOT EXISTS idempotency_keys (
  key TEXT PRIMARY KEY,
  work_item_id TEXT REFERENCES work_items (id) ON DELETE CASCADE,
  created_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  work_item_id TEXT NOT NULL REFERENCES work_items (id) ON DELETE CASCADE,
  agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  parent_job_id TEXT REFERENCES jobs (id) ON DELETE SET NULL,
  root_job_id TEXT REFERENCES jobs (id) ON DELETE SET NULL,
  run_kind TEXT NOT NULL DEFAULT 'primary',
  origin_tool_name TEXT,
  status TEXT NOT NULL DEFAULT 'PENDING',
  error_text TEXT,
  started_at BIGINT,
  completed_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_jobs_work_item ON jobs (work_item_id);

-- Trace spans. `job_id` and `agent_id` are optional and not foreign keys: plugin spans are written for
-- webhook ingress and hooks that run before any job exists, and a span must never be refused.
CREATE TABLE IF NOT EXISTS spans (
  id TEXT PRIMARY KEY,
  trace_id TEXT NOT NULL,
  parent_span_id TEXT,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'ok',
  start_time BIGINT NOT NULL,
  end_time BIGINT,
  duration_ms BIGINT,
  attributes TEXT,
  job_id TEXT,
  agent_id TEXT,
  created_at BIGINT NOT NULL
);
-- Earlier releases required a job and an agent for every span.
ALTER TABLE spans DROP CONSTRAINT IF EXISTS spans_job_id_fkey;
ALTER TABLE spans ALTER COLUMN job_id DROP NOT NULL;
ALTER TABLE spans ALTER COLUMN agent_id DROP NOT NULL;
ALTER TABLE spans ALTER COLUMN start_time TYPE BIGINT;
ALTER TABLE spans ALTER COLUMN end_time TYPE BIGINT;
ALTER TABLE spans ALTER COLUMN created_at TYPE BIGINT;
CREATE INDEX IF NOT EXISTS idx_spans_trace_id ON spans (trace_id);

-- Admin UI sessions: only a hash of the session token is stored.
CREATE TABLE IF NOT EXISTS admin_sessions (
  id TEXT PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  last_seen_at BIGINT
);
