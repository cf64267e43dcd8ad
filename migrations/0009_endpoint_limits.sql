-- Per-endpoint limits, enforced across every worker process together.
--
-- Concurrency: an endpoint with `max_in_flight` M gets a lane like an ordered endpoint's
-- (0008), with room for M active deliveries (in flight, or waiting for a retry) instead of one;
-- the rest wait parked, oldest first.
-- Rate: an endpoint with `rate_limit_per_s` N gets a lane with room for one second's worth of
-- deliveries, each admitted one due 1/N s after the previous (`rate_tat` on the endpoint's row,
-- written under its lock, is the next free send time); the rest wait parked.

ALTER TABLE endpoints
    ADD COLUMN max_in_flight integer CHECK (max_in_flight BETWEEN 1 AND 10000),
    ADD COLUMN rate_limit_per_s integer CHECK (rate_limit_per_s BETWEEN 1 AND 100000),
    -- The next free send time under the rate limit (a theoretical arrival time, as in GCRA).
    ADD COLUMN rate_tat timestamptz;

-- Lanes now also serve concurrency-limited endpoints.
DROP INDEX endpoints_ordered;
CREATE INDEX endpoints_laned ON endpoints (app_id, id)
    WHERE ordered OR max_in_flight IS NOT NULL OR rate_limit_per_s IS NOT NULL;
