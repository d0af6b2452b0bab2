-- The public key of each device's current certificate (hex SHA-256 of its
-- SubjectPublicKeyInfo): one key pair holds at most one active device.
ALTER TABLE devices ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
CREATE INDEX devices_by_key ON devices (key_id, status, expires_at);
