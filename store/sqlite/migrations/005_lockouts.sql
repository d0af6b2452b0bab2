-- Login and code-guessing failure counters (portal accounts and client
-- IPs), shared by every node so limits hold across a fleet and restarts.
CREATE TABLE lockouts (
  name TEXT PRIMARY KEY,
  failures INTEGER NOT NULL,
  since INTEGER NOT NULL,
  locked_until INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX lockouts_by_since ON lockouts (since);
