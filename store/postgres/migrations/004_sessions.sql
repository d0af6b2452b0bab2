-- Portal login sessions, shared by every portal node. Only the SHA-256 of
-- the cookie's id is kept; secret (an owner's TOTP key being set up) is
-- sealed. Times are microseconds since the epoch, idle_us a duration.
CREATE TABLE sessions (
  hash BYTEA PRIMARY KEY,
  kind TEXT NOT NULL,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  sub_id TEXT NOT NULL,
  name TEXT NOT NULL,
  csrf TEXT NOT NULL,
  step TEXT NOT NULL,
  secret BYTEA,
  created_at BIGINT NOT NULL,
  seen_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  idle_us BIGINT NOT NULL
);
CREATE INDEX sessions_by_account ON sessions (tenant_id, sub_id);
CREATE INDEX sessions_by_end ON sessions (expires_at);
