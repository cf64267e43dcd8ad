-- Fan a batch of events out: one pending delivery, due now, per (event, endpoint) pair, each with
-- its `created` log row; the log insert rings the workers once for the whole batch.
-- An event either matches the app's enabled endpoints by type, or names its endpoints
-- explicitly (given as (event, endpoint) pairs; disabled ones are skipped).
-- $1 app id; $2 event ids, $3 event types, $4 whether the event names its endpoints;
-- $5, $6 the explicit (event id, endpoint id) pairs
WITH batch AS (
    SELECT * FROM unnest($2::uuid[], $3::text[], $4::bool[]) AS t(event_id, event_type, explicit)
),
pairs AS (
    SELECT * FROM unnest($5::uuid[], $6::uuid[]) AS p(event_id, endpoint_id)
),
targets AS (
    SELECT b.event_id, ep.id AS endpoint_id
    FROM batch b
    JOIN endpoints ep ON ep.app_id = $1 AND ep.enabled
    WHERE NOT b.explicit AND (ep.event_types IS NULL OR b.event_type = ANY (ep.event_types))
    UNION
    SELECT p.event_id, ep.id
    FROM pairs p
    JOIN endpoints ep ON ep.id = p.endpoint_id AND ep.app_id = $1 AND ep.enabled
),
created AS (
    INSERT INTO deliveries (id, app_id, event_id, endpoint_id, state, attempts, due_at)
    SELECT hookd_uuid_v7(), $1, t.event_id, t.endpoint_id, 'pending', 0, now()
    FROM targets t
    RETURNING id, event_id, endpoint_id, due_at
),
logged AS (
    INSERT INTO delivery_log (delivery_id, kind, attempt, next_attempt_at)
    SELECT id, 'created', 0, due_at FROM created ORDER BY id
)
SELECT id, event_id, endpoint_id FROM created ORDER BY id
