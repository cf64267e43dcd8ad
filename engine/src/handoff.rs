//! Leasing at publish: the hand-off from a process's publisher to the worker in the same process.
//!
//! When the worker has idle slots and the queue had nothing due at its last claim, a publish
//! transaction may lease the deliveries it creates to that worker itself (create_deliveries.sql
//! and its by-type form) and hand them over once it commits. They skip what a queued delivery
//! waits for: the NOTIFY, the claim statement and its commit. Nothing else changes: the lease,
//! its log row and its expiry are the claim's, so a process that dies with handed-off
//! deliveries leaves them to be claimed again when their leases run out, like any other.
//!
//! The worker offers slots only while nothing due waits in the queue and no endpoint it is
//! sending to hangs, so handed-off deliveries never pass queued ones or crowd a hanging
//! endpoint's quota. The publisher reserves slots before its transaction; the worker counts
//! reserved slots as busy until the deliveries arrive or the reservation is dropped.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::store::deliveries::Claimed;
use crate::store::ingest::LeaseAtPublish;

/// The publisher's side: reserves the worker's offered slots and hands leased deliveries over.
#[derive(Debug, Clone)]
pub struct Handoff {
    shared: Arc<Shared>,
}

/// The worker's side: offers slots and receives what was leased to it.
#[derive(Debug)]
pub struct HandoffInbox {
    shared: Arc<Shared>,
    deliveries: mpsc::UnboundedReceiver<Vec<Claimed>>,
}

#[derive(Debug)]
struct Shared {
    worker_id: String,
    default_timeout: Duration,
    lease_margin: Duration,
    slots: Mutex<Slots>,
    deliveries: mpsc::UnboundedSender<Vec<Claimed>>,
}

#[derive(Debug, Default)]
struct Slots {
    /// Slots a publisher may still reserve.
    offered: usize,
    /// Slots reserved by publishers, or holding deliveries on their way to the worker.
    reserved: usize,
}

impl Shared {
    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        // The counters stay meaningful whatever panicked while holding them.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Creates both sides for a worker's lease settings.
pub fn handoff(
    worker_id: &str,
    default_timeout: Duration,
    lease_margin: Duration,
) -> (Handoff, HandoffInbox) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        worker_id: worker_id.to_owned(),
        default_timeout,
        lease_margin,
        slots: Mutex::new(Slots::default()),
        deliveries: sender,
    });
    (
        Handoff {
            shared: shared.clone(),
        },
        HandoffInbox {
            shared,
            deliveries: receiver,
        },
    )
}

impl Handoff {
    /// Reserves up to `want` of the slots the worker offers; `None` when it offers none.
    pub fn reserve(&self, want: usize) -> Option<Reservation> {
        let mut slots = self.shared.slots();
        let n = want.min(slots.offered);
        if n == 0 {
            return None;
        }
        slots.offered -= n;
        slots.reserved += n;
        Some(Reservation {
            shared: self.shared.clone(),
            slots: n,
        })
    }
}

/// Slots reserved for one publish transaction. Dropped unused, they are the worker's again.
#[derive(Debug)]
pub struct Reservation {
    shared: Arc<Shared>,
    slots: usize,
}

impl Reservation {
    /// How many deliveries the transaction may lease.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// What the publish transaction may lease, to whom, and for how long.
    pub fn lease(&self) -> LeaseAtPublish<'_> {
        LeaseAtPublish {
            worker_id: &self.shared.worker_id,
            slots: self.slots,
            default_timeout: self.shared.default_timeout,
            lease_margin: self.shared.lease_margin,
        }
    }

    /// Hands the deliveries the committed transaction leased to the worker; the slots they do
    /// not fill are freed. Should the worker have stopped, their leases expire and they are
    /// claimed again.
    pub fn deliver(mut self, leased: Vec<Claimed>) {
        let used = leased.len().min(self.slots);
        self.shared.slots().reserved -= self.slots - used;
        self.slots = 0;
        if leased.is_empty() {
            return;
        }
        if self.shared.deliveries.send(leased).is_err() {
            self.shared.slots().reserved -= used;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.slots > 0 {
            self.shared.slots().reserved -= self.slots;
        }
    }
}

impl HandoffInbox {
    /// Offers publishers the slots that are free apart from those they already hold: `free`
    /// counts the worker's own sends only. One lock, so that a reservation cannot slip in
    /// between reading what is held and offering the rest.
    pub fn offer(&self, free: usize) {
        let mut slots = self.shared.slots();
        slots.offered = free.saturating_sub(slots.reserved);
    }

    /// Withdraws the offer: publishes lease nothing more until the next offer.
    pub fn withdraw(&self) {
        self.shared.slots().offered = 0;
    }

    /// Slots publishers hold: busy, as far as the worker's own claims are concerned.
    pub fn reserved(&self) -> usize {
        self.shared.slots().reserved
    }

    /// The next batch of deliveries leased to this worker at publish; their slots now count
    /// as the worker's sends.
    pub async fn recv(&mut self) -> Option<Vec<Claimed>> {
        let batch = self.deliveries.recv().await?;
        let mut slots = self.shared.slots();
        slots.reserved = slots.reserved.saturating_sub(batch.len());
        Some(batch)
    }

    /// Stops taking deliveries: the offer is withdrawn, and what was already handed over is
    /// returned, for the worker to release.
    pub fn close(&mut self) -> Vec<Claimed> {
        self.withdraw();
        self.deliveries.close();
        let mut left = Vec::new();
        while let Ok(batch) = self.deliveries.try_recv() {
            let mut slots = self.shared.slots();
            slots.reserved = slots.reserved.saturating_sub(batch.len());
            left.extend(batch);
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_take_only_what_is_offered_and_give_back_what_they_do_not_use() {
        let (handoff, inbox) = handoff("w", Duration::from_secs(15), Duration::from_secs(30));
        assert!(handoff.reserve(4).is_none(), "nothing is offered yet");
        inbox.offer(3);
        let first = handoff.reserve(2).map(|r| r.slots());
        assert_eq!(first, Some(2));
        assert_eq!(inbox.reserved(), 0, "a dropped reservation frees its slots");
        let held = handoff.reserve(5);
        assert_eq!(held.as_ref().map(Reservation::slots), Some(1));
        assert_eq!(inbox.reserved(), 1);
        assert!(handoff.reserve(1).is_none(), "the offer is used up");
        inbox.offer(4);
        assert_eq!(
            handoff.reserve(9).map(|r| r.slots()),
            Some(3),
            "what publishers hold is not offered again"
        );
        held.into_iter().for_each(|r| r.deliver(Vec::new()));
        assert_eq!(inbox.reserved(), 0);
    }
}
