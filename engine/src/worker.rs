//! The worker loop: claim due deliveries, send them concurrently, record outcomes in batches.
//!
//! Invariants:
//! - No lost wake-ups: the loop arms its wake-up before it claims, so a notification that lands
//!   between the claim and the sleep still ends the sleep.
//! - No fixed poll: it sleeps until the earliest due time the database reports, a notification,
//!   a finished send, or shutdown.
//! - No transaction is open while a webhook is sent: claim commits first, outcomes commit after.
//! - Shutdown stops claiming, lets in-flight sends finish until a grace deadline, then releases
//!   what is left back to the queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::SecondsFormat;
use rand::RngExt as _;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::circuit::{CircuitPolicy, Health};
use crate::fairness::SlotShares;
use crate::handoff::HandoffInbox;
use crate::ids::{DeliveryId, EndpointId};
use crate::metrics::{self, WakeCause};
use crate::outcome::{self, AttemptResult, ErrorClass, Verdict};
use crate::retry::RetryPolicy;
use crate::sender::{Sender, Webhook};
use crate::signing;
use crate::store::Store;
use crate::store::deliveries::{
    self, AttemptRecord, ClaimBatch, Claimed, FollowUp, Outcome, ScanFloor, delivery_claim_due,
    delivery_next_due_in,
};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names this process in leases and in the delivery log.
    pub worker_id: String,
    /// Webhooks in flight at once.
    pub concurrency: usize,
    /// Deliveries claimed per statement.
    pub claim_batch: usize,
    /// Added to a delivery's timeout to make its lease: a lease outlives any attempt, so only a
    /// dead worker's lease ever expires.
    pub lease_margin: Duration,
    /// Timeout of an attempt when the endpoint sets none.
    pub default_timeout: Duration,
    /// Retry policy when the endpoint sets none.
    pub retry: RetryPolicy,
    /// How long shutdown waits for in-flight sends before releasing them.
    pub shutdown_grace: Duration,
    /// What tells the worker that new work was published.
    pub wake: Wake,
    /// When endpoints' circuits open and close, and when a failing endpoint is disabled.
    pub circuit: CircuitPolicy,
}

/// What tells a worker that new work was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A NOTIFY from the publishing transaction's commit: the default and the design.
    Notify,
    /// No LISTEN; a claim every interval. Exists only so the benchmark can measure what the
    /// doorbell is worth against the same build polling.
    Poll(Duration),
}

/// Least wait before claiming again when due work exists but could not be claimed (another
/// worker holds it): it will be leased, and due again only at lease expiry, within moments.
const CONTENDED_RETRY: Duration = Duration::from_millis(20);

/// Longest a free slot waits for others to free up before a busy worker claims for it alone.
const REFILL_WAIT: Duration = Duration::from_millis(2);

/// How long shutdown waits for publishes that reserved slots before the offer was withdrawn:
/// a publish transaction's time, with room for a slow commit.
const HANDOFF_SETTLE: Duration = Duration::from_secs(2);

/// How often a worker whose claims scan from a floor (see [`ClaimFloor`]) scans from the head
/// of the queue's indexes all the same, for deliveries stranded below the floor. Under a long
/// snapshot such a scan visits every version left since the snapshot began, so it stays rare.
const HEAD_SCAN_EVERY: Duration = Duration::from_secs(5);

/// Wait after a database error before trying again.
const DATABASE_RETRY: Duration = Duration::from_millis(500);

/// Outcomes written per statement at most.
const OUTCOME_BATCH: usize = 512;

/// Runs a worker until `shutdown` is cancelled and in-flight work is finished or released. With
/// `handoff`, it also sends what publishes in its process lease to it (see [`crate::handoff`]).
pub async fn run(
    store: Store,
    sender: Sender,
    config: WorkerConfig,
    mut handoff: Option<HandoffInbox>,
    shutdown: CancellationToken,
) {
    let wake = Arc::new(Notify::new());
    let listener_stop = CancellationToken::new();
    let listener = match config.wake {
        Wake::Notify => Some(tokio::spawn(crate::listener::listen(
            store.pg_config().clone(),
            wake.clone(),
            listener_stop.clone(),
        ))),
        Wake::Poll(_) => None,
    };
    let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
    // Outcomes sent but not yet committed hold their slot: a worker whose database falls behind
    // stops claiming instead of piling up outcomes until their leases expire.
    let unrecorded = Arc::new(AtomicUsize::new(0));
    let recorded = Arc::new(Notify::new());
    let recorder = tokio::spawn(record_outcomes(
        store.clone(),
        config.worker_id.clone(),
        config.circuit,
        outcomes_rx,
        Backlog {
            unrecorded: unrecorded.clone(),
            recorded: recorded.clone(),
        },
    ));
    let context = Arc::new(AttemptContext {
        sender,
        config: config.clone(),
        outcomes: outcomes_tx,
        unrecorded: unrecorded.clone(),
    });

    let mut sends: JoinSet<()> = JoinSet::new();
    let mut leases: HashMap<tokio::task::Id, Lease> = HashMap::new();
    let mut shares = SlotShares::new(config.concurrency);
    // Whether work may be due that this worker has not claimed: true after a notification, a
    // timer or the start; false once a claim came back short. A finished send frees a slot
    // but makes nothing due, so it only claims while this holds.
    let mut maybe_due = true;
    // When the next retry or lease expiry falls due, by the database's clock, once a claim came
    // back short; or when to try again after a database error.
    let mut due_at: Option<Instant> = None;
    // When the worker is busy, slots free up one send at a time; claiming for each alone would
    // cost a statement and a commit per delivery. It waits until a refill's worth of slots is
    // free, or until the first free slot has waited REFILL_WAIT.
    let refill = (config.concurrency / 4).clamp(1, config.claim_batch.max(1));
    let mut slot_free_since: Option<Instant> = None;
    let mut floor = ClaimFloor::default();
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let outcomes_committed = recorded.notified();
        tokio::pin!(outcomes_committed);
        outcomes_committed.as_mut().enable();
        if shutdown.is_cancelled() {
            break;
        }
        // Slots offered to publishers are withdrawn before a claim: a publish reserving them
        // while the claim runs would take slots the claim counted as free.
        if let (true, Some(inbox)) = (maybe_due, &handoff) {
            inbox.withdraw();
        }
        let reserved = handoff.as_ref().map_or(0, HandoffInbox::reserved);
        let free = config
            .concurrency
            .saturating_sub(sends.len() + unrecorded.load(Ordering::Acquire) + reserved);
        let mut refill_at = None;
        if maybe_due && free > 0 {
            let first_free = *slot_free_since.get_or_insert_with(Instant::now);
            if free < refill && first_free.elapsed() < REFILL_WAIT {
                refill_at = Some(first_free + REFILL_WAIT);
            } else {
                slot_free_since = None;
                let want = free.min(config.claim_batch);
                let claim_started = Instant::now();
                let quotas = shares.quotas(
                    leases.values().map(|l| (l.endpoint, l.started)),
                    Instant::now(),
                );
                let scan = floor.take(claim_started, !quotas.is_empty());
                match claim(&store, &config, want, &quotas, scan).await {
                    Ok(claim) => {
                        // A probe of an open circuit comes on top of the batch.
                        let full = claim.taken() >= want;
                        floor.claimed(&claim, full, !quotas.is_empty());
                        let leased = claim.leased.len();
                        for delivery in claim.leased {
                            start_send(&mut sends, &mut leases, &context, delivery);
                        }
                        metrics::claimed(leased, sends.len(), claim_started.elapsed());
                        // Parked deliveries filled the batch too: more may be due.
                        if full {
                            continue;
                        }
                        maybe_due = false;
                        due_at = match delivery_next_due_in(&store, floor.after_short_claim()).await
                        {
                            Ok(due) => due.map(|due| Instant::now() + due.max(CONTENDED_RETRY)),
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot read the next due time");
                                Some(Instant::now() + DATABASE_RETRY)
                            }
                        };
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "claim failed");
                        floor.forget();
                        maybe_due = false;
                        due_at = Some(Instant::now() + DATABASE_RETRY);
                    }
                }
            }
        }
        // (While work may be due the worker claims at its next chance anyway, and a timer in the
        // past would spin it while no slot is free.)
        if let (false, Some(head_scan)) = (maybe_due, floor.head_scan_due()) {
            due_at = Some(due_at.map_or(head_scan, |due| due.min(head_scan)));
        }
        if let Wake::Poll(every) = config.wake {
            let poll_at = Instant::now() + every;
            due_at = Some(due_at.map_or(poll_at, |due| due.min(poll_at)));
        }
        // Publishes may lease to this worker only while it would otherwise wait with idle
        // slots: nothing due left in the queue, and no endpoint it sends to hanging (a quota
        // the claim enforces and a publish would not).
        if let Some(inbox) = &handoff {
            let mut hanging = || {
                !shares
                    .quotas(
                        leases.values().map(|l| (l.endpoint, l.started)),
                        Instant::now(),
                    )
                    .is_empty()
            };
            if maybe_due || hanging() {
                inbox.withdraw();
            } else {
                inbox.offer(
                    config
                        .concurrency
                        .saturating_sub(sends.len() + unrecorded.load(Ordering::Acquire)),
                );
            }
        }
        // Notify and scan wake-ups are counted by the listener, which knows which it rang.
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = &mut notified => maybe_due = true,
            Some(done) = sends.join_next_with_id(), if !sends.is_empty() => {
                forget_lease(&mut leases, &mut shares, done);
                metrics::wakeup(WakeCause::Capacity);
            }
            () = sleep_or_forever(due_at) => {
                maybe_due = true;
                due_at = None;
                metrics::wakeup(WakeCause::Timer);
            }
            () = sleep_or_forever(refill_at) => {}
            () = &mut outcomes_committed => {}
            Some(handed) = recv_handoff(&mut handoff) => {
                start_handed(&mut sends, &mut leases, &context, handed);
            }
        }
    }
    // Publishes still committing leases reserved before the offer was withdrawn: their
    // deliveries are sent in stage two like the rest, if they arrive in time. What arrives later
    // is released below with the unfinished sends.
    if let Some(inbox) = handoff.as_mut() {
        inbox.withdraw();
        let waited = Instant::now();
        while inbox.reserved() > 0 && waited.elapsed() < HANDOFF_SETTLE {
            if let Ok(Some(handed)) = tokio::time::timeout(REFILL_WAIT, inbox.recv()).await {
                start_handed(&mut sends, &mut leases, &context, handed);
            }
        }
    }
    let mut not_started: Vec<(DeliveryId, i32)> = handoff
        .as_mut()
        .map(HandoffInbox::close)
        .unwrap_or_default()
        .iter()
        .map(|d| (d.id, d.attempt))
        .collect();

    // Stage two of shutdown: no more claims; give in-flight sends until the deadline.
    let deadline = tokio::time::sleep(config.shutdown_grace);
    tokio::pin!(deadline);
    while !sends.is_empty() {
        tokio::select! {
            Some(done) = sends.join_next_with_id() => forget_lease(&mut leases, &mut shares, done),
            () = &mut deadline => {
                sends.abort_all();
                while let Some(done) = sends.join_next_with_id().await {
                    forget_lease(&mut leases, &mut shares, done);
                }
            }
        }
    }
    drop(context);
    // Every finished send's outcome is queued; the recorder drains them, then stops.
    if let Err(e) = recorder.await {
        tracing::error!(error = %e, "outcome recorder failed");
    }
    let mut unfinished: Vec<(DeliveryId, i32)> = leases
        .into_values()
        .map(|l| (l.delivery, l.attempt))
        .collect();
    unfinished.append(&mut not_started);
    if !unfinished.is_empty() {
        match deliveries::delivery_release(&store, &config.worker_id, &unfinished).await {
            Ok(n) => tracing::info!(released = n, "released unfinished deliveries"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot release deliveries; their leases will expire")
            }
        }
    }
    listener_stop.cancel();
    if let Some(listener) = listener {
        let _ = listener.await;
    }
}

/// A delivery this worker is sending.
#[derive(Debug, Clone, Copy)]
struct Lease {
    delivery: DeliveryId,
    attempt: i32,
    endpoint: EndpointId,
    started: Instant,
}

/// Starts sending a leased delivery, remembering its lease until the send ends.
fn start_send(
    sends: &mut JoinSet<()>,
    leases: &mut HashMap<tokio::task::Id, Lease>,
    context: &Arc<AttemptContext>,
    delivery: Claimed,
) {
    let lease = Lease {
        delivery: delivery.id,
        attempt: delivery.attempt,
        endpoint: delivery.endpoint_id,
        started: Instant::now(),
    };
    let handle = sends.spawn(attempt(context.clone(), delivery));
    leases.insert(handle.id(), lease);
}

/// Starts sending what a publish leased to this worker.
fn start_handed(
    sends: &mut JoinSet<()>,
    leases: &mut HashMap<tokio::task::Id, Lease>,
    context: &Arc<AttemptContext>,
    handed: Vec<Claimed>,
) {
    metrics::handed_off(handed.len());
    for delivery in handed {
        start_send(sends, leases, context, delivery);
    }
}

/// The next batch handed over at publish; never, without a hand-off.
async fn recv_handoff(handoff: &mut Option<HandoffInbox>) -> Option<Vec<Claimed>> {
    match handoff {
        Some(inbox) => inbox.recv().await,
        None => std::future::pending().await,
    }
}

async fn claim(
    store: &Store,
    config: &WorkerConfig,
    want: usize,
    quotas: &[(EndpointId, usize)],
    floor: ScanFloor,
) -> Result<ClaimBatch, crate::store::StoreError> {
    delivery_claim_due(
        store,
        &config.worker_id,
        i64::try_from(want).unwrap_or(i64::MAX),
        config.default_timeout,
        config.lease_margin,
        quotas,
        floor,
    )
    .await
}

/// Where this worker's next claim starts scanning the queue (`claim_due.sql` says why a floor
/// matters and why it is safe): where its last claim left off; from the head of the indexes
/// when that claim left nothing to build on, when fairness quotas apply, and at least every
/// [`HEAD_SCAN_EVERY`] while claims have a floor.
#[derive(Debug, Default)]
struct ClaimFloor {
    /// Where the last claim left off; `None` when it left nothing to build on (the start, an
    /// error, quotas that left due deliveries behind, a batch of expired leases only).
    last: Option<ScanFloor>,
    /// When the last scan from the head began.
    head_scanned: Option<Instant>,
    /// The last claim scanned from the head (if not, a claim with a floor ran since).
    last_from_head: bool,
}

impl ClaimFloor {
    /// The floor of a claim beginning now, without quotas.
    fn peek(&self) -> ScanFloor {
        match (self.last, self.head_scanned) {
            (Some(floor), Some(head)) if head.elapsed() < HEAD_SCAN_EVERY => floor,
            _ => ScanFloor::Head,
        }
    }

    /// The floor of a claim beginning at `now`, noted as used. The quota filter applies to
    /// the scan from the head only.
    fn take(&mut self, now: Instant, with_quotas: bool) -> ScanFloor {
        let floor = if with_quotas {
            ScanFloor::Head
        } else {
            self.peek()
        };
        self.last_from_head = floor == ScanFloor::Head;
        if self.last_from_head {
            self.head_scanned = Some(now);
        }
        floor
    }

    /// What a claim leaves for the next one: a full batch, the position it reached; a short
    /// one, only the time it began (everything due above its floor it took).
    fn claimed(&mut self, batch: &ClaimBatch, full: bool, had_quotas: bool) {
        self.last = match (batch.began, had_quotas, full, batch.reached) {
            (None, _, _, _) | (Some(_), true, _, _) | (Some(_), false, true, None) => None,
            (Some(began), false, true, Some(reached)) => Some(ScanFloor::After {
                began,
                reached: Some(reached),
            }),
            (Some(began), false, false, _) => Some(ScanFloor::After {
                began,
                reached: None,
            }),
        };
    }

    /// The floor for asking when the next delivery falls due, after a claim came back short:
    /// none if that claim scanned from the head (a delivery another claim held may be back).
    fn after_short_claim(&self) -> ScanFloor {
        match (self.last_from_head, self.last) {
            (false, Some(floor)) => floor,
            _ => ScanFloor::Head,
        }
    }

    fn forget(&mut self) {
        self.last = None;
    }

    /// When a scan from the head is owed, once claims have run with a floor.
    fn head_scan_due(&self) -> Option<Instant> {
        self.head_scanned
            .filter(|_| !self.last_from_head)
            .map(|at| at + HEAD_SCAN_EVERY)
    }
}

/// A send that finished (or was aborted) no longer holds a lease this worker must release,
/// unless it was aborted before recording.
fn forget_lease(
    leases: &mut HashMap<tokio::task::Id, Lease>,
    shares: &mut SlotShares,
    done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
) {
    match done {
        Ok((id, ())) => {
            if let Some(lease) = leases.remove(&id) {
                shares.finished(lease.endpoint, lease.started.elapsed());
            }
        }
        Err(e) if e.is_cancelled() => {}
        Err(e) => {
            // The lease expires and another claim retries the delivery.
            tracing::error!(error = %e, "a send task panicked");
            leases.remove(&e.id());
        }
    }
}

async fn sleep_or_forever(until: Option<Instant>) {
    match until {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

struct AttemptContext {
    sender: Sender,
    config: WorkerConfig,
    outcomes: mpsc::UnboundedSender<Outcome>,
    /// Outcomes handed to the recorder and not yet committed.
    unrecorded: Arc<AtomicUsize>,
}

/// How far the recorder is behind, shared with the claim loop.
struct Backlog {
    unrecorded: Arc<AtomicUsize>,
    /// Rung after every batch the recorder finishes: slots may be free again.
    recorded: Arc<Notify>,
}

async fn attempt(context: Arc<AttemptContext>, delivery: Claimed) {
    let outcome = attempt_outcome(&context, &delivery).await;
    if let Some(record) = &outcome.attempt_record {
        let latency = Duration::from_millis(u64::try_from(record.latency_ms).unwrap_or(0));
        metrics::attempt(record.error_class, latency);
        if record.succeeded {
            let since_publish = chrono::Utc::now() - delivery.event_created_at;
            metrics::delivered_after(since_publish.to_std().unwrap_or_default());
        }
    }
    let error_class = outcome
        .attempt_record
        .as_ref()
        .and_then(|r| r.error_class)
        .or(match &outcome.follow_up {
            FollowUp::DeadLetter { class, .. } => *class,
            _ => None,
        });
    // Failures are worth a line at the default level; successes only when debugging.
    if error_class.is_some() {
        tracing::info!(
            delivery_id = %delivery.id,
            event_id = %delivery.event_id,
            endpoint_id = %delivery.endpoint_id,
            attempt = delivery.attempt,
            error_class,
            follow_up = ?outcome.follow_up,
            "attempt failed"
        );
    } else {
        tracing::debug!(
            delivery_id = %delivery.id,
            event_id = %delivery.event_id,
            endpoint_id = %delivery.endpoint_id,
            attempt = delivery.attempt,
            "attempt succeeded"
        );
    }
    // The recorder outlives every send task; a failed send here means shutdown already gave up
    // on recording, and the lease will expire.
    context.unrecorded.fetch_add(1, Ordering::AcqRel);
    if context.outcomes.send(outcome).is_err() {
        context.unrecorded.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The retry policy of a delivery: the endpoint's overrides over the worker's defaults.
fn policy_for(delivery: &Claimed, defaults: RetryPolicy) -> RetryPolicy {
    let ms = |v: Option<i64>| {
        v.and_then(|v| u64::try_from(v).ok())
            .map(Duration::from_millis)
    };
    let base = ms(delivery.retry_base_ms).unwrap_or(defaults.base);
    RetryPolicy {
        max_attempts: delivery
            .max_attempts
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(defaults.max_attempts),
        base,
        // An endpoint may raise its base above the global cap: the cap follows.
        cap: ms(delivery.retry_cap_ms).unwrap_or(defaults.cap).max(base),
    }
}

async fn attempt_outcome(context: &AttemptContext, delivery: &Claimed) -> Outcome {
    let policy = policy_for(delivery, context.config.retry);
    let attempt_in_budget = u32::try_from(delivery.attempt - delivery.budget_start).unwrap_or(0);
    let not_sent = |class: ErrorClass, message: String| Outcome {
        delivery_id: delivery.id,
        endpoint_id: delivery.endpoint_id,
        attempt: delivery.attempt,
        attempt_record: None,
        follow_up: FollowUp::DeadLetter {
            class: Some(class.as_str()),
            message: Some(message),
        },
        disable_endpoint: false,
        health: None,
        laned: delivery.laned,
    };
    if !delivery.endpoint_enabled {
        return not_sent(
            ErrorClass::EndpointDisabled,
            "the endpoint is disabled".into(),
        );
    }
    // Only expired leases (a worker died mid-attempt) can push the count past the budget.
    if attempt_in_budget > policy.max_attempts {
        return not_sent(
            ErrorClass::LeaseExpired,
            format!(
                "no outcome was recorded for {} attempts (their workers stopped)",
                policy.max_attempts
            ),
        );
    }
    let secrets = match &delivery.secrets {
        Ok(secrets) => secrets,
        Err(e) => return not_sent(ErrorClass::InvalidSecret, format!("unusable secret: {e}")),
    };

    let msg_id = delivery.event_id.to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let body = webhook_body(delivery);
    // During a rotation the previous secret signs too: receivers accept either signature.
    let signature = secrets
        .iter()
        .map(|secret| signing::sign(secret, &msg_id, timestamp, body.as_bytes()))
        .collect::<Vec<_>>()
        .join(" ");
    let timeout = delivery
        .timeout_ms
        .and_then(|ms| u64::try_from(ms).ok())
        .map_or(context.config.default_timeout, Duration::from_millis);
    let (result, latency) = context
        .sender
        .send(Webhook {
            url: &delivery.url,
            msg_id: &msg_id,
            timestamp,
            signature: &signature,
            body,
            timeout,
            headers: custom_headers(&delivery.headers),
        })
        .await;

    let verdict = outcome::classify(&result);
    let record = attempt_record(&result, verdict, latency);
    // Only answers that say the receiver is up or down count for its circuit: a 4xx refusal
    // (other than 429) comes from a receiver that is up but will not take this webhook.
    let health = match verdict {
        Verdict::Succeeded => Some(Health::Up),
        Verdict::Retry { .. } => Some(Health::Down),
        Verdict::DeadLetter { .. } => None,
    };
    let (follow_up, disable_endpoint) = match verdict {
        Verdict::Succeeded => (FollowUp::None, false),
        Verdict::Retry { retry_after } if policy.allows_another(attempt_in_budget) => {
            let jitter: f64 = rand::rng().random();
            let delay = policy.next_delay(attempt_in_budget, retry_after, jitter);
            (FollowUp::Retry { delay }, false)
        }
        Verdict::Retry { .. } => (
            FollowUp::DeadLetter {
                class: Some("retries_exhausted"),
                message: None,
            },
            false,
        ),
        Verdict::DeadLetter { disable_endpoint } => (
            FollowUp::DeadLetter {
                class: None,
                message: None,
            },
            disable_endpoint,
        ),
    };
    Outcome {
        delivery_id: delivery.id,
        endpoint_id: delivery.endpoint_id,
        attempt: delivery.attempt,
        attempt_record: Some(record),
        follow_up,
        disable_endpoint,
        health,
        laned: delivery.laned,
    }
}

fn attempt_record(result: &AttemptResult, verdict: Verdict, latency: Duration) -> AttemptRecord {
    let latency_ms = i32::try_from(latency.as_millis()).unwrap_or(i32::MAX);
    match result {
        AttemptResult::Responded {
            status, excerpt, ..
        } => {
            let succeeded = verdict == Verdict::Succeeded;
            AttemptRecord {
                succeeded,
                http_status: Some(i32::from(*status)),
                latency_ms,
                error_class: (!succeeded).then_some(ErrorClass::HttpStatus.as_str()),
                error_message: (!succeeded).then(|| format!("HTTP {status}")),
                response_excerpt: (!excerpt.is_empty()).then(|| excerpt.clone()),
            }
        }
        AttemptResult::Failed { class, message } => AttemptRecord {
            succeeded: false,
            http_status: None,
            latency_ms,
            error_class: Some(class.as_str()),
            error_message: Some(message.clone()),
            response_excerpt: None,
        },
    }
}

fn custom_headers(stored: &serde_json::Value) -> Vec<(String, String)> {
    stored
        .as_object()
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// `{"type", "timestamp", "data"}`, with the payload spliced in as published.
fn webhook_body(delivery: &Claimed) -> String {
    let event_type = serde_json::Value::String(delivery.event_type.clone());
    let timestamp = delivery
        .event_created_at
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    format!(
        r#"{{"type":{event_type},"timestamp":"{timestamp}","data":{}}}"#,
        delivery.payload
    )
}

/// Writes outcomes in batches (group commit) until every sender is gone and the queue is empty.
/// A failed write is retried: the outcome of a webhook that was sent is not thrown away while the
/// lease still holds.
async fn record_outcomes(
    store: Store,
    worker_id: String,
    circuit: CircuitPolicy,
    mut outcomes: mpsc::UnboundedReceiver<Outcome>,
    backlog: Backlog,
) {
    let mut batch = Vec::with_capacity(OUTCOME_BATCH);
    while outcomes.recv_many(&mut batch, OUTCOME_BATCH).await > 0 {
        let mut delay = Duration::from_millis(100);
        let mut tries = 0;
        loop {
            match deliveries::delivery_outcomes_record(&store, &worker_id, &batch, &circuit).await {
                Ok(recorded) => {
                    if recorded.len() < batch.len() {
                        tracing::warn!(
                            lost = batch.len() - recorded.len(),
                            "outcomes arrived after their lease was taken over; dropped"
                        );
                    }
                    break;
                }
                Err(e) => {
                    tries += 1;
                    // Past a few minutes every lease in the batch has expired and been reclaimed.
                    if tries > 40 {
                        tracing::error!(error = %e, "giving up on recording outcomes");
                        break;
                    }
                    tracing::warn!(error = %e, "cannot record outcomes; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        backlog.unrecorded.fetch_sub(batch.len(), Ordering::AcqRel);
        backlog.recorded.notify_one();
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_splices_the_payload_verbatim() {
        let delivery = Claimed {
            id: DeliveryId::generate(),
            event_id: crate::ids::EventId::generate(),
            endpoint_id: crate::ids::EndpointId::generate(),
            attempt: 1,
            budget_start: 0,
            url: String::new(),
            secrets: Ok(Vec::new()),
            endpoint_enabled: true,
            max_attempts: None,
            retry_base_ms: None,
            retry_cap_ms: None,
            timeout_ms: None,
            headers: serde_json::json!({}),
            event_type: "order.\"shipped\"".into(),
            payload: r#"{"b": 1,  "a": [true]}"#.into(),
            event_created_at: chrono::DateTime::parse_from_rfc3339("2026-05-01T12:00:00.5Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
            laned: false,
        };
        let body = webhook_body(&delivery);
        assert_eq!(
            body,
            r#"{"type":"order.\"shipped\"","timestamp":"2026-05-01T12:00:00.500Z","data":{"b": 1,  "a": [true]}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["data"]["a"][0], true);
    }

    #[test]
    fn the_claim_floor_follows_claims_and_falls_back_to_the_head() {
        let mut floor = ClaimFloor::default();
        let start = Instant::now();
        assert_eq!(floor.take(start, false), ScanFloor::Head, "the first claim");
        assert_eq!(floor.head_scan_due(), None);

        let began = chrono::Utc::now();
        let reached = began + chrono::TimeDelta::seconds(300);
        let batch = |reached| ClaimBatch {
            reached,
            began: Some(began),
            ..ClaimBatch::default()
        };
        let full = batch(Some(reached));
        floor.claimed(&full, true, false);
        assert_eq!(
            floor.take(Instant::now(), false),
            ScanFloor::After {
                began,
                reached: Some(reached)
            }
        );
        assert_eq!(floor.head_scan_due(), Some(start + HEAD_SCAN_EVERY));

        // A short claim took everything due above its floor: only its time is left.
        floor.claimed(&full, false, false);
        let short = ScanFloor::After {
            began,
            reached: None,
        };
        assert_eq!(floor.peek(), short);
        assert_eq!(floor.after_short_claim(), short);

        // What can leave due deliveries behind below the position sends the next claim to the
        // head: a full batch of expired leases (their scan's limit), quotas, an error.
        floor.claimed(&batch(None), true, false);
        assert_eq!(floor.peek(), ScanFloor::Head);
        floor.claimed(&full, true, true);
        assert_eq!(floor.peek(), ScanFloor::Head, "quotas");
        floor.claimed(&full, true, false);
        assert_eq!(floor.take(Instant::now(), true), ScanFloor::Head, "quotas");
        assert_eq!(
            floor.after_short_claim(),
            ScanFloor::Head,
            "after a claim from the head, the next due time is read from the head too"
        );
        floor.claimed(&full, true, false);
        floor.forget();
        assert_eq!(floor.peek(), ScanFloor::Head, "after an error");

        // However claims go, the head is scanned again once HEAD_SCAN_EVERY has passed.
        floor.claimed(&full, true, false);
        floor.head_scanned = Instant::now().checked_sub(HEAD_SCAN_EVERY);
        assert_eq!(floor.take(Instant::now(), false), ScanFloor::Head);
    }
}
