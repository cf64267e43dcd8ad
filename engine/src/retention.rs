//! Retention: the background sweep that keeps the database from growing without bound.
//!
//! Every `every`, one node (an advisory lock decides which) walks the events older than the
//! delivered age, oldest first, a page per transaction, and removes those whose deliveries are
//! all final and past their age, with their deliveries and log rows; then it expires idempotency
//! records. Pages are short transactions on rows no worker claims (final deliveries), so the
//! sweep never holds up delivery. Dead letters keep their own, longer age, so an operator has
//! time to redrive them.

use std::time::Duration;

use rand::RngExt as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metrics;
use crate::store::retention::{
    Cutoffs, PageRemoved, idempotency_keys_expire, retention_remove_page,
};
use crate::store::{Store, StoreError};

/// How long history is kept, and how often the sweep runs.
#[derive(Debug, Clone, Copy)]
pub struct RetentionPolicy {
    /// Events whose deliveries all succeeded or were cancelled, counted from the last change.
    pub delivered: Duration,
    /// Events with a dead-lettered delivery, counted from the dead-lettering.
    pub dead: Duration,
    /// Idempotency records: a key is honoured at least this long.
    pub idempotency: Duration,
    /// Time between sweeps.
    pub every: Duration,
}

/// Why a policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("dead letters must be kept at least as long as delivered history")]
    DeadShorterThanDelivered,
    #[error("the sweep interval must be positive")]
    ZeroInterval,
}

impl RetentionPolicy {
    /// Checks that dead letters outlive delivered history: the database's delete guard allows
    /// one cutoff, the delivered one.
    pub fn validate(self) -> Result<Self, PolicyError> {
        if self.dead < self.delivered {
            return Err(PolicyError::DeadShorterThanDelivered);
        }
        if self.every.is_zero() {
            return Err(PolicyError::ZeroInterval);
        }
        Ok(self)
    }
}

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub events: u64,
    pub deliveries: u64,
    pub log_rows: u64,
    pub idempotency_keys: u64,
    /// Another node held the sweep lock, so this sweep stopped early.
    pub yielded: bool,
}

/// Events looked at per transaction: small enough that a page's locks and WAL stay short.
const PAGE_SIZE: i64 = 500;

/// Idempotency records deleted per statement.
const IDEMPOTENCY_BATCH: i64 = 5_000;

/// One full pass over expired history, then over expired idempotency records.
pub async fn sweep(store: &Store, policy: &RetentionPolicy) -> Result<Swept, StoreError> {
    let cutoffs = Cutoffs {
        delivered: policy.delivered,
        dead: policy.dead,
    };
    let mut swept = Swept::default();
    let mut after = Uuid::nil();
    loop {
        let Some(page) = retention_remove_page(store, cutoffs, after, PAGE_SIZE).await? else {
            swept.yielded = true;
            return Ok(swept);
        };
        let PageRemoved {
            last_event_id,
            events,
            deliveries,
            log_rows,
        } = page;
        swept.events += events;
        swept.deliveries += deliveries;
        swept.log_rows += log_rows;
        metrics::retention_removed(events, deliveries, log_rows, 0);
        match last_event_id {
            Some(last) => after = last,
            None => break,
        }
    }
    loop {
        let expired = idempotency_keys_expire(store, policy.idempotency, IDEMPOTENCY_BATCH).await?;
        swept.idempotency_keys += expired;
        metrics::retention_removed(0, 0, 0, expired);
        if expired < IDEMPOTENCY_BATCH as u64 {
            break;
        }
    }
    Ok(swept)
}

/// Sweeps every `policy.every` until `shutdown`; the first sweep comes after a random part of
/// one interval, so that nodes started together do not sweep in step.
pub async fn run(store: Store, policy: RetentionPolicy, shutdown: CancellationToken) {
    let first = policy.every.mul_f64(rand::rng().random::<f64>());
    let mut next = tokio::time::Instant::now() + first;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(next) => {}
        }
        next = tokio::time::Instant::now() + policy.every;
        let started = std::time::Instant::now();
        let swept = tokio::select! {
            () = shutdown.cancelled() => return,
            swept = sweep(&store, &policy) => swept,
        };
        match swept {
            Ok(s) if s.events + s.deliveries + s.idempotency_keys > 0 => tracing::info!(
                events = s.events,
                deliveries = s.deliveries,
                log_rows = s.log_rows,
                idempotency_keys = s.idempotency_keys,
                took_ms = started.elapsed().as_millis() as u64,
                "retention removed expired history"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; next sweep retries"),
        }
    }
}
