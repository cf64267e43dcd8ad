-- Remove one page of expired history: of the next `$4` events after `$3` (by id, so oldest
-- first) created before the delivered cutoff, those whose every delivery is final and past its
-- cutoff (delivered or cancelled: `$1` ms ago; dead-lettered: `$2` ms ago) go, with their
-- deliveries and log rows.
--
-- Race-safe without locks held beyond the statement: a delivery redriven after this statement's
-- snapshot is re-checked by the DELETE on its newest version and survives; its event then has a
-- delivery left and stays (the counts below differ), to be removed by a later sweep.
-- Returns the page's last event id (where the next page starts; NULL when the walk is over) and
-- what was removed.
WITH page AS (
    SELECT e.id
    FROM events e
    WHERE e.id > $3::uuid AND e.id < hookd_uuid_v7_floor(now() - $1::bigint * interval '1 millisecond')
    ORDER BY e.id
    LIMIT $4::bigint
),
expired AS (
    SELECT p.id
    FROM page p
    WHERE NOT EXISTS (
        SELECT 1 FROM deliveries d
        WHERE d.event_id = p.id
          AND NOT ((d.state IN ('succeeded', 'cancelled')
                    AND d.updated_at < now() - $1::bigint * interval '1 millisecond')
                   OR (d.state = 'dead'
                       AND d.updated_at < now() - $2::bigint * interval '1 millisecond'))
    )
),
known AS (
    SELECT d.event_id, count(*) AS n
    FROM deliveries d JOIN expired x ON x.id = d.event_id
    GROUP BY d.event_id
),
-- Dead-lettered and cancelled deliveries have queue rows: those go first (the lock order).
removed_queue AS (
    DELETE FROM delivery_queue q
    USING deliveries d, expired x
    WHERE q.delivery_id = d.id AND d.event_id = x.id
      AND ((q.state = 'cancelled' AND d.updated_at < now() - $1::bigint * interval '1 millisecond')
           OR (q.state = 'dead' AND d.updated_at < now() - $2::bigint * interval '1 millisecond'))
    RETURNING q.delivery_id
),
removed_deliveries AS (
    DELETE FROM deliveries d
    USING expired x
    WHERE d.event_id = x.id
      AND ((d.state = 'succeeded' AND d.updated_at < now() - $1::bigint * interval '1 millisecond')
           OR d.id IN (SELECT delivery_id FROM removed_queue))
    RETURNING d.id, d.event_id
),
removed_log AS (
    DELETE FROM delivery_log l
    USING removed_deliveries r
    WHERE l.delivery_id = r.id
    RETURNING 1
),
removed_per_event AS (
    SELECT event_id, count(*) AS n FROM removed_deliveries GROUP BY event_id
),
removed_events AS (
    DELETE FROM events e
    USING expired x
    LEFT JOIN known k ON k.event_id = x.id
    LEFT JOIN removed_per_event r ON r.event_id = x.id
    WHERE e.id = x.id AND coalesce(k.n, 0) = coalesce(r.n, 0)
    RETURNING 1
)
SELECT (SELECT id FROM page ORDER BY id DESC LIMIT 1) AS last_event_id,
       (SELECT count(*) FROM removed_events) AS events,
       (SELECT count(*) FROM removed_deliveries) AS deliveries,
       (SELECT count(*) FROM removed_log) AS log_rows
