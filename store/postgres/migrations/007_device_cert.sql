-- The DER of each device's current certificate, recorded in the transaction
-- that records the device (and replaced by a renewal): a client whose answer
-- was lost can get the identical certificate again (CA re-delivery).
-- NULL for devices recorded before this column existed.
ALTER TABLE devices ADD COLUMN cert_der BYTEA
