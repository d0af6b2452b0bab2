-- Real-person verification (issue 13). verify_frozen: the sub-account did
-- not finish its verification in time (it cannot log in, enroll or renew,
-- and proxies refuse its high-risk pages); it moves the policy seq.
ALTER TABLE sub_accounts ADD COLUMN verify_frozen INTEGER NOT NULL DEFAULT 0;
-- One row per sub-account that must verify (no row: exempt, e.g. created
-- before this migration or temporary). The person is kept only as keyed
-- hashes (HMAC, server key); NULL while nobody is bound. The unique
-- indexes are the rule "one person binds at most one sub-account per store".
CREATE TABLE verifications (
  sub_id TEXT PRIMARY KEY REFERENCES sub_accounts(id),
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  state TEXT NOT NULL,
  deadline INTEGER NOT NULL,
  link_hash BLOB NOT NULL UNIQUE,
  link BLOB NOT NULL,
  started_at INTEGER NOT NULL,
  submitted_at INTEGER NOT NULL,
  decided_at INTEGER NOT NULL,
  reason TEXT NOT NULL,
  holder TEXT NOT NULL,
  id_hash BLOB,
  phone_hash BLOB,
  unfreezes INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX verifications_id_person ON verifications (tenant_id, id_hash);
CREATE UNIQUE INDEX verifications_phone_person ON verifications (tenant_id, phone_hash);
CREATE INDEX verifications_by_deadline ON verifications (deadline);
-- Leases of background jobs that must run on one node at a time.
CREATE TABLE job_leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  until_at INTEGER NOT NULL
);
-- Callback nonces already used (a replayed signed result is refused).
CREATE TABLE verify_nonces (
  nonce TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
)
