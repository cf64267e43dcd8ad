//! Ordered delivery's lanes: an ordered endpoint's live deliveries, of which at most one is
//! active (due or in flight) while the rest wait parked in publish order. Fan-out
//! (`create_deliveries.sql`) parks what joins a busy lane; this module moves a lane on when its
//! active delivery ends. Each step locks the endpoints' rows first, in a statement of its own,
//! so that the next statement's snapshot sees every committed delivery of those lanes.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::StoreError;

/// Locks ordered endpoints' rows, in id order; returns the ids of those that are ordered.
pub(crate) async fn endpoints_lock_ordered(
    client: &impl GenericClient,
    endpoint_ids: &[Uuid],
) -> Result<Vec<Uuid>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT id FROM endpoints WHERE id = ANY ($1) AND ordered
             ORDER BY id FOR NO KEY UPDATE",
        )
        .await?;
    let rows = client.query(&stmt, &[&endpoint_ids]).await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// For each locked ordered endpoint whose lane has no active delivery, makes the oldest parked
/// one due now (`resumed`, error class `ordered_next`); returns how many.
async fn deliveries_promote_next(
    client: &impl GenericClient,
    endpoint_ids: &[Uuid],
) -> Result<u64, StoreError> {
    let stmt = client
        .prepare_cached(
            "WITH next AS (
                 SELECT n.id
                 FROM unnest($1::uuid[]) AS lane(endpoint_id)
                 CROSS JOIN LATERAL (
                     SELECT d.id FROM deliveries d
                     WHERE d.endpoint_id = lane.endpoint_id AND d.ordinal IS NOT NULL
                       AND d.state IN ('pending', 'in_flight')
                     ORDER BY d.ordinal
                     LIMIT 1
                 ) n
                 WHERE NOT EXISTS (
                     SELECT 1 FROM deliveries a
                     WHERE a.endpoint_id = lane.endpoint_id AND a.ordinal IS NOT NULL
                       AND (a.state = 'in_flight' OR (a.state = 'pending' AND a.due_at IS NOT NULL)))
             ),
             resumed AS (
                 UPDATE deliveries d
                 SET due_at = now(), updated_at = now()
                 FROM next
                 WHERE d.id = next.id AND d.state = 'pending' AND d.due_at IS NULL
                 RETURNING d.id, d.attempts, d.due_at
             )
             INSERT INTO delivery_log (delivery_id, kind, attempt, error_class, next_attempt_at)
             SELECT id, 'resumed', attempts, 'ordered_next', due_at FROM resumed",
        )
        .await?;
    Ok(client.execute(&stmt, &[&endpoint_ids]).await?)
}

/// Moves the lanes of these endpoints on, where their active delivery has ended; endpoints that
/// are not ordered are ignored. Call inside the transaction that ended the deliveries.
pub(crate) async fn lanes_advance(
    client: &impl GenericClient,
    endpoint_ids: &[Uuid],
) -> Result<u64, StoreError> {
    let mut ids = endpoint_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let ordered = endpoints_lock_ordered(client, &ids).await?;
    if ordered.is_empty() {
        return Ok(0);
    }
    deliveries_promote_next(client, &ordered).await
}
