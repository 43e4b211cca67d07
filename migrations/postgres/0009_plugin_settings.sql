-- A plugin's settings: its config (plugins.config_json, checked against the schema its manifest
-- declares) and the secrets it declares in permissions.secrets, set by the operator. The other
-- backend's folder holds the same logical schema.
--
-- config_revision counts changes to either; a server whose loaded instance of the plugin was made
-- with another revision makes a new one (changes made by the CLI or another machine apply without a
-- restart).
ALTER TABLE plugins ADD COLUMN IF NOT EXISTS config_revision BIGINT NOT NULL DEFAULT 0;

-- One row per secret the operator stored. A secret is identified by the environment variable its
-- name reads (`NITEJAR_SECRET_<NAME>`): `api.key` and `API_KEY` are one secret, as in the permission
-- gate. `name` is the spelling the manifest declared when it was set; `value` is encrypted with
-- ENCRYPTION_KEY in the `enc:` format of integration configs, and never shown.
CREATE TABLE IF NOT EXISTS plugin_secrets (
  plugin_id TEXT NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
  env_var TEXT NOT NULL,
  name TEXT NOT NULL,
  value TEXT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (plugin_id, env_var)
);
