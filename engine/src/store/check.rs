//! `hookd projection check`: fold every delivery's log and compare it with the projection, and
//! compare the queue table with the projection.

use deadpool_postgres::GenericClient;
use futures_util::{StreamExt as _, pin_mut};

use super::delivery_reads::log_entry;
use super::{Store, StoreError, parse_text};
use crate::delivery::{DeliveryState, LogEntry};
use crate::ids::DeliveryId;
use crate::projection::{self, Projected};

/// A delivery whose projection is not what its log folds to, or whose queue row disagrees.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub delivery_id: DeliveryId,
    pub problem: String,
}

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckReport {
    pub deliveries_checked: u64,
    pub mismatches: Vec<Mismatch>,
    /// Log rows whose delivery is gone: history that outlived what it describes.
    pub orphan_log_rows: u64,
    /// Queue rows whose delivery is gone.
    pub orphan_queue_rows: u64,
    /// Deliveries whose event, endpoint or app is gone.
    pub orphan_deliveries: u64,
}

impl CheckReport {
    /// Whether the projection and the log agree.
    pub fn is_clean(&self) -> bool {
        self.mismatches.is_empty()
            && self.orphan_log_rows == 0
            && self.orphan_queue_rows == 0
            && self.orphan_deliveries == 0
    }
}

/// Counts, in one snapshot, log rows and queue rows without a delivery, and deliveries without
/// their event, endpoint or app. No foreign key keeps these (each would look up and lock the
/// named row on every append or insert); the database's delete guards and retention keep all
/// three at zero, and this counts them.
async fn orphan_rows_count(client: &impl GenericClient) -> Result<(u64, u64, u64), StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT (SELECT count(*) FROM delivery_log l
                     WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = l.delivery_id)),
                    (SELECT count(*) FROM delivery_queue q
                     WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = q.delivery_id)),
                    (SELECT count(*) FROM deliveries d
                     WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = d.event_id)
                        OR NOT EXISTS (SELECT 1 FROM endpoints ep WHERE ep.id = d.endpoint_id)
                        OR NOT EXISTS (SELECT 1 FROM apps a WHERE a.id = d.app_id))",
        )
        .await?;
    let row = client.query_one(&stmt, &[]).await?;
    let count = |i: usize| -> Result<u64, StoreError> {
        Ok(u64::try_from(row.try_get::<_, i64>(i)?).unwrap_or(0))
    };
    Ok((count(0)?, count(1)?, count(2)?))
}

/// Streams every delivery's projected columns beside its log rows, in one snapshot (one
/// statement), ordered so each delivery's rows arrive together, oldest first.
pub async fn projection_check(store: &Store) -> Result<CheckReport, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "SELECT d.id, d.state::text AS state, d.attempts, d.budget_start, d.due_at,
                    d.lease_owner, d.last_http_status, d.last_error,
                    q.delivery_id IS NOT NULL AS queued, q.state::text AS queue_state,
                    q.attempts AS queue_attempts, q.due_at AS queue_due_at,
                    q.lease_owner AS queue_lease_owner,
                    (q.app_id, q.endpoint_id, q.ordinal)
                        IS NOT DISTINCT FROM (d.app_id, d.endpoint_id, d.ordinal) AS queue_same_keys,
                    l.seq, l.kind::text AS kind, l.at, l.attempt, l.worker_id, l.http_status,
                    l.latency_ms, l.error_class, l.error_message, l.response_excerpt,
                    l.next_attempt_at, l.lease_expires_at
             FROM deliveries d
             LEFT JOIN delivery_queue q ON q.delivery_id = d.id
             LEFT JOIN delivery_log l ON l.delivery_id = d.id
             ORDER BY d.id, l.seq",
        )
        .await?;
    let rows = client.query_raw(&stmt, std::iter::empty::<i32>()).await?;
    pin_mut!(rows);
    let mut report = CheckReport::default();
    let mut current: Option<Delivery> = None;
    while let Some(row) = rows.next().await {
        let row = row?;
        let id = DeliveryId(row.try_get("id")?);
        if current.as_ref().is_none_or(|cur| cur.id != id) {
            if let Some(done) = current.take() {
                compare(done, &mut report);
            }
            let stored = Projected {
                state: parse_text::<DeliveryState>(&row, "state")?,
                attempts: row.try_get("attempts")?,
                budget_start: row.try_get("budget_start")?,
                due_at: row.try_get("due_at")?,
                lease_owner: row.try_get("lease_owner")?,
                last_http_status: row.try_get("last_http_status")?,
                last_error: row.try_get("last_error")?,
            };
            let queue_problem = queue_disagreement(&row, &stored)?;
            current = Some(Delivery {
                id,
                stored,
                log: Vec::new(),
                queue_problem,
            });
        }
        if row.try_get::<_, Option<i64>>("seq")?.is_some()
            && let Some(delivery) = current.as_mut()
        {
            delivery.log.push(log_entry(&row)?);
        }
    }
    if let Some(done) = current.take() {
        compare(done, &mut report);
    }
    (
        report.orphan_log_rows,
        report.orphan_queue_rows,
        report.orphan_deliveries,
    ) = orphan_rows_count(&client).await?;
    Ok(report)
}

/// How a delivery's queue row disagrees with its projected row, if it does: a delivery has one
/// exactly while it is not delivered, with the same state, attempts, due time, lease holder and
/// keys.
fn queue_disagreement(
    row: &tokio_postgres::Row,
    stored: &Projected,
) -> Result<Option<String>, StoreError> {
    let queued: bool = row.try_get("queued")?;
    let should_be = stored.state != DeliveryState::Succeeded;
    if queued != should_be {
        return Ok(Some(if queued {
            "queue: a delivered delivery still has a queue row".to_owned()
        } else {
            format!(
                "queue: a {} delivery has no queue row",
                stored.state.as_str()
            )
        }));
    }
    if !queued {
        return Ok(None);
    }
    let mut diffs = Vec::new();
    let state = parse_text::<DeliveryState>(row, "queue_state")?;
    if state != stored.state {
        diffs.push(format!("state {:?}", state));
    }
    let attempts: i32 = row.try_get("queue_attempts")?;
    if attempts != stored.attempts {
        diffs.push(format!("attempts {attempts}"));
    }
    let due_at: Option<chrono::DateTime<chrono::Utc>> = row.try_get("queue_due_at")?;
    if due_at != stored.due_at {
        diffs.push(format!("due_at {due_at:?}"));
    }
    let lease_owner: Option<String> = row.try_get("queue_lease_owner")?;
    if lease_owner != stored.lease_owner {
        diffs.push(format!("lease_owner {lease_owner:?}"));
    }
    if !row.try_get::<_, bool>("queue_same_keys")? {
        diffs.push("another app, endpoint or ordinal".to_owned());
    }
    Ok((!diffs.is_empty()).then(|| format!("queue row has {}", diffs.join(", "))))
}

/// One delivery as the check reads it: its projected row, its log, and how its queue row
/// disagrees with the projected row, if it does.
struct Delivery {
    id: DeliveryId,
    stored: Projected,
    log: Vec<LogEntry>,
    queue_problem: Option<String>,
}

/// Records at most one mismatch per delivery, naming everything that differs.
fn compare(delivery: Delivery, report: &mut CheckReport) {
    report.deliveries_checked += 1;
    let log_problem = match projection::fold(&delivery.log) {
        Err(e) => Some(format!("its log is invalid: {e}")),
        Ok(folded) if folded != delivery.stored => Some(describe(&folded, &delivery.stored)),
        Ok(_) => None,
    };
    let problems: Vec<String> = log_problem
        .into_iter()
        .chain(delivery.queue_problem)
        .collect();
    if !problems.is_empty() {
        report.mismatches.push(Mismatch {
            delivery_id: delivery.id,
            problem: problems.join("; "),
        });
    }
}

fn describe(folded: &Projected, stored: &Projected) -> String {
    let mut diffs = Vec::new();
    macro_rules! diff {
        ($field:ident) => {
            if folded.$field != stored.$field {
                diffs.push(format!(
                    concat!(stringify!($field), ": log says {:?}, projection has {:?}"),
                    folded.$field, stored.$field
                ));
            }
        };
    }
    diff!(state);
    diff!(attempts);
    diff!(budget_start);
    diff!(due_at);
    diff!(lease_owner);
    diff!(last_http_status);
    diff!(last_error);
    diffs.join("; ")
}
