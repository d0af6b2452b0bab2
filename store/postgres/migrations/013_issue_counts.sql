-- Issuance locks the sub-account, counts and inserts the device in ONE
-- statement (store/sqlstore/devices.go, issueInOneStatement). A count
-- written in that statement would use the statement's snapshot, taken
-- before it waited for the sub-account's lock, and miss a device that
-- another node committed meanwhile (N+1 devices). A VOLATILE function's
-- query takes a fresh snapshot, after the lock: these two count as the
-- lock's holder sees the table. PL/pgSQL is never inlined into the caller.
-- Each function is one line: the migration runner splits on ";\n".
-- devicegate_active_devices(sub_id, status, now): the sub-account's
-- devices holding a quota slot at now.
CREATE FUNCTION devicegate_active_devices(TEXT, TEXT, BIGINT) RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $$ BEGIN RETURN (SELECT COUNT(*) FROM devices WHERE sub_id = $1 AND status = $2 AND expires_at > $3); END $$;
-- devicegate_key_holders(key_id, status, now): the active devices that
-- hold the key.
CREATE FUNCTION devicegate_key_holders(TEXT, TEXT, BIGINT) RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $$ BEGIN RETURN (SELECT COUNT(*) FROM devices WHERE key_id = $1 AND status = $2 AND expires_at > $3); END $$;
