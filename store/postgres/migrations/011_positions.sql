-- Positions per store: the owner's own permission points of a position
-- (a role key of the catalog); a position without a row grants the
-- catalog's defaults. points is a JSON array of point keys (like
-- sub_accounts.grants, '' for none). Times in microseconds since the epoch.
CREATE TABLE positions (
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  role TEXT NOT NULL,
  points TEXT NOT NULL,
  change_seq BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, role)
);
-- An edit gives every sub-account of the position a new policy seq.
CREATE INDEX sub_accounts_by_role ON sub_accounts (tenant_id, role)
