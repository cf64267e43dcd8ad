//! The delivery queue and its reads. Each state change is one statement that updates the
//! projection (`deliveries`) and appends the matching `delivery_log` rows together.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::circuits::{self, AttemptTally};
use super::lanes;
use super::{Store, StoreError, delivery_reads, endpoints, millis};
use crate::circuit::{CircuitPolicy, Health};
use crate::fairness;
use crate::ids::{AppId, DeliveryId, EndpointId, EventId};
use crate::metrics::Transition;
use crate::secret::SigningSecret;

/// A delivery leased to this worker, with what it takes to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: DeliveryId,
    pub event_id: EventId,
    pub endpoint_id: EndpointId,
    /// The attempt number this lease is for.
    pub attempt: i32,
    /// Attempts already spent before the current retry budget (set by redrive).
    pub budget_start: i32,
    pub url: String,
    /// The secrets to sign with: the current one, and the previous one while a rotation
    /// overlaps. An error when a stored secret cannot be opened.
    pub secrets: Result<Vec<SigningSecret>, String>,
    pub endpoint_enabled: bool,
    pub max_attempts: Option<i32>,
    pub retry_base_ms: Option<i64>,
    pub retry_cap_ms: Option<i64>,
    pub timeout_ms: Option<i64>,
    /// The endpoint's custom headers, a JSON object of strings.
    pub headers: serde_json::Value,
    pub event_type: String,
    pub payload: String,
    pub event_created_at: DateTime<Utc>,
    /// It belongs to an endpoint's lane (ordered, or limited in flight): when it ends, the
    /// next one goes.
    pub laned: bool,
}

/// The attempt row of an outcome: what happened when the webhook was sent.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub succeeded: bool,
    pub http_status: Option<i32>,
    pub latency_ms: i32,
    pub error_class: Option<&'static str>,
    pub error_message: Option<String>,
    pub response_excerpt: Option<String>,
}

/// What follows an attempt in the queue.
#[derive(Debug, Clone)]
pub enum FollowUp {
    /// Delivered: nothing follows.
    None,
    Retry {
        delay: Duration,
    },
    DeadLetter {
        class: Option<&'static str>,
        message: Option<String>,
    },
}

/// One finished lease: the attempt (if one was made) and what follows it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub delivery_id: DeliveryId,
    pub endpoint_id: EndpointId,
    pub attempt: i32,
    /// `None` when nothing was sent (endpoint disabled, budget exhausted by expired leases): the
    /// attempt is not charged.
    pub attempt_record: Option<AttemptRecord>,
    pub follow_up: FollowUp,
    /// The receiver answered 410 Gone: disable the endpoint.
    pub disable_endpoint: bool,
    /// What the attempt says about the receiver, for its circuit; `None` when nothing was sent
    /// or the answer says nothing about its health (a 4xx other than 429).
    pub health: Option<Health>,
    /// The delivery is in an endpoint's lane (ordered, or limited in flight).
    pub laned: bool,
}

/// The claim statement (`claim_due.sql`), as workers run it when no endpoint hangs: without
/// its quota filter. PostgreSQL plans the statement with the filter anew for every claim (its
/// generic plan, with the quota arrays unknown, looks far costlier than the custom ones), about
/// 1 ms of CPU each time; without it, it settles on one cached generic plan. Public so that the
/// benchmark can EXPLAIN exactly what workers run. Parameters: worker id (text), batch size,
/// default timeout and lease margin in ms (bigint), hanging endpoints (uuid[]) and their quotas
/// (bigint[]), both empty here, the fair horizon in ms (bigint), and the scans' floor (see
/// [`ScanFloor`]): a fair position and a time (timestamptz, NULL for none).
pub static CLAIM_DUE_SQL: LazyLock<String> =
    LazyLock::new(|| without_quota_filter(CLAIM_DUE_WITH_QUOTAS_SQL));

/// The claim statement with its quota filter, for claims while some endpoint hangs.
pub const CLAIM_DUE_WITH_QUOTAS_SQL: &str = include_str!("claim_due.sql");

fn without_quota_filter(sql: &str) -> String {
    const START: &str = "-- quota filter {";
    const END: &str = "-- } quota filter";
    match (sql.find(START), sql.find(END)) {
        (Some(start), Some(end)) if start < end => {
            format!("{}{}", &sql[..start], &sql[end + END.len()..])
        }
        // The unit test below keeps the markers in place; with the filter kept, claims stay
        // correct, only planned every time.
        _ => sql.to_owned(),
    }
}

/// What a claim took: deliveries leased to this worker, and how many it parked behind open
/// circuits instead.
#[derive(Debug, Default)]
pub struct ClaimBatch {
    pub leased: Vec<Claimed>,
    pub parked: usize,
    /// The furthest fair position among the pending deliveries it took.
    pub reached: Option<DateTime<Utc>>,
    /// When it began, by the database's clock.
    pub began: Option<DateTime<Utc>>,
}

/// Where a claim's scans of the queue start (`claim_due.sql` explains why and why it is safe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanFloor {
    /// From the head of every index: finds whatever is due.
    Head,
    /// Where a claim that `began` then left off: the furthest fair position it `reached`
    /// when it was full (`None` when it was short and took everything due above its floor).
    After {
        began: DateTime<Utc>,
        reached: Option<DateTime<Utc>>,
    },
}

impl ScanFloor {
    /// `(reached, began)`, both NULL for the head.
    fn params(self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        match self {
            Self::Head => (None, None),
            Self::After { began, reached } => (reached, Some(began)),
        }
    }
}

impl ClaimBatch {
    /// Due deliveries the claim dealt with: when this is the batch size, more may be due.
    pub fn taken(&self) -> usize {
        self.leased.len() + self.parked
    }
}

/// Leases up to `batch` due deliveries to `worker_id`, parking those whose endpoint's circuit
/// is open, and taking no more of a hanging endpoint's than its quota (see `claim_due.sql`).
pub async fn delivery_claim_due(
    store: &Store,
    worker_id: &str,
    batch: i64,
    default_timeout: Duration,
    lease_margin: Duration,
    quotas: &[(EndpointId, usize)],
    floor: ScanFloor,
) -> Result<ClaimBatch, StoreError> {
    let client = store.client().await?;
    let sql = if quotas.is_empty() {
        CLAIM_DUE_SQL.as_str()
    } else {
        CLAIM_DUE_WITH_QUOTAS_SQL
    };
    let stmt = client.prepare_cached(sql).await?;
    let timeout_ms = millis(default_timeout);
    let margin_ms = millis(lease_margin);
    let quota_endpoints: Vec<Uuid> = quotas.iter().map(|(e, _)| e.0).collect();
    let quota_counts: Vec<i64> = quotas
        .iter()
        .map(|(_, n)| i64::try_from(*n).unwrap_or(i64::MAX))
        .collect();
    let (floor_reached, floor_began) = floor.params();
    let rows = client
        .query(
            &stmt,
            &[
                &worker_id,
                &batch,
                &timeout_ms,
                &margin_ms,
                &quota_endpoints,
                &quota_counts,
                &millis(fairness::FAIR_HORIZON),
                &floor_reached,
                &floor_began,
            ],
        )
        .await?;
    let mut claim = ClaimBatch::default();
    for r in &rows {
        let position: Option<DateTime<Utc>> = r.try_get("position")?;
        match r.try_get::<_, Option<bool>>("parked")? {
            // The last row: when the claim began.
            None => claim.began = position,
            Some(parked) => {
                claim.reached = claim.reached.max(position);
                if parked {
                    claim.parked += 1;
                } else {
                    claim.leased.push(claimed_from_row(store, r)?);
                }
            }
        }
    }
    if claim.parked > 0 {
        crate::metrics::transition(Transition::Deferred, claim.parked as u64);
    }
    Ok(claim)
}

pub(crate) fn claimed_from_row(
    store: &Store,
    r: &tokio_postgres::Row,
) -> Result<Claimed, StoreError> {
    let endpoint_id = EndpointId(r.try_get("endpoint_id")?);
    let current: String = r.try_get("secret")?;
    let previous: Option<String> = r.try_get("previous_secret")?;
    let secrets = std::iter::once(current)
        .chain(previous)
        .map(|stored| store.open_secret(endpoint_id, &stored))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string());
    Ok(Claimed {
        id: DeliveryId(r.try_get("id")?),
        event_id: EventId(r.try_get("event_id")?),
        endpoint_id,
        attempt: r.try_get("attempts")?,
        budget_start: r.try_get("budget_start")?,
        url: r.try_get("url")?,
        secrets,
        endpoint_enabled: r.try_get("enabled")?,
        max_attempts: r.try_get("max_attempts")?,
        retry_base_ms: r.try_get("retry_base_ms")?,
        retry_cap_ms: r.try_get("retry_cap_ms")?,
        timeout_ms: r.try_get("timeout_ms")?,
        headers: r.try_get("headers")?,
        event_type: r.try_get("event_type")?,
        payload: r.try_get("payload")?,
        event_created_at: r.try_get("event_created_at")?,
        laned: r.try_get("laned")?,
    })
}

/// How long until the earliest live delivery is claimable (a pending one due, a lease expiring,
/// or a probe of an open circuit that parked deliveries), by the database's clock. `None` when
/// nothing is live. Asked after a claim came back short, with the floor that claim leaves:
/// what lies below and is due, that claim would have taken.
pub async fn delivery_next_due_in(
    store: &Store,
    floor: ScanFloor,
) -> Result<Option<Duration>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "SELECT (extract(epoch FROM least(
                 (SELECT min(due_at) FROM delivery_queue
                  WHERE state = 'pending' AND due_at IS NOT NULL
                    AND due_at >= coalesce($1::timestamptz - interval '1 second',
                                           '-infinity')),
                 (SELECT min(due_at) FROM delivery_queue
                  WHERE state = 'in_flight'
                    AND due_at >= coalesce($1::timestamptz - interval '100 milliseconds',
                                           '-infinity')),
                 (SELECT min(c.open_until) FROM endpoint_circuits c
                  WHERE c.state <> 'closed'
                    AND EXISTS (SELECT 1 FROM delivery_queue q
                                WHERE q.endpoint_id = c.endpoint_id AND q.state = 'pending'
                                  AND q.due_at IS NULL))
             ) - clock_timestamp()) * 1000)::float8",
        )
        .await?;
    let (_, began) = floor.params();
    let ms: Option<f64> = client.query_one(&stmt, &[&began]).await?.try_get(0)?;
    Ok(ms.map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0)))
}

/// The outcome statement (`record_outcomes.sql`); public, like [`CLAIM_DUE_SQL`], for the
/// benchmark's EXPLAIN.
pub const RECORD_OUTCOMES_SQL: &str = include_str!("record_outcomes.sql");

/// Applies a batch of outcomes (see `record_outcomes.sql`); returns the ids that were still
/// leased to this worker and so were recorded.
async fn delivery_outcomes_apply(
    client: &impl GenericClient,
    worker_id: &str,
    outcomes: &[Outcome],
) -> Result<Vec<DeliveryId>, StoreError> {
    let n = outcomes.len();
    let mut ids = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut kinds: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut latencies = Vec::with_capacity(n);
    let mut classes: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut messages: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut excerpts: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut follows: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut follow_classes: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut follow_messages: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut delays: Vec<Option<i64>> = Vec::with_capacity(n);
    for o in outcomes {
        ids.push(o.delivery_id.0);
        attempts.push(o.attempt);
        let a = o.attempt_record.as_ref();
        kinds.push(a.map(|a| {
            if a.succeeded {
                "attempt_succeeded"
            } else {
                "attempt_failed"
            }
        }));
        statuses.push(a.and_then(|a| a.http_status));
        latencies.push(a.map(|a| a.latency_ms));
        classes.push(a.and_then(|a| a.error_class));
        messages.push(a.and_then(|a| a.error_message.as_deref()));
        excerpts.push(a.and_then(|a| a.response_excerpt.as_deref()));
        match &o.follow_up {
            FollowUp::None => {
                follows.push(None);
                follow_classes.push(None);
                follow_messages.push(None);
                delays.push(None);
            }
            FollowUp::Retry { delay } => {
                follows.push(Some("retry_scheduled"));
                follow_classes.push(None);
                follow_messages.push(None);
                delays.push(Some(millis(*delay)));
            }
            FollowUp::DeadLetter { class, message } => {
                follows.push(Some("dead_lettered"));
                follow_classes.push(*class);
                follow_messages.push(message.as_deref());
                delays.push(None);
            }
        }
    }
    let stmt = client.prepare_cached(RECORD_OUTCOMES_SQL).await?;
    let rows = client
        .query(
            &stmt,
            &[
                &worker_id,
                &ids,
                &attempts,
                &kinds,
                &statuses,
                &latencies,
                &classes,
                &messages,
                &excerpts,
                &follows,
                &follow_classes,
                &follow_messages,
                &delays,
            ],
        )
        .await?;
    rows.iter().map(|r| Ok(DeliveryId(r.try_get(0)?))).collect()
}

/// Records a batch of outcomes, counts the attempts against their endpoints' circuits (opening,
/// closing, resuming parked deliveries, disabling endpoints that have failed too long), and
/// disables the endpoints that answered 410, in one transaction.
pub async fn delivery_outcomes_record(
    store: &Store,
    worker_id: &str,
    outcomes: &[Outcome],
    circuit: &CircuitPolicy,
) -> Result<Vec<DeliveryId>, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let recorded = delivery_outcomes_apply(&tx, worker_id, outcomes).await?;
    // Only an outcome that still held its lease may act on the endpoint.
    let held: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| recorded.contains(&o.delivery_id))
        .collect();
    let gone: Vec<Uuid> = held
        .iter()
        .filter(|o| o.disable_endpoint)
        .map(|o| o.endpoint_id.0)
        .collect();
    if !gone.is_empty() {
        endpoints::endpoints_disable(&tx, &gone, "the receiver answered 410 Gone").await?;
    }
    let tallies = tally_attempts(&held);
    let changes = if tallies.is_empty() {
        Vec::new()
    } else {
        circuits::endpoint_circuits_record(&tx, &tallies, circuit).await?
    };
    let closed: Vec<Uuid> = changes
        .iter()
        .filter(|c| c.to == "closed" && c.from != "closed")
        .map(|c| c.endpoint_id)
        .collect();
    let mut resumed = if closed.is_empty() {
        0
    } else {
        deliveries_resume_parked(&tx, &closed, "circuit_closed").await?
    };
    // Lanes move on when an active delivery ended (a retry keeps its place), or when their
    // circuit closed.
    let lanes: Vec<Uuid> = held
        .iter()
        .filter(|o| o.laned && !matches!(o.follow_up, FollowUp::Retry { .. }))
        .map(|o| o.endpoint_id.0)
        .chain(closed.iter().copied())
        .collect();
    if !lanes.is_empty() {
        resumed += lanes::lanes_advance(&tx, &lanes).await?;
    }
    let mut dead_lettered = 0;
    for change in changes.iter().filter(|c| c.disable) {
        let reason = format!(
            "disabled automatically: failing since {} without a success",
            change
                .failing_since
                .map_or_else(|| "long ago".to_owned(), |t| t.to_rfc3339())
        );
        endpoints::endpoints_disable(&tx, &[change.endpoint_id], &reason).await?;
        dead_lettered +=
            deliveries_dead_letter_pending(&tx, &[change.endpoint_id], &reason).await?;
    }
    tx.commit().await?;
    for change in &changes {
        if change.from != change.to {
            crate::metrics::circuit_transition(&change.to);
        }
    }
    let disabled = changes.iter().filter(|c| c.disable).count();
    if disabled > 0 {
        crate::metrics::endpoints_auto_disabled(disabled as u64);
    }
    crate::metrics::transition(Transition::Resumed, resumed);
    crate::metrics::transition(Transition::Dead, dead_lettered);
    for outcome in &held {
        crate::metrics::transition(
            match outcome.follow_up {
                FollowUp::None => Transition::Succeeded,
                FollowUp::Retry { .. } => Transition::RetryScheduled,
                FollowUp::DeadLetter { .. } => Transition::Dead,
            },
            1,
        );
    }
    Ok(recorded)
}

/// Each endpoint's successful and failed attempts among recorded outcomes.
fn tally_attempts(outcomes: &[&Outcome]) -> Vec<AttemptTally> {
    let mut tallies: Vec<AttemptTally> = Vec::new();
    for o in outcomes {
        let Some(health) = o.health else { continue };
        let tally = match tallies
            .iter_mut()
            .find(|t| t.endpoint_id == o.endpoint_id.0)
        {
            Some(t) => t,
            None => {
                tallies.push(AttemptTally {
                    endpoint_id: o.endpoint_id.0,
                    successes: 0,
                    failures: 0,
                });
                let last = tallies.len() - 1;
                &mut tallies[last]
            }
        };
        match health {
            Health::Up => tally.successes += 1,
            Health::Down => tally.failures += 1,
        }
    }
    tallies
}

/// Makes endpoints' parked deliveries due now (their circuit closed, or the endpoint was
/// enabled or disabled by hand), logging `resumed` with `class`; returns how many. The lanes of
/// endpoints with a lane are left to [`lanes::lanes_advance`], which resumes as many as fit.
pub(crate) async fn deliveries_resume_parked(
    client: &impl GenericClient,
    endpoint_ids: &[Uuid],
    class: &str,
) -> Result<u64, StoreError> {
    let stmt = client
        .prepare_cached(
            "WITH queued AS (
                 UPDATE delivery_queue q
                 SET due_at = now()
                 FROM endpoints ep
                 WHERE q.endpoint_id = ANY ($1) AND q.state = 'pending' AND q.due_at IS NULL
                   AND ep.id = q.endpoint_id
                   AND NOT ((ep.ordered OR ep.max_in_flight IS NOT NULL OR ep.rate_limit_per_s IS NOT NULL)
                            AND q.ordinal IS NOT NULL)
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
             SELECT id, 'resumed', attempts, $2, due_at FROM resumed ORDER BY id",
        )
        .await?;
    Ok(client.execute(&stmt, &[&endpoint_ids, &class]).await?)
}

/// Dead-letters endpoints' pending deliveries (parked or waiting for a retry) with `reason`
/// (the endpoint was disabled automatically); returns how many. Deliveries in flight finish
/// their attempt and are dead-lettered when next claimed.
pub(crate) async fn deliveries_dead_letter_pending(
    client: &impl GenericClient,
    endpoint_ids: &[Uuid],
    reason: &str,
) -> Result<u64, StoreError> {
    let stmt = client
        .prepare_cached(
            "WITH queued AS (
                 UPDATE delivery_queue
                 SET state = 'dead', due_at = NULL, lease_owner = NULL
                 WHERE endpoint_id = ANY ($1) AND state = 'pending'
                 RETURNING delivery_id
             ),
             dead AS (
                 UPDATE deliveries d
                 SET state = 'dead', due_at = NULL, lease_owner = NULL, last_error = $2,
                     updated_at = now()
                 FROM queued q
                 WHERE d.id = q.delivery_id
                 RETURNING d.id, d.attempts
             )
             INSERT INTO delivery_log (delivery_id, kind, attempt, error_class, error_message)
             SELECT id, 'dead_lettered', attempts, 'endpoint_disabled', $2 FROM dead ORDER BY id",
        )
        .await?;
    Ok(client.execute(&stmt, &[&endpoint_ids, &reason]).await?)
}

/// Hands unfinished leases back to the queue, due now (worker shutdown). The attempt stays
/// charged: it may have reached the receiver.
pub async fn delivery_release(
    store: &Store,
    worker_id: &str,
    leases: &[(DeliveryId, i32)],
) -> Result<u64, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "WITH input AS (
                 SELECT * FROM unnest($2::uuid[], $3::int[]) AS t(delivery_id, attempt)
             ),
             queued AS (
                 UPDATE delivery_queue q
                 SET state = 'pending', due_at = now(), lease_owner = NULL
                 FROM input i
                 WHERE q.delivery_id = i.delivery_id AND q.state = 'in_flight'
                   AND q.lease_owner = $1 AND q.attempts = i.attempt
                 RETURNING q.delivery_id, q.due_at
             ),
             released AS (
                 UPDATE deliveries d
                 SET state = 'pending', due_at = q.due_at, lease_owner = NULL, updated_at = now()
                 FROM queued q
                 WHERE d.id = q.delivery_id
                 RETURNING d.id, d.attempts, d.due_at
             )
             INSERT INTO delivery_log (delivery_id, kind, attempt, worker_id, next_attempt_at)
             SELECT id, 'released', attempts, $1, due_at FROM released ORDER BY id",
        )
        .await?;
    let ids: Vec<Uuid> = leases.iter().map(|(id, _)| id.0).collect();
    let attempts: Vec<i32> = leases.iter().map(|(_, a)| *a).collect();
    Ok(client
        .execute(&stmt, &[&worker_id, &ids, &attempts])
        .await?)
}

/// Cancels the pending deliveries of endpoints (deleted ones), logging why.
pub(crate) async fn deliveries_cancel_pending(
    client: &impl GenericClient,
    endpoint_ids: &[Uuid],
    reason: &str,
) -> Result<u64, StoreError> {
    let stmt = client
        .prepare_cached(
            "WITH queued AS (
                 UPDATE delivery_queue
                 SET state = 'cancelled', due_at = NULL, lease_owner = NULL
                 WHERE endpoint_id = ANY ($1) AND state = 'pending'
                 RETURNING delivery_id
             ),
             cancelled AS (
                 UPDATE deliveries d
                 SET state = 'cancelled', due_at = NULL, lease_owner = NULL, last_error = $2,
                     updated_at = now()
                 FROM queued q
                 WHERE d.id = q.delivery_id
                 RETURNING d.id, d.attempts
             )
             INSERT INTO delivery_log (delivery_id, kind, attempt, error_class, error_message)
             SELECT id, 'cancelled', attempts, 'endpoint_deleted', $2 FROM cancelled ORDER BY id",
        )
        .await?;
    Ok(client.execute(&stmt, &[&endpoint_ids, &reason]).await?)
}

/// What a cancel request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled,
    /// Already delivered, dead-lettered or cancelled.
    NotCancellable,
    NotFound,
}

/// Cancels one pending or in-flight delivery; returns its endpoint when it was cancelled. An
/// attempt in flight still completes, but its outcome no longer applies: the lease check in
/// `record_outcomes.sql` drops it.
async fn delivery_cancel_apply(
    client: &impl GenericClient,
    app_id: AppId,
    id: DeliveryId,
) -> Result<Option<Uuid>, StoreError> {
    let stmt = client
        .prepare_cached(
            "WITH queued AS (
                 UPDATE delivery_queue
                 SET state = 'cancelled', due_at = NULL, lease_owner = NULL
                 WHERE delivery_id = $1 AND app_id = $2 AND state IN ('pending', 'in_flight')
                 RETURNING delivery_id
             ),
             cancelled AS (
                 UPDATE deliveries d
                 SET state = 'cancelled', due_at = NULL, lease_owner = NULL, updated_at = now()
                 FROM queued q
                 WHERE d.id = q.delivery_id
                 RETURNING d.id, d.attempts, d.endpoint_id
             ),
             logged AS (
                 INSERT INTO delivery_log (delivery_id, kind, attempt, error_class)
                 SELECT id, 'cancelled', attempts, 'cancelled_by_api' FROM cancelled
             )
             SELECT endpoint_id FROM cancelled",
        )
        .await?;
    let row = client.query_opt(&stmt, &[&id.0, &app_id.0]).await?;
    row.map(|r| r.try_get(0)).transpose().map_err(Into::into)
}

/// Cancels one delivery of an app; in a lane, the next delivery goes.
pub async fn delivery_cancel(
    store: &Store,
    app_id: AppId,
    id: DeliveryId,
) -> Result<CancelOutcome, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    if let Some(endpoint_id) = delivery_cancel_apply(&tx, app_id, id).await? {
        lanes::lanes_advance(&tx, &[endpoint_id]).await?;
        tx.commit().await?;
        crate::metrics::transition(Transition::Cancelled, 1);
        return Ok(CancelOutcome::Cancelled);
    }
    Ok(
        match delivery_reads::delivery_get_with(&tx, app_id, id).await? {
            Some(_) => CancelOutcome::NotCancellable,
            None => CancelOutcome::NotFound,
        },
    )
}

/// Which dead letters a bulk redrive takes; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    pub endpoint_id: Option<EndpointId>,
    pub event_type: Option<String>,
    /// Created at or after.
    pub after: Option<DateTime<Utc>>,
    /// Created before.
    pub before: Option<DateTime<Utc>>,
}

/// Redrives every dead-lettered delivery of an app that the filter selects; returns how many.
/// Safe to repeat: a redriven delivery is no longer dead.
pub async fn deliveries_redrive_dead(
    store: &Store,
    app_id: AppId,
    filter: &DeadLetterFilter,
) -> Result<u64, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    // A redriven delivery of a lane waits parked for its turn (lanes_advance).
    let stmt = tx
        .prepare_cached(
            "WITH queued AS (
                 UPDATE delivery_queue q
                 SET state = 'pending',
                     due_at = CASE WHEN q.ordinal IS NOT NULL
                                        AND (ep.ordered OR ep.max_in_flight IS NOT NULL
                                             OR ep.rate_limit_per_s IS NOT NULL) THEN NULL
                                   ELSE now() END,
                     lease_owner = NULL
                 FROM deliveries d, events e, endpoints ep
                 WHERE q.app_id = $1 AND q.state = 'dead' AND d.id = q.delivery_id
                   AND e.id = d.event_id AND ep.id = q.endpoint_id
                   AND ($2::uuid IS NULL OR q.endpoint_id = $2)
                   AND ($3::text IS NULL OR e.event_type = $3)
                   AND ($4::timestamptz IS NULL OR q.delivery_id >= hookd_uuid_v7_floor($4))
                   AND ($5::timestamptz IS NULL OR q.delivery_id < hookd_uuid_v7_floor($5))
                 RETURNING q.delivery_id, q.due_at
             ),
             redriven AS (
                 UPDATE deliveries d
                 SET state = 'pending', budget_start = d.attempts, due_at = q.due_at,
                     lease_owner = NULL, updated_at = now()
                 FROM queued q
                 WHERE d.id = q.delivery_id
                 RETURNING d.id, d.attempts, d.due_at, d.endpoint_id
             ),
             logged AS (
                 INSERT INTO delivery_log (delivery_id, kind, attempt, next_attempt_at)
                 SELECT id, 'redriven', attempts, due_at FROM redriven ORDER BY id
             )
             SELECT endpoint_id FROM redriven",
        )
        .await?;
    let endpoints = tx
        .query(
            &stmt,
            &[
                &app_id.0,
                &filter.endpoint_id.map(|id| id.0),
                &filter.event_type,
                &filter.after,
                &filter.before,
            ],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<Uuid>, _>>()?;
    let redriven = endpoints.len() as u64;
    lanes::lanes_advance(&tx, &endpoints).await?;
    tx.commit().await?;
    crate::metrics::transition(Transition::Redriven, redriven);
    Ok(redriven)
}

/// What a redrive request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedriveOutcome {
    Redriven,
    /// The delivery is pending, in flight or cancelled: there is nothing to redrive.
    NotRedrivable,
    NotFound,
}

/// Schedules a dead-lettered or delivered delivery again, now, with a fresh retry budget (in an
/// endpoint's lane: parked, for its turn); returns its endpoint when it was redriven.
async fn delivery_redrive_apply(
    client: &impl GenericClient,
    app_id: AppId,
    id: DeliveryId,
) -> Result<Option<Uuid>, StoreError> {
    let stmt = client
        .prepare_cached(
            "WITH target AS (
                 SELECT d.id, d.app_id, d.endpoint_id, d.attempts, d.ordinal,
                        CASE WHEN d.ordinal IS NOT NULL
                                  AND (ep.ordered OR ep.max_in_flight IS NOT NULL
                                       OR ep.rate_limit_per_s IS NOT NULL) THEN NULL
                             ELSE now() END AS due_at
                 FROM deliveries d
                 JOIN endpoints ep ON ep.id = d.endpoint_id
                 WHERE d.id = $1 AND d.app_id = $2 AND d.state IN ('dead', 'succeeded')
             ),
             -- A dead letter's queue row is taken back, locked first as everywhere;
             from_dead AS (
                 UPDATE delivery_queue q
                 SET state = 'pending', due_at = t.due_at, lease_owner = NULL
                 FROM target t
                 WHERE q.delivery_id = t.id AND q.state = 'dead'
                 RETURNING q.delivery_id, q.due_at
             ),
             -- a delivered delivery has none and gets one, its row held against retention
             -- meanwhile (a key-share lock: no other writer waits for it).
             delivered AS (
                 SELECT d.id FROM deliveries d
                 WHERE d.id = $1 AND d.app_id = $2 AND d.state = 'succeeded'
                 FOR KEY SHARE
             ),
             from_delivered AS (
                 INSERT INTO delivery_queue (delivery_id, app_id, endpoint_id, state, attempts,
                                             due_at, ordinal)
                 SELECT t.id, t.app_id, t.endpoint_id, 'pending', t.attempts, t.due_at, t.ordinal
                 FROM target t JOIN delivered USING (id)
                 ON CONFLICT (delivery_id) DO NOTHING
                 RETURNING delivery_id, due_at
             ),
             queued AS (
                 SELECT * FROM from_dead UNION ALL SELECT * FROM from_delivered
             ),
             redriven AS (
                 UPDATE deliveries d
                 SET state = 'pending', budget_start = d.attempts, due_at = q.due_at,
                     lease_owner = NULL, updated_at = now()
                 FROM queued q
                 WHERE d.id = q.delivery_id
                 RETURNING d.id, d.attempts, d.due_at, d.endpoint_id
             ),
             logged AS (
                 INSERT INTO delivery_log (delivery_id, kind, attempt, next_attempt_at)
                 SELECT id, 'redriven', attempts, due_at FROM redriven
             )
             SELECT endpoint_id FROM redriven",
        )
        .await?;
    let row = client.query_opt(&stmt, &[&id.0, &app_id.0]).await?;
    row.map(|r| r.try_get(0)).transpose().map_err(Into::into)
}

/// Redrives one delivery of an app.
pub async fn delivery_redrive(
    store: &Store,
    app_id: AppId,
    id: DeliveryId,
) -> Result<RedriveOutcome, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    if let Some(endpoint_id) = delivery_redrive_apply(&tx, app_id, id).await? {
        lanes::lanes_advance(&tx, &[endpoint_id]).await?;
        tx.commit().await?;
        crate::metrics::transition(Transition::Redriven, 1);
        return Ok(RedriveOutcome::Redriven);
    }
    Ok(
        match delivery_reads::delivery_get_with(&tx, app_id, id).await? {
            Some(_) => RedriveOutcome::NotRedrivable,
            None => RedriveOutcome::NotFound,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_claim_is_the_full_one_without_its_quota_filter() {
        let usual = CLAIM_DUE_SQL.as_str();
        assert!(CLAIM_DUE_WITH_QUOTAS_SQL.contains("q.endpoint_id <> ALL ($5::uuid[])"));
        assert!(!usual.contains("q.endpoint_id <> ALL"));
        assert!(!usual.contains("quota filter"));
        // The parameters keep their numbers and types: $5 and $6 still appear, in the unused
        // quotas CTE, and everything around the filter is unchanged.
        assert!(usual.contains("unnest($5::uuid[], $6::bigint[])"));
        assert!(usual.contains("ORDER BY greatest(q.fair_key, q.due_at)\n    LIMIT greatest("));
        assert!(CLAIM_DUE_WITH_QUOTAS_SQL.len() - usual.len() > 400);
    }
}
