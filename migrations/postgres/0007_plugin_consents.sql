-- Consent per version: the operator accepted what this exact version (by checksum) declares and
-- contributes (permissions, hooks, integration types, skills). A version becomes current — by
-- enable, upgrade or rollback — only with its consent on record. The other folder holds the same
-- logical schema.
CREATE TABLE IF NOT EXISTS plugin_consents (
  plugin_id TEXT NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
  version TEXT NOT NULL,
  checksum TEXT NOT NULL,
  -- JSON array of the consented set (`network:api.x.com`, `hook:tool.pre_exec`, `integration:jira`, …).
  consented_json TEXT NOT NULL,
  -- sha256 of the consent text accepted (empty when carried over or recorded for an existing install).
  consent_digest TEXT NOT NULL DEFAULT '',
  -- accepted | carried_over (an upgrade that adds nothing) | existing (enabled before consents were recorded).
  basis TEXT NOT NULL,
  accepted_at BIGINT NOT NULL,
  PRIMARY KEY (plugin_id, version)
);
