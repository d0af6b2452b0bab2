CREATE TABLE tenants (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  display_name TEXT NOT NULL,
  owner_password_hash TEXT NOT NULL DEFAULT '',
  owner_totp BYTEA,
  created_at BIGINT NOT NULL
);
CREATE TABLE sub_accounts (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  grants TEXT NOT NULL,
  status TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  phone_enabled BIGINT NOT NULL,
  totp BYTEA,
  protect_enabled BIGINT NOT NULL,
  max_devices BIGINT NOT NULL,
  not_before BIGINT NOT NULL,
  not_after BIGINT NOT NULL,
  change_seq BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
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
  issued_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  enrolled_ip TEXT NOT NULL,
  enrolled_ua TEXT NOT NULL,
  last_seen_at BIGINT NOT NULL,
  last_seen_ip TEXT NOT NULL,
  revoked_at BIGINT NOT NULL,
  reason BIGINT NOT NULL,
  change_seq BIGINT NOT NULL
);
CREATE INDEX devices_by_sub ON devices (sub_id, status, expires_at);
CREATE INDEX devices_by_change ON devices (change_seq);
CREATE INDEX sub_accounts_by_change ON sub_accounts (change_seq);
CREATE TABLE tickets (
  hash BYTEA PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  sub_id TEXT NOT NULL REFERENCES sub_accounts(id),
  expires_at BIGINT NOT NULL,
  used_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE revocations (
  seq BIGINT PRIMARY KEY,
  serial TEXT NOT NULL,
  tenant_id TEXT NOT NULL,
  sub_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  reason BIGINT NOT NULL,
  revoked_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX revocations_by_expiry ON revocations (expires_at);
CREATE INDEX revocations_by_serial ON revocations (serial);
CREATE TABLE policy_seq (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  v BIGINT NOT NULL
);
INSERT INTO policy_seq (id, v) VALUES (1, 0);
CREATE TABLE audit_heads (
  tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
  seq BIGINT NOT NULL,
  hash TEXT NOT NULL
);
CREATE TABLE audit (
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  seq BIGINT NOT NULL,
  at BIGINT NOT NULL,
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
);
;
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit log is append-only'; END $$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only()
