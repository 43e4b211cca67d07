-- Admin sessions remember which admin token they were opened with (a keyed fingerprint, never the
-- token), so that changing the token ends every older session. Sessions from before this column
-- have an empty fingerprint and end at their next request.
ALTER TABLE admin_sessions ADD COLUMN token_fingerprint TEXT NOT NULL DEFAULT '';
