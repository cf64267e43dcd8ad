//! Live figures for the dashboard: what happened over the last few seconds (from the log and the
//! events), how deep the queue is, and the newest deliveries, for one app or for all of them.
//! Each read is bounded by an index: the log is walked back from its end only as far as the
//! window reaches, the queue counts use the partial indexes of the live and dead states.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::delivery_reads::delivery_from_row;
use super::{Store, StoreError, millis, snapshot_read};
use crate::delivery::Delivery;
use crate::ids::AppId;

/// Whose figures: one app's, or every app's (the admin's view).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    App(AppId),
    All,
}

impl Scope {
    fn app(self) -> Option<Uuid> {
        match self {
            Self::App(app) => Some(app.0),
            Self::All => None,
        }
    }
}

/// Deliveries waiting or running, and dead letters, right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Pending with a due time: waiting for their turn or their retry.
    pub pending: i64,
    /// Pending without one: behind an open circuit or in an endpoint's lane.
    pub parked: i64,
    pub in_flight: i64,
    pub dead: i64,
}

/// What the log recorded over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Activity {
    pub events_published: i64,
    pub attempts_succeeded: i64,
    pub attempts_failed: i64,
    pub retries_scheduled: i64,
    pub dead_lettered: i64,
    /// Attempt latency percentiles in ms (`None` without attempts).
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

/// One consistent reading of the figures.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub activity: Activity,
    pub queue: QueueDepth,
    /// The newest deliveries with their app, newest first.
    pub recent: Vec<(AppId, Delivery)>,
}

/// Log entries of the scope within the window: attempts by outcome, retries, dead letters and
/// attempt latency. The first step finds where the window starts by walking the log back from
/// its end, so the cost is the window's rows, not the log's.
async fn log_activity_within(
    client: &impl GenericClient,
    scope: Scope,
    window: Duration,
) -> Result<tokio_postgres::Row, StoreError> {
    let stmt = client
        .prepare_cached(
            "WITH start AS (
                 SELECT coalesce((SELECT seq FROM delivery_log
                                  WHERE at < now() - $2::bigint * interval '1 millisecond'
                                  ORDER BY seq DESC LIMIT 1), 0) AS seq
             )
             SELECT count(*) FILTER (WHERE l.kind = 'attempt_succeeded') AS succeeded,
                    count(*) FILTER (WHERE l.kind = 'attempt_failed') AS failed,
                    count(*) FILTER (WHERE l.kind = 'retry_scheduled') AS retries,
                    count(*) FILTER (WHERE l.kind = 'dead_lettered') AS dead_lettered,
                    percentile_cont(0.50) WITHIN GROUP (ORDER BY l.latency_ms)
                        FILTER (WHERE l.latency_ms IS NOT NULL) AS p50,
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY l.latency_ms)
                        FILTER (WHERE l.latency_ms IS NOT NULL) AS p95,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY l.latency_ms)
                        FILTER (WHERE l.latency_ms IS NOT NULL) AS p99
             FROM delivery_log l
             WHERE l.seq > (SELECT seq FROM start)
               AND l.at >= now() - $2::bigint * interval '1 millisecond'
               AND l.kind IN ('attempt_succeeded', 'attempt_failed', 'retry_scheduled',
                              'dead_lettered')
               AND ($1::uuid IS NULL
                    OR EXISTS (SELECT 1 FROM deliveries d
                               WHERE d.id = l.delivery_id AND d.app_id = $1))",
        )
        .await?;
    Ok(client
        .query_one(&stmt, &[&scope.app(), &millis(window)])
        .await?)
}

/// Events of the scope published within the window (event ids are time-ordered).
async fn events_published_within(
    client: &impl GenericClient,
    scope: Scope,
    window: Duration,
) -> Result<i64, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT count(*) FROM events
             WHERE id >= hookd_uuid_v7_floor(now() - $2::bigint * interval '1 millisecond')
               AND ($1::uuid IS NULL OR app_id = $1)",
        )
        .await?;
    Ok(client
        .query_one(&stmt, &[&scope.app(), &millis(window)])
        .await?
        .try_get(0)?)
}

/// How many of the scope's deliveries are pending, parked, in flight and dead.
async fn deliveries_count_live_and_dead(
    client: &impl GenericClient,
    scope: Scope,
) -> Result<QueueDepth, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT
                 (SELECT count(*) FROM delivery_queue
                  WHERE state = 'pending' AND due_at IS NOT NULL
                    AND ($1::uuid IS NULL OR app_id = $1)) AS pending,
                 (SELECT count(*) FROM delivery_queue
                  WHERE state = 'pending' AND due_at IS NULL
                    AND ($1::uuid IS NULL OR app_id = $1)) AS parked,
                 (SELECT count(*) FROM delivery_queue
                  WHERE state = 'in_flight' AND ($1::uuid IS NULL OR app_id = $1)) AS in_flight,
                 (SELECT count(*) FROM delivery_queue
                  WHERE state = 'dead' AND ($1::uuid IS NULL OR app_id = $1)) AS dead",
        )
        .await?;
    let row = client.query_one(&stmt, &[&scope.app()]).await?;
    Ok(QueueDepth {
        pending: row.try_get("pending")?,
        parked: row.try_get("parked")?,
        in_flight: row.try_get("in_flight")?,
        dead: row.try_get("dead")?,
    })
}

/// The scope's newest deliveries, newest first, with their app.
async fn deliveries_newest(
    client: &impl GenericClient,
    scope: Scope,
    limit: i64,
) -> Result<Vec<(AppId, Delivery)>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT app_id, id, event_id, endpoint_id, state::text AS state, attempts,
                    CASE WHEN state = 'pending' THEN due_at END AS next_attempt_at,
                    last_http_status, last_error, created_at, updated_at
             FROM deliveries
             WHERE ($1::uuid IS NULL OR app_id = $1)
             ORDER BY id DESC LIMIT $2",
        )
        .await?;
    client
        .query(&stmt, &[&scope.app(), &limit])
        .await?
        .iter()
        .map(|r| Ok((AppId(r.try_get("app_id")?), delivery_from_row(r)?)))
        .collect()
}

/// The scope's figures over the last `window`, from one snapshot of the database, with its
/// `recent` newest deliveries.
pub async fn stats_snapshot(
    store: &Store,
    scope: Scope,
    window: Duration,
    recent: i64,
) -> Result<Snapshot, StoreError> {
    let mut client = store.client().await?;
    let tx = snapshot_read(&mut client).await?;
    let log = log_activity_within(&tx, scope, window).await?;
    let events_published = events_published_within(&tx, scope, window).await?;
    let queue = deliveries_count_live_and_dead(&tx, scope).await?;
    let recent = deliveries_newest(&tx, scope, recent).await?;
    tx.commit().await?;
    Ok(Snapshot {
        activity: Activity {
            events_published,
            attempts_succeeded: log.try_get("succeeded")?,
            attempts_failed: log.try_get("failed")?,
            retries_scheduled: log.try_get("retries")?,
            dead_lettered: log.try_get("dead_lettered")?,
            latency_p50_ms: log.try_get("p50")?,
            latency_p95_ms: log.try_get("p95")?,
            latency_p99_ms: log.try_get("p99")?,
        },
        queue,
        recent,
    })
}
