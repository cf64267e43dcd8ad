//! Lanes: the live deliveries of an endpoint that is ordered (room for one active delivery),
//! limited in flight (room for `max_in_flight`) or limited in rate (room for one second's worth,
//! `rate_limit_per_s`, each given its own send time 1/N s after the previous one). Active means
//! in flight or due (waiting for its time, its first attempt or a retry); the rest wait parked
//! (pending, no due time) in publish order.
//! Fan-out (`create_deliveries.sql`) parks what finds no room; this module moves a lane on when
//! active deliveries end or its room grows. Each step locks the endpoints' rows first, in a
//! statement of its own, so that the next statement's snapshot sees every committed delivery of
//! those lanes.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::StoreError;

/// Locks the rows of those endpoints that have a lane, in id order; returns their ids.
pub(crate) async fn endpoints_lock_laned(
    client: &impl GenericClient,
    endpoint_ids: &[Uuid],
) -> Result<Vec<Uuid>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT id FROM endpoints
             WHERE id = ANY ($1)
               AND (ordered OR max_in_flight IS NOT NULL OR rate_limit_per_s IS NOT NULL)
             ORDER BY id FOR NO KEY UPDATE",
        )
        .await?;
    let rows = client.query(&stmt, &[&endpoint_ids]).await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// For each locked lane, resumes as many of the oldest parked deliveries as it has room for
/// (`resumed`, error class `lane_next`), due now or, under a rate limit, at the next free send
/// times; returns how many.
async fn deliveries_promote_next(
    client: &impl GenericClient,
    endpoint_ids: &[Uuid],
) -> Result<u64, StoreError> {
    let stmt = client
        .prepare_cached(
            "WITH lanes AS (
                 SELECT ep.id AS endpoint_id, ep.rate_limit_per_s,
                        greatest(now(), ep.rate_tat) AS first_slot,
                        greatest(least(CASE WHEN ep.ordered THEN 1 END, ep.max_in_flight,
                                       ep.rate_limit_per_s) - (
                            SELECT count(*) FROM delivery_queue a
                            WHERE a.endpoint_id = ep.id AND a.ordinal IS NOT NULL
                              AND a.state IN ('pending', 'in_flight')
                              AND (a.state = 'in_flight' OR a.due_at IS NOT NULL)), 0) AS room
                 FROM endpoints ep
                 WHERE ep.id = ANY ($1)
             ),
             next AS (
                 SELECT n.id, lanes.endpoint_id,
                        CASE WHEN lanes.rate_limit_per_s IS NULL THEN now()
                             ELSE lanes.first_slot + (n.rank - 1) * interval '1 second'
                                                     / lanes.rate_limit_per_s END AS due_at
                 FROM lanes
                 CROSS JOIN LATERAL (
                     SELECT q.delivery_id AS id, row_number() OVER (ORDER BY q.ordinal) AS rank
                     FROM delivery_queue q
                     WHERE q.endpoint_id = lanes.endpoint_id AND q.ordinal IS NOT NULL
                       AND q.state = 'pending' AND q.due_at IS NULL
                     ORDER BY q.ordinal
                     LIMIT lanes.room
                 ) n
             ),
             slotted AS (
                 UPDATE endpoints ep
                 SET rate_tat = x.last_slot + interval '1 second' / ep.rate_limit_per_s
                 FROM (SELECT endpoint_id, max(due_at) AS last_slot FROM next GROUP BY endpoint_id) x
                 WHERE ep.id = x.endpoint_id AND ep.rate_limit_per_s IS NOT NULL
             ),
             queued AS (
                 UPDATE delivery_queue q
                 SET due_at = next.due_at
                 FROM next
                 WHERE q.delivery_id = next.id AND q.state = 'pending' AND q.due_at IS NULL
                 RETURNING q.delivery_id, q.due_at
             ),
             resumed AS (
                 UPDATE deliveries d
                 SET due_at = q.due_at, updated_at = now()
                 FROM queued q
                 WHERE d.id = q.delivery_id
                 RETURNING d.id, d.attempts, d.due_at
             )
             INSERT INTO delivery_log (delivery_id, kind, attempt, error_class, next_attempt_at)
             SELECT id, 'resumed', attempts, 'lane_next', due_at FROM resumed ORDER BY id",
        )
        .await?;
    Ok(client.execute(&stmt, &[&endpoint_ids]).await?)
}

/// Moves the lanes of these endpoints on, as far as they have room; endpoints without a lane
/// are ignored. Call inside the transaction that ended the deliveries or changed the room.
pub(crate) async fn lanes_advance(
    client: &impl GenericClient,
    endpoint_ids: &[Uuid],
) -> Result<u64, StoreError> {
    let mut ids = endpoint_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let laned = endpoints_lock_laned(client, &ids).await?;
    if laned.is_empty() {
        return Ok(0);
    }
    deliveries_promote_next(client, &laned).await
}
