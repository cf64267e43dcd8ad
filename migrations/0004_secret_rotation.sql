-- Endpoint secret rotation: after a rotation the previous secret keeps signing beside the new
-- one until it expires, so receivers can roll over without dropping a delivery.
-- Both columns hold secrets sealed under the master key (see engine/src/vault.rs).

ALTER TABLE endpoints
    ADD COLUMN previous_secret text,
    ADD COLUMN previous_secret_expires_at timestamptz;
