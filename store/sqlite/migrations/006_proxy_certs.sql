-- Proxy certificates of the policy feed: the record the CA checks on every
-- feed request (revocation and store scope take effect at once).
-- scope is '*' (every store) or the tenant ids separated by ','.
CREATE TABLE proxy_certs (
  serial TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  scope TEXT NOT NULL,
  issued_at INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  revoked_at INTEGER NOT NULL,
  reason INTEGER NOT NULL,
  revoke_seq INTEGER NOT NULL,
  renewed_from TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX proxy_certs_by_name ON proxy_certs (name);
CREATE INDEX proxy_certs_by_expiry ON proxy_certs (not_after)
