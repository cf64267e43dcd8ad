-- Circuit breaker per endpoint (engine/src/store/circuits.rs, claim_due.sql): after a run of
-- failed attempts an endpoint's circuit opens and its due deliveries are parked, neither sent
-- nor charged, until a cooldown ends and one probe goes; success closes it and the parked
-- deliveries resume. Every worker process reads and writes the same rows.

-- A parked delivery: `deferred` moves it to `pending` with no due time (so no claim sees it);
-- `resumed` makes it due again.
ALTER TYPE delivery_log_kind ADD VALUE 'deferred';
ALTER TYPE delivery_log_kind ADD VALUE 'resumed';

CREATE TYPE circuit_state AS ENUM ('closed', 'open', 'half_open');

-- One row per endpoint that has ever failed; no row reads as closed with no failures, so a
-- healthy endpoint's outcomes never write here.
CREATE TABLE endpoint_circuits (
    endpoint_id          uuid PRIMARY KEY REFERENCES endpoints (id) ON DELETE CASCADE,
    state                circuit_state NOT NULL DEFAULT 'closed',
    -- Failed attempts since the last success.
    consecutive_failures integer NOT NULL DEFAULT 0,
    -- While open: when the probe may go. While half-open: when the probe's lease ends (a probe
    -- whose worker died is replaced after that).
    open_until           timestamptz,
    -- The cooldown of the current opening; doubles, up to a cap, each time a probe fails.
    cooldown_ms          bigint,
    -- The first failure after the last success: automatic disabling counts from here.
    failing_since        timestamptz,
    last_success_at      timestamptz,
    changed_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX endpoint_circuits_probe_due ON endpoint_circuits (open_until) WHERE state <> 'closed';

-- Parked deliveries by endpoint: resumed together when the circuit closes.
CREATE INDEX deliveries_parked ON deliveries (endpoint_id, id)
    WHERE state = 'pending' AND due_at IS NULL;

-- Resumed deliveries are due: they ring the workers like new ones.
CREATE OR REPLACE FUNCTION hookd_ring_workers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM new_rows
             WHERE kind::text IN ('created', 'redriven', 'retry_scheduled', 'released', 'resumed')) THEN
    PERFORM pg_notify('hookd_work', '');
  END IF;
  RETURN NULL;
END
$$;
