-- hookd core schema: tenants, endpoints, events, the delivery projection and its append-only log.
--
-- Invariant: `deliveries` is a projection of `delivery_log`. Only the engine's store layer writes
-- either, always both in one transaction; `hookd projection check` folds the log and compares.

-- Time-ordered UUIDs keep inserts at the right edge of the primary-key indexes (PostgreSQL 15 has
-- no built-in uuidv7).
CREATE FUNCTION hookd_uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT encode(
    set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
      PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
      FROM 1 FOR 6), 52, 1), 53, 1),
    'hex')::uuid
$$;

CREATE TABLE apps (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id         uuid PRIMARY KEY,
    app_id     uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    -- SHA-256 of the key: the key itself is shown once and never stored.
    key_hash   bytea NOT NULL UNIQUE,
    name       text,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_keys_app ON api_keys (app_id);

CREATE TABLE endpoints (
    id              uuid PRIMARY KEY,
    app_id          uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    url             text NOT NULL,
    description     text NOT NULL DEFAULT '',
    -- NULL subscribes to every event type.
    event_types     text[],
    secret          text NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    disabled_reason text,
    -- Per-endpoint overrides of the global retry policy and timeout; NULL means the global value.
    max_attempts    integer CHECK (max_attempts BETWEEN 1 AND 100),
    retry_base_ms   bigint CHECK (retry_base_ms > 0),
    retry_cap_ms    bigint CHECK (retry_cap_ms > 0),
    timeout_ms      bigint CHECK (timeout_ms > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX endpoints_app ON endpoints (app_id);

CREATE TABLE events (
    id         uuid PRIMARY KEY,
    app_id     uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    event_type text NOT NULL,
    -- `json`, not `jsonb`: keeps the payload's key order and skips jsonb's binary conversion on
    -- every insert.
    payload    json NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_app_created ON events (app_id, created_at DESC);

CREATE TABLE idempotency_keys (
    app_id       uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    key          text NOT NULL,
    -- SHA-256 of the request body: the same key with another body is a conflict.
    request_hash bytea NOT NULL,
    event_id     uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, key)
);

CREATE TYPE delivery_state AS ENUM ('pending', 'in_flight', 'succeeded', 'dead', 'cancelled');

CREATE TYPE delivery_log_kind AS ENUM (
    'created',
    'claimed',
    'attempt_succeeded',
    'attempt_failed',
    'retry_scheduled',
    'dead_lettered',
    'redriven',
    'cancelled',
    'released'
);

CREATE TABLE deliveries (
    id               uuid PRIMARY KEY,
    app_id           uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    event_id         uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    endpoint_id      uuid NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    state            delivery_state NOT NULL,
    -- Attempts charged so far, including the one in flight.
    attempts         integer NOT NULL DEFAULT 0,
    -- `attempts` when the current retry budget began (0, or the count at the last redrive).
    budget_start     integer NOT NULL DEFAULT 0,
    -- When a pending delivery is due, or when an in-flight delivery's lease expires: either way,
    -- when a worker may claim it next. NULL once final.
    due_at           timestamptz,
    lease_owner      text,
    last_http_status integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- The claimable set: narrow and partial, so finished deliveries drop out of it.
CREATE INDEX deliveries_claimable ON deliveries (due_at) WHERE state IN ('pending', 'in_flight');
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, created_at DESC);

CREATE TABLE delivery_log (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    kind             delivery_log_kind NOT NULL,
    at               timestamptz NOT NULL DEFAULT now(),
    -- The delivery's attempt count once this entry applies.
    attempt          integer NOT NULL,
    worker_id        text,
    http_status      integer,
    latency_ms       integer,
    error_class      text,
    error_message    text,
    response_excerpt text CHECK (octet_length(response_excerpt) <= 1024),
    next_attempt_at  timestamptz,
    lease_expires_at timestamptz
);
CREATE INDEX delivery_log_delivery ON delivery_log (delivery_id, seq);

-- The log is append-only: history is evidence, so the database refuses to rewrite it.
CREATE FUNCTION hookd_refuse_log_rewrite() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'delivery_log is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER delivery_log_no_update BEFORE UPDATE ON delivery_log
  FOR EACH STATEMENT EXECUTE FUNCTION hookd_refuse_log_rewrite();
CREATE TRIGGER delivery_log_no_delete BEFORE DELETE ON delivery_log
  FOR EACH STATEMENT EXECUTE FUNCTION hookd_refuse_log_rewrite();
CREATE TRIGGER delivery_log_no_truncate BEFORE TRUNCATE ON delivery_log
  FOR EACH STATEMENT EXECUTE FUNCTION hookd_refuse_log_rewrite();

-- The doorbell: one NOTIFY per statement that makes work due (new, redriven, rescheduled or
-- released deliveries). PostgreSQL folds identical notifications within a transaction, so a
-- transaction rings at most once. Claims and final outcomes make nothing due and stay silent.
CREATE FUNCTION hookd_ring_workers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM new_rows
             WHERE kind IN ('created', 'redriven', 'retry_scheduled', 'released')) THEN
    PERFORM pg_notify('hookd_work', '');
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER delivery_log_ring AFTER INSERT ON delivery_log
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION hookd_ring_workers();
