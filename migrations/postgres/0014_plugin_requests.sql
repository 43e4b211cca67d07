-- What agents asked the operator to do to plugins (an enable of a disabled plugin): consent is
-- never an agent's to give, so the request waits here until the operator approves it (enabling the
-- plugin with their own consent) or rejects it. status: pending, approved, rejected. reason: the
-- agent's words, shown to the operator. The other backend's folder holds the same logical schema.
CREATE TABLE IF NOT EXISTS plugin_requests (
  id TEXT PRIMARY KEY,
  plugin_id TEXT NOT NULL,
  action TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  job_id TEXT NOT NULL,
  work_item_id TEXT NOT NULL,
  reason TEXT,
  status TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  decided_at BIGINT,
  decided_by TEXT
);
CREATE INDEX IF NOT EXISTS plugin_requests_status ON plugin_requests (status, created_at);
