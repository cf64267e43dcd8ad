-- Indexes for listing events and deliveries, and for finding an endpoint's dead letters, so that
-- no list or history read scans a table.
--
-- Ids are time-ordered (UUIDv7: the first 48 bits are Unix milliseconds), so "created between"
-- is an id range: hookd_uuid_v7_floor(t) is the smallest id minted at or after t. Time filters
-- use the same indexes as pagination.

CREATE FUNCTION hookd_uuid_v7_floor(t timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT encode(
    substring(int8send(floor(extract(epoch FROM t) * 1000)::bigint) FROM 3)
      || '\x00000000000000000000'::bytea,
    'hex')::uuid
$$;

DROP INDEX events_app_created;
CREATE INDEX events_app_page ON events (app_id, id DESC);
CREATE INDEX events_app_type_page ON events (app_id, event_type, id DESC);

DROP INDEX deliveries_endpoint;
CREATE INDEX deliveries_app_page ON deliveries (app_id, id DESC);
CREATE INDEX deliveries_endpoint_page ON deliveries (endpoint_id, id DESC);
CREATE INDEX deliveries_app_state_page ON deliveries (app_id, state, id DESC);
-- Dead letters by endpoint: recover and bulk redrive.
CREATE INDEX deliveries_dead ON deliveries (endpoint_id, id) WHERE state = 'dead';
