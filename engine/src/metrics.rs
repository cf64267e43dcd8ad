//! Every metric hookd exports: names, help texts, units and labels, in one place, recorded through
//! the `metrics` facade (the binary installs the Prometheus exporter).
//!
//! Cardinality is bounded by construction: no label carries an app, endpoint, event or delivery
//! id, or any other value a client chooses. Labels take values from closed sets (outcome, error
//! class, wake-up cause, delivery state, route template, method, status code). Per-endpoint
//! figures come from the API (`GET /v1/endpoints/{id}/stats`), not from series.

use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use tokio_util::sync::CancellationToken;

use crate::delivery::DeliveryState;
use crate::store::{Store, delivery_reads};

pub const EVENTS_PUBLISHED: &str = "hookd_events_published_total";
pub const DELIVERIES_CREATED: &str = "hookd_deliveries_created_total";
pub const ATTEMPTS: &str = "hookd_delivery_attempts_total";
pub const ATTEMPT_DURATION: &str = "hookd_delivery_attempt_duration_seconds";
pub const TRANSITIONS: &str = "hookd_delivery_transitions_total";
pub const PUBLISH_TO_DELIVERED: &str = "hookd_delivery_publish_to_delivered_seconds";
pub const DELIVERIES_BY_STATE: &str = "hookd_deliveries";
pub const OLDEST_DUE_AGE: &str = "hookd_oldest_due_delivery_age_seconds";
pub const WAKEUPS: &str = "hookd_worker_wakeups_total";
pub const CLAIM_BATCH: &str = "hookd_worker_claim_batch_size";
pub const HANDED_OFF: &str = "hookd_worker_handed_off_total";
pub const CLAIM_DURATION: &str = "hookd_worker_claim_duration_seconds";
pub const IN_FLIGHT: &str = "hookd_worker_in_flight";
pub const POOL_CONNECTIONS: &str = "hookd_db_pool_connections";
pub const POOL_WAITING: &str = "hookd_db_pool_waiting";
pub const DB_ERRORS: &str = "hookd_db_errors_total";
pub const HTTP_REQUESTS: &str = "hookd_http_requests_total";
pub const HTTP_DURATION: &str = "hookd_http_request_duration_seconds";
pub const RETENTION_REMOVED: &str = "hookd_retention_removed_total";
pub const CIRCUIT_TRANSITIONS: &str = "hookd_circuit_transitions_total";
pub const ENDPOINTS_AUTO_DISABLED: &str = "hookd_endpoints_auto_disabled_total";

/// Every metric name, for the test that keeps docs/OBSERVABILITY.md complete.
pub const ALL: &[&str] = &[
    EVENTS_PUBLISHED,
    DELIVERIES_CREATED,
    ATTEMPTS,
    ATTEMPT_DURATION,
    TRANSITIONS,
    PUBLISH_TO_DELIVERED,
    DELIVERIES_BY_STATE,
    OLDEST_DUE_AGE,
    WAKEUPS,
    CLAIM_BATCH,
    HANDED_OFF,
    CLAIM_DURATION,
    IN_FLIGHT,
    POOL_CONNECTIONS,
    POOL_WAITING,
    DB_ERRORS,
    HTTP_REQUESTS,
    HTTP_DURATION,
    RETENTION_REMOVED,
    CIRCUIT_TRANSITIONS,
    ENDPOINTS_AUTO_DISABLED,
];

/// Bucket bounds of the latency histograms, in seconds: from a loopback receiver's milliseconds
/// to the retry schedule's hours.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 1800.0, 3600.0, 21600.0, 86400.0,
];

/// Bucket bounds of the claim batch size histogram.
pub const BATCH_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];

/// Registers help texts and units; call once after installing a recorder.
pub fn describe() {
    describe_counter!(EVENTS_PUBLISHED, "Events accepted (committed) by the API.");
    describe_counter!(
        DELIVERIES_CREATED,
        "Deliveries created by published events (one per subscribed endpoint)."
    );
    describe_counter!(
        ATTEMPTS,
        "Webhook attempts by result (success, failure) and error class (none when it succeeded)."
    );
    describe_histogram!(
        ATTEMPT_DURATION,
        Unit::Seconds,
        "Time from sending a webhook to its answer or failure, by result."
    );
    describe_counter!(
        TRANSITIONS,
        "Delivery state changes by what they lead to: succeeded, retry_scheduled, dead, \
         redriven, cancelled."
    );
    describe_histogram!(
        PUBLISH_TO_DELIVERED,
        Unit::Seconds,
        "Time from an event's publication to its delivery's successful attempt."
    );
    describe_gauge!(
        DELIVERIES_BY_STATE,
        "Deliveries by state, read from the database on an interval."
    );
    describe_gauge!(
        OLDEST_DUE_AGE,
        Unit::Seconds,
        "How long the oldest due, unclaimed delivery has been due (0 when none is)."
    );
    describe_counter!(
        WAKEUPS,
        "Worker loop wake-ups by cause: notify (a NOTIFY), scan (after the LISTEN connection \
         (re)connects), timer (a due time or a lease expiry), capacity (a send finished)."
    );
    describe_histogram!(CLAIM_BATCH, "Deliveries claimed per claim statement.");
    describe_counter!(
        HANDED_OFF,
        "Deliveries a publish in the worker's own process leased to it, which it sent without \
         a claim."
    );
    describe_histogram!(
        CLAIM_DURATION,
        Unit::Seconds,
        "Time the claim statement took, successful claims only (a long queue or dead tuples at \
         its head show here first)."
    );
    describe_gauge!(IN_FLIGHT, "Webhooks this worker is sending right now.");
    describe_gauge!(
        POOL_CONNECTIONS,
        "Database pool connections by state (in_use, idle) and the pool's maximum (max)."
    );
    describe_gauge!(POOL_WAITING, "Tasks waiting for a database connection.");
    describe_counter!(
        DB_ERRORS,
        "Failed database statements by kind: unavailable (no connection) or statement."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "API requests by route template, method and status code."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "API request handling time by route template and method."
    );
    describe_counter!(
        CIRCUIT_TRANSITIONS,
        "Endpoint circuit state changes, by the state entered: open, half_open, closed."
    );
    describe_counter!(
        ENDPOINTS_AUTO_DISABLED,
        "Endpoints disabled automatically after failing without a success for too long."
    );
    describe_counter!(
        RETENTION_REMOVED,
        "Rows the retention sweep removed, by what: events, deliveries, log_rows, idempotency_keys."
    );
}

/// Creates the counters' known series at zero, so that rates and alerts see a 0 from the first
/// scrape instead of no data until the first occurrence.
pub fn zero_counters() {
    counter!(EVENTS_PUBLISHED).absolute(0);
    counter!(DELIVERIES_CREATED).absolute(0);
    counter!(ATTEMPTS, "result" => "success", "error_class" => "none").absolute(0);
    for to in Transition::ALL {
        counter!(TRANSITIONS, "to" => to.as_str()).absolute(0);
    }
    for cause in WakeCause::ALL {
        counter!(WAKEUPS, "cause" => cause.as_str()).absolute(0);
    }
    for unavailable in [true, false] {
        counter!(DB_ERRORS, "kind" => db_error_kind(unavailable)).absolute(0);
    }
    for what in RETAINED {
        counter!(RETENTION_REMOVED, "what" => what).absolute(0);
    }
    for to in CIRCUIT_STATES {
        counter!(CIRCUIT_TRANSITIONS, "to" => to).absolute(0);
    }
    counter!(ENDPOINTS_AUTO_DISABLED).absolute(0);
}

/// The `to` label of the circuit transitions counter.
const CIRCUIT_STATES: [&str; 3] = ["open", "half_open", "closed"];

/// An endpoint's circuit entered `to` (a state the database named).
pub fn circuit_transition(to: &str) {
    if let Some(to) = CIRCUIT_STATES.into_iter().find(|s| *s == to) {
        counter!(CIRCUIT_TRANSITIONS, "to" => to).increment(1);
    }
}

pub fn endpoints_auto_disabled(count: u64) {
    counter!(ENDPOINTS_AUTO_DISABLED).increment(count);
}

/// The `what` label of the retention counter.
const RETAINED: [&str; 4] = ["events", "deliveries", "log_rows", "idempotency_keys"];

/// Rows one retention step removed.
pub fn retention_removed(events: u64, deliveries: u64, log_rows: u64, idempotency_keys: u64) {
    for (what, n) in RETAINED
        .into_iter()
        .zip([events, deliveries, log_rows, idempotency_keys])
    {
        if n > 0 {
            counter!(RETENTION_REMOVED, "what" => what).increment(n);
        }
    }
}

/// What a delivery's state change leads to (the `to` label of the transitions counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Succeeded,
    RetryScheduled,
    Dead,
    Redriven,
    Cancelled,
    /// Parked behind an open circuit.
    Deferred,
    /// Due again after its circuit closed.
    Resumed,
}

impl Transition {
    const ALL: [Self; 7] = [
        Self::Succeeded,
        Self::RetryScheduled,
        Self::Dead,
        Self::Redriven,
        Self::Cancelled,
        Self::Deferred,
        Self::Resumed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::RetryScheduled => "retry_scheduled",
            Self::Dead => "dead",
            Self::Redriven => "redriven",
            Self::Cancelled => "cancelled",
            Self::Deferred => "deferred",
            Self::Resumed => "resumed",
        }
    }
}

pub fn events_published(events: usize, deliveries: usize) {
    counter!(EVENTS_PUBLISHED).increment(events as u64);
    counter!(DELIVERIES_CREATED).increment(deliveries as u64);
}

/// One attempt that was made; `error_class` is `None` on success.
pub fn attempt(error_class: Option<&'static str>, duration: Duration) {
    let result = if error_class.is_none() {
        "success"
    } else {
        "failure"
    };
    counter!(ATTEMPTS, "result" => result, "error_class" => error_class.unwrap_or("none"))
        .increment(1);
    histogram!(ATTEMPT_DURATION, "result" => result).record(duration.as_secs_f64());
}

pub fn transition(to: Transition, count: u64) {
    counter!(TRANSITIONS, "to" => to.as_str()).increment(count);
}

pub fn delivered_after(publish_to_delivered: Duration) {
    histogram!(PUBLISH_TO_DELIVERED).record(publish_to_delivered.as_secs_f64());
}

/// Sets every state's gauge each time, so a state that empties reads 0.
pub fn deliveries_by_state(counts: &[(String, i64)], oldest_due: Duration) {
    for state in DeliveryState::ALL.iter().map(|s| s.as_str()) {
        let count = counts
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        gauge!(DELIVERIES_BY_STATE, "state" => state).set(count as f64);
    }
    gauge!(OLDEST_DUE_AGE).set(oldest_due.as_secs_f64());
}

/// Why the worker loop woke up.
#[derive(Debug, Clone, Copy)]
pub enum WakeCause {
    Notify,
    Scan,
    Timer,
    Capacity,
}

impl WakeCause {
    const ALL: [Self; 4] = [Self::Notify, Self::Scan, Self::Timer, Self::Capacity];

    fn as_str(self) -> &'static str {
        match self {
            Self::Notify => "notify",
            Self::Scan => "scan",
            Self::Timer => "timer",
            Self::Capacity => "capacity",
        }
    }
}

pub fn wakeup(cause: WakeCause) {
    counter!(WAKEUPS, "cause" => cause.as_str()).increment(1);
}

pub fn handed_off(deliveries: usize) {
    counter!(HANDED_OFF).increment(deliveries as u64);
}

pub fn claimed(batch: usize, in_flight: usize, took: Duration) {
    histogram!(CLAIM_BATCH).record(batch as f64);
    histogram!(CLAIM_DURATION).record(took.as_secs_f64());
    gauge!(IN_FLIGHT).set(in_flight as f64);
}

pub fn pool(in_use: usize, idle: usize, max: usize, waiting: usize) {
    gauge!(POOL_CONNECTIONS, "state" => "in_use").set(in_use as f64);
    gauge!(POOL_CONNECTIONS, "state" => "idle").set(idle as f64);
    gauge!(POOL_CONNECTIONS, "state" => "max").set(max as f64);
    gauge!(POOL_WAITING).set(waiting as f64);
}

pub fn db_error(unavailable: bool) {
    counter!(DB_ERRORS, "kind" => db_error_kind(unavailable)).increment(1);
}

fn db_error_kind(unavailable: bool) -> &'static str {
    if unavailable {
        "unavailable"
    } else {
        "statement"
    }
}

/// One API request; `route` is the route's template (`/v1/endpoints/{id}`), never the raw path.
pub fn http_request(route: &str, method: &str, status: u16, duration: Duration) {
    let labels = [
        ("route", route.to_owned()),
        ("method", method.to_owned()),
        ("status", status.to_string()),
    ];
    counter!(HTTP_REQUESTS, &labels).increment(1);
    histogram!(HTTP_DURATION, &labels[..2]).record(duration.as_secs_f64());
}

/// Refreshes the gauges that come from the database (deliveries by state, oldest due age, pool
/// use) every `every` until `shutdown`: one pair of queries per interval, however often the
/// endpoint is scraped.
pub async fn refresh_from_database(store: Store, every: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let status = store.pool_status();
        pool(
            status.size.saturating_sub(status.available),
            status.available,
            status.max_size,
            status.waiting,
        );
        let counts = delivery_reads::delivery_counts_by_state(&store).await;
        let oldest = delivery_reads::delivery_oldest_due_age(&store).await;
        match (counts, oldest) {
            (Ok(counts), Ok(oldest)) => deliveries_by_state(&counts, oldest),
            // Already counted as a database error; the gauges keep their last values.
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot refresh the delivery gauges");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_list_every_metric() {
        let docs = include_str!("../../docs/OBSERVABILITY.md");
        for name in ALL {
            assert!(
                docs.contains(&format!("| `{name}` |")),
                "docs/OBSERVABILITY.md has no row for {name}"
            );
        }
    }
}
