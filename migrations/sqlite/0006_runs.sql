-- Durable runs. A work item accepted from a webhook is queued here in the same transaction as the
-- item, its idempotency keys and its ingress receipt; a server claims a run with a lease (owner,
-- expiry, renewed while it runs) and deletes the row in the transaction that finishes the run's last
-- job. A run whose lease expired (its server died) is claimed again. The Postgres folder holds the
-- same logical schema.
CREATE TABLE IF NOT EXISTS runs (
  -- Arrival order: runs of one session are claimed in this order, one at a time.
  seq INTEGER PRIMARY KEY,
  work_item_id TEXT NOT NULL UNIQUE REFERENCES work_items (id) ON DELETE CASCADE,
  session_key TEXT NOT NULL,
  -- What parse_webhook handed back for post_response (JSON).
  response_context TEXT,
  -- 1 for the oldest run of its session (the only one that may be claimed); kept by the writes that
  -- add and remove runs, so that a claim reads the heads only, however long one session's backlog.
  is_head INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT,
  lease_expires_at INTEGER,
  -- Not before this time (a retry after a failure waits).
  available_at INTEGER NOT NULL,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_runs_session ON runs (session_key, seq);
CREATE INDEX IF NOT EXISTS idx_runs_heads ON runs (seq) WHERE is_head = 1;
