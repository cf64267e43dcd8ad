-- Fan a batch of events out: one pending delivery, due now, per (event, endpoint) pair, each with
-- its `created` log row; the log insert rings the workers once for the whole batch.
-- An event either matches the app's enabled endpoints by type, or names its endpoints
-- explicitly (given as (event, endpoint) pairs; disabled ones are skipped).
-- For an ordered endpoint (whose row the caller has locked, so that this statement sees every
-- committed delivery of it) a delivery takes the next ordinal, in batch order, and is created
-- parked (no due time) unless the lane is empty and it is the first of the batch.
-- $1 app id; $2 event ids, $3 event types, $4 whether the event names its endpoints;
-- $5, $6 the explicit (event id, endpoint id) pairs
WITH batch AS (
    SELECT *
    FROM unnest($2::uuid[], $3::text[], $4::bool[]) WITH ORDINALITY
      AS t(event_id, event_type, explicit, position)
),
pairs AS (
    SELECT * FROM unnest($5::uuid[], $6::uuid[]) AS p(event_id, endpoint_id)
),
targets AS (
    SELECT b.event_id, b.position, ep.id AS endpoint_id, ep.ordered
    FROM batch b
    JOIN endpoints ep ON ep.app_id = $1 AND ep.enabled
    WHERE NOT b.explicit AND (ep.event_types IS NULL OR b.event_type = ANY (ep.event_types))
    UNION
    SELECT p.event_id, b.position, ep.id, ep.ordered
    FROM pairs p
    JOIN batch b ON b.event_id = p.event_id
    JOIN endpoints ep ON ep.id = p.endpoint_id AND ep.app_id = $1 AND ep.enabled
),
-- Ordinals are drawn in batch order: the subquery's order is the order nextval() runs in.
numbered AS (
    SELECT t.*,
           CASE WHEN t.ordered THEN nextval('delivery_ordinals') END AS ordinal,
           CASE WHEN t.ordered THEN row_number() OVER (PARTITION BY t.endpoint_id
                                                       ORDER BY t.position) END AS lane_rank
    FROM (SELECT * FROM targets ORDER BY position, endpoint_id) t
),
created AS (
    INSERT INTO deliveries (id, app_id, event_id, endpoint_id, state, attempts, due_at, ordinal)
    SELECT hookd_uuid_v7(), $1, n.event_id, n.endpoint_id, 'pending', 0,
           CASE WHEN NOT n.ordered THEN now()
                WHEN n.lane_rank = 1 AND NOT EXISTS (
                         SELECT 1 FROM deliveries o
                         WHERE o.endpoint_id = n.endpoint_id AND o.ordinal IS NOT NULL
                           AND o.state IN ('pending', 'in_flight'))
                    THEN now()
           END,
           n.ordinal
    FROM numbered n
    RETURNING id, event_id, endpoint_id, due_at
),
logged AS (
    INSERT INTO delivery_log (delivery_id, kind, attempt, next_attempt_at)
    SELECT id, 'created', 0, due_at FROM created ORDER BY id
)
SELECT id, event_id, endpoint_id FROM created ORDER BY id
