-- Fan a batch of events out: one pending delivery, due now, per (event, endpoint) pair, each with
-- its `created` log row; the log insert rings the workers once for the whole batch.
-- An event either matches the app's enabled endpoints by type, or names its endpoints
-- explicitly (given as (event, endpoint) pairs; disabled ones are skipped).
-- For an endpoint with a lane (ordered, or with max_in_flight or rate_limit_per_s; the caller has
-- locked its row, so that this statement sees every committed delivery of it) a delivery takes
-- the next ordinal, in batch order, and is created parked (no due time) unless the lane has room
-- for it: one active delivery for an ordered endpoint, max_in_flight, and one second's worth of
-- sends under a rate limit, where each admitted delivery is due 1/N s after the previous one.
-- Each delivery gets its fair key (0010_fair_queue.sql): spaced $8 ms apart in batch order from
-- the later of now and the key of the app's newest pending delivery, at most $7 ms (the fair
-- horizon) ahead of now. Concurrent publishes of one app read the same newest key and overlap:
-- fairness between apps is approximate, and no lock is taken for it.
-- $1 app id; $2 event ids, $3 event types, $4 whether the event names its endpoints;
-- $5, $6 the explicit (event id, endpoint id) pairs; $7 fair horizon (ms), $8 fair spacing (ms);
-- $9 .. $12 leasing at publish (below)
WITH batch AS (
    SELECT *
    FROM unnest($2::uuid[], $3::text[], $4::bool[]) WITH ORDINALITY
      AS t(event_id, event_type, explicit, position)
),
pairs AS (
    SELECT * FROM unnest($5::uuid[], $6::uuid[]) AS p(event_id, endpoint_id)
),
targets AS (
    SELECT b.event_id, b.position, ep.id AS endpoint_id
    FROM batch b
    JOIN endpoints ep ON ep.app_id = $1 AND ep.enabled
    WHERE NOT b.explicit AND (ep.event_types IS NULL OR b.event_type = ANY (ep.event_types))
    UNION
    SELECT p.event_id, b.position, ep.id
    FROM pairs p
    JOIN batch b ON b.event_id = p.event_id
    JOIN endpoints ep ON ep.id = p.endpoint_id AND ep.app_id = $1 AND ep.enabled
),
lanes AS (
    SELECT ep.id AS endpoint_id, ep.rate_limit_per_s,
           greatest(now(), ep.rate_tat) AS first_slot,
           least(CASE WHEN ep.ordered THEN 1 END, ep.max_in_flight, ep.rate_limit_per_s) - (
               -- Active: in flight, or pending with a due time (parked ones have none).
               SELECT count(*) FROM delivery_queue o
               WHERE o.endpoint_id = ep.id AND o.ordinal IS NOT NULL
                 AND o.state IN ('pending', 'in_flight')
                 AND (o.state = 'in_flight' OR o.due_at IS NOT NULL)) AS room
    FROM endpoints ep
    WHERE ep.id IN (SELECT endpoint_id FROM targets)
      AND (ep.ordered OR ep.max_in_flight IS NOT NULL OR ep.rate_limit_per_s IS NOT NULL)
),
fair_start AS (
    SELECT greatest(now(), least(
               coalesce((SELECT q.fair_key FROM delivery_queue q
                         WHERE q.app_id = $1 AND q.state = 'pending'
                         ORDER BY q.delivery_id DESC
                         LIMIT 1), now()),
               now() + $7::bigint * interval '1 millisecond')) AS at
),
numbered AS (
    SELECT t.*, l.rate_limit_per_s, l.first_slot, l.room, l.endpoint_id IS NOT NULL AS laned,
           row_number() OVER (PARTITION BY t.endpoint_id ORDER BY t.position) AS lane_rank,
           row_number() OVER (ORDER BY t.position, t.endpoint_id) AS fair_rank
    FROM targets t
    LEFT JOIN lanes l ON l.endpoint_id = t.endpoint_id
),
-- Ordinals are drawn in batch order: a subquery's order is the order nextval() runs in.
ordinals AS (
    SELECT s.event_id, s.endpoint_id, nextval('delivery_ordinals') AS ordinal
    FROM (SELECT event_id, endpoint_id FROM numbered WHERE laned
          ORDER BY endpoint_id, lane_rank) s
),
admitted AS (
    SELECT n.*, o.ordinal,
           CASE WHEN NOT n.laned THEN now()
                WHEN n.lane_rank > n.room THEN NULL
                WHEN n.rate_limit_per_s IS NULL THEN now()
                ELSE n.first_slot + (n.lane_rank - 1) * interval '1 second' / n.rate_limit_per_s
           END AS due_at
    FROM numbered n
    LEFT JOIN ordinals o ON o.event_id = n.event_id AND o.endpoint_id = n.endpoint_id
),
slotted AS (
    UPDATE endpoints ep
    SET rate_tat = x.last_slot + interval '1 second' / ep.rate_limit_per_s
    FROM (SELECT endpoint_id, max(due_at) AS last_slot FROM admitted
          WHERE laned AND due_at IS NOT NULL GROUP BY endpoint_id) x
    WHERE ep.id = x.endpoint_id AND ep.rate_limit_per_s IS NOT NULL
),
-- Leased at publish (engine/src/handoff.rs): when a worker in this process has idle slots ($9
-- its id, $10 how many), the first deliveries, in batch order, are leased to it here, as the
-- claim would lease them: not those in a lane (their turn is the lane's to give) nor those of
-- an endpoint whose circuit is not closed (the claim decides those), and never more than the
-- slots. The lease runs for the endpoint's timeout ($11 when it has none) plus the margin ($12).
handed AS (
    SELECT h.event_id, h.endpoint_id,
           now() + (coalesce(ep.timeout_ms, $11) + $12) * interval '1 millisecond'
               AS lease_expires_at
    FROM (SELECT a.event_id, a.endpoint_id,
                 row_number() OVER (ORDER BY a.fair_rank) AS rank
          FROM admitted a
          WHERE $9::text IS NOT NULL AND NOT a.laned
            AND NOT EXISTS (SELECT 1 FROM endpoint_circuits c
                            WHERE c.endpoint_id = a.endpoint_id AND c.state <> 'closed')) h
    JOIN endpoints ep ON ep.id = h.endpoint_id
    WHERE h.rank <= $10
),
-- Ids are drawn once, here: both tables take the same rows.
fresh AS MATERIALIZED (
    SELECT hookd_uuid_v7() AS id, a.event_id, a.endpoint_id, a.due_at, a.ordinal,
           h.lease_expires_at,
           least(f.at + a.fair_rank * $8::float8 * interval '1 millisecond',
                 now() + $7::bigint * interval '1 millisecond') AS fair_key
    FROM admitted a
    CROSS JOIN fair_start f
    LEFT JOIN handed h ON h.event_id = a.event_id AND h.endpoint_id = a.endpoint_id
),
-- What both tables hold of each: pending and due (or parked), or leased.
fresh_state AS (
    SELECT id, event_id, endpoint_id, ordinal, fair_key,
           CASE WHEN lease_expires_at IS NULL THEN 'pending' ELSE 'in_flight' END::delivery_state
               AS state,
           CASE WHEN lease_expires_at IS NULL THEN 0 ELSE 1 END AS attempts,
           coalesce(lease_expires_at, due_at) AS due_at,
           CASE WHEN lease_expires_at IS NOT NULL THEN $9::text END AS lease_owner
    FROM fresh
),
queued AS (
    INSERT INTO delivery_queue (delivery_id, app_id, endpoint_id, state, attempts, due_at,
                                lease_owner, fair_key, ordinal)
    SELECT id, $1, endpoint_id, state, attempts, due_at, lease_owner, fair_key, ordinal
    FROM fresh_state
),
created AS (
    INSERT INTO deliveries (id, app_id, event_id, endpoint_id, state, attempts, due_at,
                            lease_owner, ordinal)
    SELECT id, $1, event_id, endpoint_id, state, attempts, due_at, lease_owner, ordinal
    FROM fresh_state
    RETURNING id, event_id, endpoint_id, state, attempts
),
-- A leased delivery's `created` row says it was due now, its `claimed` row follows it; the
-- doorbell does not ring for created rows that are claimed in the same statement.
logged AS (
    INSERT INTO delivery_log (delivery_id, kind, attempt, worker_id, next_attempt_at,
                              lease_expires_at)
    SELECT id, kind, attempt, worker_id, next_attempt_at, lease_expires_at
    FROM (SELECT id, 'created'::delivery_log_kind AS kind, 0 AS attempt, NULL::text AS worker_id,
                 due_at AS next_attempt_at, NULL::timestamptz AS lease_expires_at
          FROM fresh
          UNION ALL
          SELECT id, 'claimed', 1, $9::text, NULL, lease_expires_at
          FROM fresh
          WHERE lease_expires_at IS NOT NULL) e
    ORDER BY id, kind
)
-- Every delivery; a leased one with what it takes to send it (as claim_due.sql returns it).
SELECT c.id, c.event_id, c.endpoint_id, c.state = 'in_flight' AS leased, c.attempts,
       0 AS budget_start, ep.url, ep.secret, ep.enabled,
       CASE WHEN ep.previous_secret_expires_at > now() THEN ep.previous_secret END
           AS previous_secret, ep.max_attempts, ep.retry_base_ms, ep.retry_cap_ms,
       ep.timeout_ms, ep.headers, ev.event_type, ev.payload::text AS payload,
       ev.created_at AS event_created_at, false AS laned
FROM created c
LEFT JOIN endpoints ep ON c.state = 'in_flight' AND ep.id = c.endpoint_id
LEFT JOIN events ev ON c.state = 'in_flight' AND ev.id = c.event_id
ORDER BY c.id
