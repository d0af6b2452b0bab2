-- Until when the owner allows one early renewal of a device (microseconds
-- since the epoch, like every time column); NULL: not allowed. Set by
-- AllowEarlyRenewal, cleared by the renewal that uses it.
ALTER TABLE devices ADD COLUMN renew_allowed_until BIGINT
