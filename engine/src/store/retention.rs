//! Retention's statements: removing expired history a page at a time, and expiring idempotency
//! records. Deletes of deliveries and log rows pass the database's guard only inside a
//! transaction that declared its cutoff (`0006_retention.sql`).

use std::time::Duration;

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{Store, StoreError, millis};

/// Ages past which history is removed.
#[derive(Debug, Clone, Copy)]
pub struct Cutoffs {
    /// Events whose deliveries all succeeded or were cancelled.
    pub delivered: Duration,
    /// Events with dead-lettered deliveries; never shorter than `delivered`.
    pub dead: Duration,
}

/// What one page removed, and where the next page starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageRemoved {
    /// The last event the page looked at; `None` once no event older than the cutoff is left.
    pub last_event_id: Option<Uuid>,
    pub events: u64,
    pub deliveries: u64,
    pub log_rows: u64,
}

/// Key of the advisory lock that lets one node at a time sweep.
const RETENTION_LOCK: i64 = 0x686f_6f6b_6472_6574; // "hookdret"

/// Takes the sweeper's lock for this transaction; false when another node holds it.
async fn retention_lock_try(client: &impl GenericClient) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached("SELECT pg_try_advisory_xact_lock($1)")
        .await?;
    Ok(client
        .query_one(&stmt, &[&RETENTION_LOCK])
        .await?
        .try_get(0)?)
}

/// Declares the cutoff the database's delete guards check, for this transaction only.
async fn retention_cutoff_declare(
    client: &impl GenericClient,
    delivered_age_ms: i64,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT set_config('hookd.retention_cutoff',
                               (now() - $1::bigint * interval '1 millisecond')::text, true)",
        )
        .await?;
    client.query_one(&stmt, &[&delivered_age_ms]).await?;
    Ok(())
}

/// Removes one page of expired events with their deliveries and log rows (see
/// `retention_remove_page.sql`).
async fn retention_page_remove(
    client: &impl GenericClient,
    delivered_age_ms: i64,
    dead_age_ms: i64,
    after: Uuid,
    page_size: i64,
) -> Result<PageRemoved, StoreError> {
    let stmt = client
        .prepare_cached(include_str!("retention_remove_page.sql"))
        .await?;
    let row = client
        .query_one(
            &stmt,
            &[&delivered_age_ms, &dead_age_ms, &after, &page_size],
        )
        .await?;
    let count = |column: &str| -> Result<u64, StoreError> {
        Ok(u64::try_from(row.try_get::<_, i64>(column)?).unwrap_or(0))
    };
    Ok(PageRemoved {
        last_event_id: row.try_get("last_event_id")?,
        events: count("events")?,
        deliveries: count("deliveries")?,
        log_rows: count("log_rows")?,
    })
}

/// Removes the page of expired history after event `after` in its own transaction; `None` when
/// another node is sweeping.
pub async fn retention_remove_page(
    store: &Store,
    cutoffs: Cutoffs,
    after: Uuid,
    page_size: i64,
) -> Result<Option<PageRemoved>, StoreError> {
    let delivered_ms = millis(cutoffs.delivered);
    let dead_ms = millis(cutoffs.dead.max(cutoffs.delivered));
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    if !retention_lock_try(&tx).await? {
        return Ok(None);
    }
    retention_cutoff_declare(&tx, delivered_ms).await?;
    let removed = retention_page_remove(&tx, delivered_ms, dead_ms, after, page_size).await?;
    tx.commit().await?;
    Ok(Some(removed))
}

/// Deletes up to `limit` idempotency records older than `age`; returns how many.
pub async fn idempotency_keys_expire(
    store: &Store,
    age: Duration,
    limit: i64,
) -> Result<u64, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "DELETE FROM idempotency_keys
             WHERE (app_id, key) IN (
                 SELECT app_id, key FROM idempotency_keys
                 WHERE created_at < now() - $1::bigint * interval '1 millisecond'
                 ORDER BY created_at
                 LIMIT $2)",
        )
        .await?;
    Ok(client.execute(&stmt, &[&millis(age), &limit]).await?)
}
