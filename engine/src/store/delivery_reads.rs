//! Reading deliveries: one, a filtered page, an event's, a history, an endpoint's figures.
//! Every read is served by an index (see `migrations/0003_queries.sql` and
//! `0011_delivery_queue.sql`).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{Store, StoreError, parse_text, snapshot_read};
use crate::delivery::{Delivery, DeliveryState, LogEntry};
use crate::ids::{AppId, DeliveryId, EndpointId, EventId};

/// Which deliveries a list returns; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub state: Option<DeliveryState>,
    pub endpoint_id: Option<EndpointId>,
    pub event_id: Option<EventId>,
    /// Created at or after.
    pub after: Option<DateTime<Utc>>,
    /// Created before.
    pub before: Option<DateTime<Utc>>,
}

/// The columns every delivery read returns, in [`delivery_from_row`]'s terms.
macro_rules! delivery_columns {
    () => {
        "id, event_id, endpoint_id, state::text AS state, attempts,
         CASE WHEN state = 'pending' THEN due_at END AS next_attempt_at,
         last_http_status, last_error, created_at, updated_at"
    };
}

pub(crate) fn delivery_from_row(r: &tokio_postgres::Row) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: DeliveryId(r.try_get("id")?),
        event_id: EventId(r.try_get("event_id")?),
        endpoint_id: EndpointId(r.try_get("endpoint_id")?),
        state: parse_text(r, "state")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_http_status: r.try_get("last_http_status")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// One delivery of an app, as the projection holds it.
pub async fn delivery_get(
    store: &Store,
    app_id: AppId,
    id: DeliveryId,
) -> Result<Option<Delivery>, StoreError> {
    let client = store.client().await?;
    delivery_get_with(&client, app_id, id).await
}

pub(crate) async fn delivery_get_with(
    client: &impl GenericClient,
    app_id: AppId,
    id: DeliveryId,
) -> Result<Option<Delivery>, StoreError> {
    let stmt = client
        .prepare_cached(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE id = $1 AND app_id = $2"
        ))
        .await?;
    client
        .query_opt(&stmt, &[&id.0, &app_id.0])
        .await?
        .as_ref()
        .map(delivery_from_row)
        .transpose()
}

/// An app's deliveries, newest first, after the cursor, narrowed by the filter.
pub async fn deliveries_list(
    store: &Store,
    app_id: AppId,
    filter: &DeliveryFilter,
    before_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Delivery>, StoreError> {
    let client = store.client().await?;
    match filter.state {
        // Every state but delivered is in the queue table, with an index by app and state.
        Some(state) if state != DeliveryState::Succeeded => {
            deliveries_page_in_queue_state(&client, app_id, state, filter, before_id, limit).await
        }
        _ => deliveries_page(&client, app_id, filter, before_id, limit).await,
    }
}

/// A page of an app's deliveries by id, filtered as it goes (no state, or delivered: most
/// deliveries are, so the filter passes over few).
async fn deliveries_page(
    client: &impl GenericClient,
    app_id: AppId,
    filter: &DeliveryFilter,
    before_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Delivery>, StoreError> {
    let stmt = client
        .prepare_cached(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries
              WHERE app_id = $1
                AND ($2::text IS NULL OR state = $2::text::delivery_state)
                AND ($3::uuid IS NULL OR endpoint_id = $3)
                AND ($4::uuid IS NULL OR event_id = $4)
                AND ($5::timestamptz IS NULL OR id >= hookd_uuid_v7_floor($5))
                AND ($6::timestamptz IS NULL OR id < hookd_uuid_v7_floor($6))
                AND ($7::uuid IS NULL OR id < $7)
              ORDER BY id DESC LIMIT $8"
        ))
        .await?;
    let rows = client
        .query(
            &stmt,
            &[
                &app_id.0,
                &filter.state.map(DeliveryState::as_str),
                &filter.endpoint_id.map(|id| id.0),
                &filter.event_id.map(|id| id.0),
                &filter.after,
                &filter.before,
                &before_id,
                &limit,
            ],
        )
        .await?;
    rows.iter().map(delivery_from_row).collect()
}

/// A page of an app's deliveries in a state other than delivered, found through the queue
/// table's index by app and state.
async fn deliveries_page_in_queue_state(
    client: &impl GenericClient,
    app_id: AppId,
    state: DeliveryState,
    filter: &DeliveryFilter,
    before_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Delivery>, StoreError> {
    let stmt = client
        .prepare_cached(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM (SELECT d.*
                    FROM delivery_queue q
                    JOIN deliveries d ON d.id = q.delivery_id
                    WHERE q.app_id = $1 AND q.state = $2::text::delivery_state
                      AND ($3::uuid IS NULL OR q.endpoint_id = $3)
                      AND ($4::uuid IS NULL OR d.event_id = $4)
                      AND ($5::timestamptz IS NULL OR q.delivery_id >= hookd_uuid_v7_floor($5))
                      AND ($6::timestamptz IS NULL OR q.delivery_id < hookd_uuid_v7_floor($6))
                      AND ($7::uuid IS NULL OR q.delivery_id < $7)
                    ORDER BY q.delivery_id DESC LIMIT $8) deliveries
              ORDER BY id DESC"
        ))
        .await?;
    let rows = client
        .query(
            &stmt,
            &[
                &app_id.0,
                &state.as_str(),
                &filter.endpoint_id.map(|id| id.0),
                &filter.event_id.map(|id| id.0),
                &filter.after,
                &filter.before,
                &before_id,
                &limit,
            ],
        )
        .await?;
    rows.iter().map(delivery_from_row).collect()
}

/// A delivery's log, oldest first; `None` when the app has no such delivery.
pub async fn delivery_history(
    store: &Store,
    app_id: AppId,
    id: DeliveryId,
) -> Result<Option<Vec<LogEntry>>, StoreError> {
    let client = store.client().await?;
    // The app check and the log read are one statement so that they see one snapshot.
    let stmt = client
        .prepare_cached(
            "SELECT l.seq, l.kind::text AS kind, l.at, l.attempt, l.worker_id, l.http_status,
                    l.latency_ms, l.error_class, l.error_message, l.response_excerpt,
                    l.next_attempt_at, l.lease_expires_at
             FROM deliveries d
             LEFT JOIN delivery_log l ON l.delivery_id = d.id
             WHERE d.id = $1 AND d.app_id = $2
             ORDER BY l.seq",
        )
        .await?;
    let rows = client.query(&stmt, &[&id.0, &app_id.0]).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut entries = Vec::with_capacity(rows.len());
    for r in &rows {
        if r.try_get::<_, Option<i64>>("seq")?.is_some() {
            entries.push(log_entry(r)?);
        }
    }
    Ok(Some(entries))
}

pub(crate) fn log_entry(r: &tokio_postgres::Row) -> Result<LogEntry, StoreError> {
    Ok(LogEntry {
        seq: r.try_get("seq")?,
        kind: parse_text(r, "kind")?,
        at: r.try_get("at")?,
        attempt: r.try_get("attempt")?,
        worker_id: r.try_get("worker_id")?,
        http_status: r.try_get("http_status")?,
        latency_ms: r.try_get("latency_ms")?,
        error_class: r.try_get("error_class")?,
        error_message: r.try_get("error_message")?,
        response_excerpt: r.try_get("response_excerpt")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        lease_expires_at: r.try_get("lease_expires_at")?,
    })
}

/// What an endpoint's deliveries did over a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointStats {
    /// Deliveries created in the window, by state.
    pub by_state: Vec<(DeliveryState, i64)>,
    /// Attempts made for those deliveries.
    pub attempts: i64,
    pub attempts_succeeded: i64,
    /// Attempt latency percentiles in ms (`None` without attempts).
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

/// Counts an endpoint's deliveries created since `since`, by state.
async fn endpoint_delivery_counts(
    client: &impl GenericClient,
    endpoint_id: EndpointId,
    since: DateTime<Utc>,
) -> Result<Vec<(DeliveryState, i64)>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT state::text AS state, count(*) AS n FROM deliveries
             WHERE endpoint_id = $1 AND id >= hookd_uuid_v7_floor($2)
             GROUP BY state ORDER BY state",
        )
        .await?;
    let rows = client.query(&stmt, &[&endpoint_id.0, &since]).await?;
    rows.iter()
        .map(|r| Ok((parse_text(r, "state")?, r.try_get("n")?)))
        .collect()
}

/// Attempt counts and latency percentiles of an endpoint's deliveries created since `since`.
async fn endpoint_attempt_figures(
    client: &impl GenericClient,
    endpoint_id: EndpointId,
    since: DateTime<Utc>,
) -> Result<tokio_postgres::Row, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT count(*) AS attempts,
                    count(*) FILTER (WHERE l.kind = 'attempt_succeeded') AS succeeded,
                    percentile_cont(0.50) WITHIN GROUP (ORDER BY l.latency_ms) AS p50,
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY l.latency_ms) AS p95,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY l.latency_ms) AS p99
             FROM deliveries d
             JOIN delivery_log l ON l.delivery_id = d.id
             WHERE d.endpoint_id = $1 AND d.id >= hookd_uuid_v7_floor($2)
               AND l.kind IN ('attempt_succeeded', 'attempt_failed')",
        )
        .await?;
    Ok(client.query_one(&stmt, &[&endpoint_id.0, &since]).await?)
}

/// An endpoint's figures over the deliveries created since `since`, from one snapshot.
pub async fn endpoint_stats(
    store: &Store,
    endpoint_id: EndpointId,
    since: DateTime<Utc>,
) -> Result<EndpointStats, StoreError> {
    let mut client = store.client().await?;
    let tx = snapshot_read(&mut client).await?;
    let by_state = endpoint_delivery_counts(&tx, endpoint_id, since).await?;
    let row = endpoint_attempt_figures(&tx, endpoint_id, since).await?;
    tx.commit().await?;
    Ok(EndpointStats {
        by_state,
        attempts: row.try_get("attempts")?,
        attempts_succeeded: row.try_get("succeeded")?,
        latency_p50_ms: row.try_get("p50")?,
        latency_p95_ms: row.try_get("p95")?,
        latency_p99_ms: row.try_get("p99")?,
    })
}

/// How many deliveries are in each state, over every app (for the metrics gauges).
pub async fn delivery_counts_by_state(store: &Store) -> Result<Vec<(String, i64)>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached("SELECT state::text, count(*) FROM deliveries GROUP BY state")
        .await?;
    client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// How long the longest-waiting due delivery has been due: pending past its time, or leased past
/// its lease (a worker died). Zero when nothing is due.
pub async fn delivery_oldest_due_age(store: &Store) -> Result<std::time::Duration, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "SELECT coalesce(extract(epoch FROM clock_timestamp() - least(
                 (SELECT min(due_at) FROM delivery_queue
                  WHERE state = 'pending' AND due_at IS NOT NULL AND due_at <= clock_timestamp()),
                 (SELECT min(due_at) FROM delivery_queue
                  WHERE state = 'in_flight' AND due_at <= clock_timestamp()))), 0)::float8",
        )
        .await?;
    let seconds: f64 = client.query_one(&stmt, &[]).await?.try_get(0)?;
    Ok(std::time::Duration::from_secs_f64(seconds.max(0.0)))
}
