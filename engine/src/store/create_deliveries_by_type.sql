-- The common fan-out, cheaper: events matched to the app's enabled endpoints by type, none of
-- them in a lane. Does what create_deliveries.sql does for such a batch, and leaves out its
-- steps for lanes and named endpoints: a third of its time for a single event, a fifth for
-- sixteen (see docs/PERFORMANCE.md).
-- If any matched endpoint has a lane (ordered, or limited in flight or rate), it creates
-- nothing and returns one row with `lane_found` set instead: the caller then runs
-- create_deliveries.sql, which gives those deliveries their places in line.
-- $1 app id; $2 event ids, $3 event types; $4 fair horizon (ms), $5 fair spacing (ms); $6 .. $9
-- leasing at publish: the worker's id (NULL: lease nothing), its idle slots, the timeout for
-- endpoints without their own (ms) and the lease margin (ms).
WITH batch AS (
    SELECT *
    FROM unnest($2::uuid[], $3::text[]) WITH ORDINALITY AS t(event_id, event_type, position)
),
targets AS (
    SELECT b.event_id, ep.id AS endpoint_id, ep.timeout_ms,
           ep.ordered OR ep.max_in_flight IS NOT NULL OR ep.rate_limit_per_s IS NOT NULL
               AS laned,
           row_number() OVER (ORDER BY b.position, ep.id) AS fair_rank
    FROM batch b
    JOIN endpoints ep ON ep.app_id = $1 AND ep.enabled
    WHERE ep.event_types IS NULL OR b.event_type = ANY (ep.event_types)
),
lane_found AS (
    SELECT EXISTS (SELECT 1 FROM targets WHERE laned) AS found
),
fair_start AS (
    SELECT greatest(now(), least(
               coalesce((SELECT q.fair_key FROM delivery_queue q
                         WHERE q.app_id = $1 AND q.state = 'pending'
                         ORDER BY q.delivery_id DESC
                         LIMIT 1), now()),
               now() + $4::bigint * interval '1 millisecond')) AS at
),
-- Leased at publish as in create_deliveries.sql: the first deliveries, in batch order, whose
-- endpoint's circuit is closed, never more than the slots ($7).
handed AS (
    SELECT h.event_id, h.endpoint_id,
           now() + (coalesce(h.timeout_ms, $8) + $9) * interval '1 millisecond'
               AS lease_expires_at
    FROM (SELECT t.event_id, t.endpoint_id, t.timeout_ms,
                 row_number() OVER (ORDER BY t.fair_rank) AS rank
          FROM targets t
          WHERE $6::text IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM endpoint_circuits c
                            WHERE c.endpoint_id = t.endpoint_id AND c.state <> 'closed')) h
    WHERE h.rank <= $7
),
fresh AS MATERIALIZED (
    SELECT hookd_uuid_v7() AS id, t.event_id, t.endpoint_id, now() AS created_due_at,
           h.lease_expires_at,
           CASE WHEN h.lease_expires_at IS NULL THEN 'pending' ELSE 'in_flight' END::delivery_state
               AS state,
           CASE WHEN h.lease_expires_at IS NULL THEN 0 ELSE 1 END AS attempts,
           coalesce(h.lease_expires_at, now()) AS due_at,
           CASE WHEN h.lease_expires_at IS NOT NULL THEN $6::text END AS lease_owner,
           least(f.at + t.fair_rank * $5::float8 * interval '1 millisecond',
                 now() + $4::bigint * interval '1 millisecond') AS fair_key
    FROM targets t
    CROSS JOIN fair_start f
    LEFT JOIN handed h ON h.event_id = t.event_id AND h.endpoint_id = t.endpoint_id
    WHERE NOT (SELECT found FROM lane_found)
),
queued AS (
    INSERT INTO delivery_queue (delivery_id, app_id, endpoint_id, state, attempts, due_at,
                                lease_owner, fair_key)
    SELECT id, $1, endpoint_id, state, attempts, due_at, lease_owner, fair_key
    FROM fresh
),
created AS (
    INSERT INTO deliveries (id, app_id, event_id, endpoint_id, state, attempts, due_at,
                            lease_owner)
    SELECT id, $1, event_id, endpoint_id, state, attempts, due_at, lease_owner
    FROM fresh
    RETURNING id, event_id, endpoint_id, state, attempts
),
logged AS (
    INSERT INTO delivery_log (delivery_id, kind, attempt, worker_id, next_attempt_at,
                              lease_expires_at)
    SELECT id, kind, attempt, worker_id, next_attempt_at, lease_expires_at
    FROM (SELECT id, 'created'::delivery_log_kind AS kind, 0 AS attempt, NULL::text AS worker_id,
                 created_due_at AS next_attempt_at, NULL::timestamptz AS lease_expires_at
          FROM fresh
          UNION ALL
          SELECT id, 'claimed', 1, $6::text, NULL, lease_expires_at
          FROM fresh
          WHERE lease_expires_at IS NOT NULL) e
    ORDER BY id, kind
)
SELECT false AS lane_found, c.id, c.event_id, c.endpoint_id, c.state = 'in_flight' AS leased,
       c.attempts, 0 AS budget_start, ep.url, ep.secret, ep.enabled,
       CASE WHEN ep.previous_secret_expires_at > now() THEN ep.previous_secret END
           AS previous_secret, ep.max_attempts, ep.retry_base_ms, ep.retry_cap_ms,
       ep.timeout_ms, ep.headers, ev.event_type, ev.payload::text AS payload,
       ev.created_at AS event_created_at, false AS laned
FROM created c
LEFT JOIN endpoints ep ON c.state = 'in_flight' AND ep.id = c.endpoint_id
LEFT JOIN events ev ON c.state = 'in_flight' AND ev.id = c.event_id
UNION ALL
SELECT true, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL
FROM lane_found
WHERE found
ORDER BY 2
