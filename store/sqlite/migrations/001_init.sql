CREATE TABLE tenants (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  display_name TEXT NOT NULL,
  owner_password_hash TEXT NOT NULL DEFAULT '',
  owner_totp BLOB,
  created_at INTEGER NOT NULL
);
CREATE TABLE sub_accounts (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  grants TEXT NOT NULL,
  status TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  phone_enabled INTEGER NOT NULL,
  totp BLOB,
  protect_enabled INTEGER NOT NULL,
  max_devices INTEGER NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  change_seq INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (tenant_id, name)
);
CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  sub_id TEXT NOT NULL REFERENCES sub_accounts(id),
  label TEXT NOT NULL,
  serial TEXT NOT NULL UNIQUE,
  fingerprint TEXT NOT NULL,
  status TEXT NOT NULL,
  issued_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  enrolled_ip TEXT NOT NULL,
  enrolled_ua TEXT NOT NULL,
  last_seen_at INTEGER NOT NULL,
  last_seen_ip TEXT NOT NULL,
  revoked_at INTEGER NOT NULL,
  reason INTEGER NOT NULL,
  change_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX devices_by_sub ON devices (sub_id, status, expires_at);
CREATE INDEX devices_by_change ON devices (change_seq);
CREATE INDEX sub_accounts_by_change ON sub_accounts (change_seq);
CREATE TABLE tickets (
  hash BLOB PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  sub_id TEXT NOT NULL REFERENCES sub_accounts(id),
  expires_at INTEGER NOT NULL,
  used_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE revocations (
  seq INTEGER PRIMARY KEY,
  serial TEXT NOT NULL,
  tenant_id TEXT NOT NULL,
  sub_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  reason INTEGER NOT NULL,
  revoked_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX revocations_by_expiry ON revocations (expires_at);
CREATE INDEX revocations_by_serial ON revocations (serial);
CREATE TABLE policy_seq (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  v INTEGER NOT NULL
);
INSERT INTO policy_seq (id, v) VALUES (1, 0);
CREATE TABLE audit_heads (
  tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
  seq INTEGER NOT NULL,
  hash TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE audit (
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  seq INTEGER NOT NULL,
  at INTEGER NOT NULL,
  actor_kind TEXT NOT NULL,
  actor_name TEXT NOT NULL,
  actor_ip TEXT NOT NULL,
  actor_ua TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  outcome TEXT NOT NULL,
  detail TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL,
  PRIMARY KEY (tenant_id, seq)
) WITHOUT ROWID;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END
