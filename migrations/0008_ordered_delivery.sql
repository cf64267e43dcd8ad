-- Ordered delivery, opt-in per endpoint: its deliveries reach it in publish order, one at a
-- time. The lane's invariant: of an ordered endpoint's live deliveries, at most one is active
-- (due or in flight); the others are parked (pending, no due time) and the oldest of them is
-- resumed when the active one ends (delivered, dead-lettered, cancelled). Creation and
-- promotion take the endpoint's row lock first, so they see each other's commits.

ALTER TABLE endpoints ADD COLUMN ordered boolean NOT NULL DEFAULT false;

-- Publish order of the deliveries of ordered endpoints; NULL for every other delivery (and for
-- deliveries created before their endpoint became ordered, which keep going unordered).
CREATE SEQUENCE delivery_ordinals;
ALTER TABLE deliveries ADD COLUMN ordinal bigint;

-- The live deliveries of ordered endpoints, in lane order: small, since nothing else enters it.
CREATE INDEX deliveries_ordered_live ON deliveries (endpoint_id, ordinal)
    WHERE ordinal IS NOT NULL AND state IN ('pending', 'in_flight');

-- Every publish locks the ordered endpoints it may reach; for the many apps without any, this
-- finds none at once.
CREATE INDEX endpoints_ordered ON endpoints (app_id, id) WHERE ordered;
