-- Login and code-guessing failure counters (portal accounts and client
-- IPs), shared by every node so limits hold across a fleet and restarts.
CREATE TABLE lockouts (
  name TEXT PRIMARY KEY,
  failures BIGINT NOT NULL,
  since BIGINT NOT NULL,
  locked_until BIGINT NOT NULL
);
CREATE INDEX lockouts_by_since ON lockouts (since);
