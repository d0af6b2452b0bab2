-- The store owner's own device certificate (issue 13 item 4).
-- owner_cert_required: every owner page and action needs a valid,
-- unrevoked certificate of the owner's own devices (1: on).
-- is_owner: the hidden sub-account (name '') whose devices are the owner's
-- computers, so quota, revocation, CRL and OCSP are the sub-accounts' own.
-- It is never listed and no sub-account can take its name.
ALTER TABLE tenants ADD COLUMN owner_cert_required BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sub_accounts ADD COLUMN is_owner BIGINT NOT NULL DEFAULT 0
