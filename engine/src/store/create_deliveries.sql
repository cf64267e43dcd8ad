-- Fan an event out: one pending delivery, due now, for each enabled endpoint of the app whose
-- event-type filter matches, each with its `created` log row. The log insert rings the workers.
-- $1 app id, $2 event id, $3 event type
WITH targets AS (
    SELECT ep.id AS endpoint_id
    FROM endpoints ep
    WHERE ep.app_id = $1
      AND ep.enabled
      AND (ep.event_types IS NULL OR $3 = ANY (ep.event_types))
),
created AS (
    INSERT INTO deliveries (id, app_id, event_id, endpoint_id, state, attempts, due_at)
    SELECT hookd_uuid_v7(), $1, $2, t.endpoint_id, 'pending', 0, now()
    FROM targets t
    RETURNING id, endpoint_id, due_at
),
logged AS (
    INSERT INTO delivery_log (delivery_id, kind, attempt, next_attempt_at)
    SELECT id, 'created', 0, due_at FROM created ORDER BY id
)
SELECT id, endpoint_id FROM created ORDER BY id
