-- Trust settings an operator adds in the admin (API, UI, CLI) beside the environment's
-- NITEJAR_PLUGIN_TRUSTED_KEYS and NITEJAR_PLUGIN_ALLOWLIST. The other backend's folder holds the same
-- logical schema.
--
-- kind: `key` (a minisign public key) or `allow` (an allowlist entry). ident: what the entry is
-- known by, in its one canonical spelling: the key id (16 upper-case hex digits) or the entry itself
-- (`<plugin id>` or `<plugin id>@sha256:<hex>`, lower case). value: the canonical base64 key line,
-- or the entry again. added_by: who added it (admin API, admin UI session, CLI user); never a secret.
CREATE TABLE IF NOT EXISTS trust_entries (
  kind TEXT NOT NULL,
  ident TEXT NOT NULL,
  value TEXT NOT NULL,
  added_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (kind, ident)
);

-- Counts changes to trust_entries, in the transaction that makes them: every server compares it with
-- the revision its policy was built from when it reconciles, so a change applies everywhere without a
-- restart.
CREATE TABLE IF NOT EXISTS trust_revision (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  revision BIGINT NOT NULL
);
INSERT INTO trust_revision (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

-- Why last_load_error was set: `trust` (the trust policy refused the plugin; retried when the policy
-- accepts it), `load`, `crash`, … NULL when there is no error (or for an error recorded before
-- this column existed).
ALTER TABLE plugins ADD COLUMN IF NOT EXISTS last_error_kind TEXT;
