-- An agent's upgrade or source edit waits for the operator like its enable does, and the operator
-- approves exactly what was reviewed: detail_json keeps what the request would do (the pinned
-- source, from and to versions, the package digest, what it adds to the consent, the consent text
-- and the files an edit changed); archive keeps the package an edit wrote (a .tgz), which exists
-- nowhere else. The other backend's folder holds the same logical schema.
ALTER TABLE plugin_requests ADD COLUMN detail_json TEXT;
ALTER TABLE plugin_requests ADD COLUMN archive BYTEA;
