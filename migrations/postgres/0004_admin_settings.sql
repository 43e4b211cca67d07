-- Admin settings and the receipts view. The SQLite folder holds the same logical schema.

-- Small named values the server keeps for itself, e.g. the SHA-256 of an admin token it generated on
-- first start (the token itself is shown once and never stored).
CREATE TABLE IF NOT EXISTS admin_settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);

-- The admin receipts view pages through every plugin's receipts, newest first.
CREATE INDEX IF NOT EXISTS idx_plugin_events_created ON plugin_events (created_at DESC, id DESC);

-- Expired admin sessions are swept by expiry.
CREATE INDEX IF NOT EXISTS idx_admin_sessions_expires ON admin_sessions (expires_at);
