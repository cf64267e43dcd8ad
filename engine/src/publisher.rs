//! Group commit for publishing: publish requests that arrive while a publish transaction runs
//! share the next one, so that concurrent single-event requests cost one transaction, not one
//! each.
//!
//! The invariant it keeps is the API's: a request is answered only after the commit that holds
//! all of its events and their deliveries, and its answer is what publishing it alone would have
//! given. A group whose transaction fails for a reason one request could have caused (an
//! idempotency key reused with another body, an unknown endpoint, a statement error) is published
//! again one request at a time, so no request's fate depends on another's.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::handoff::{Handoff, Reservation};
use crate::ids::{AppId, EndpointId};
use crate::store::ingest::{self, IdempotencyKey, NewEvent, PublishOutcome};
use crate::store::{Store, StoreError};

/// Events one shared transaction takes at most, unless a single request brings more.
const GROUP_EVENTS: usize = 1000;

/// An event to publish, owned, so that it can wait for a transaction in another task.
#[derive(Debug, Clone)]
pub struct EventToPublish {
    pub event_type: String,
    /// The payload as JSON text.
    pub payload: String,
    /// Deliver to exactly these endpoints instead of matching by type.
    pub endpoint_ids: Option<Vec<EndpointId>>,
    /// The producer's idempotency key and the hash of the request it came with.
    pub idempotency: Option<(String, [u8; 32])>,
}

impl EventToPublish {
    fn as_new_event(&self) -> NewEvent<'_> {
        NewEvent {
            event_type: &self.event_type,
            payload: &self.payload,
            endpoint_ids: self.endpoint_ids.as_deref(),
            idempotency: self
                .idempotency
                .as_ref()
                .map(|(key, request_hash)| IdempotencyKey {
                    key,
                    request_hash: *request_hash,
                }),
        }
    }
}

type Reply = oneshot::Sender<Result<PublishOutcome, StoreError>>;

#[derive(Debug)]
struct Request {
    app_id: AppId,
    events: Vec<EventToPublish>,
    reply: Reply,
}

/// Hands publish requests to committer tasks. Cloning shares the committers.
#[derive(Debug, Clone)]
pub struct Publisher {
    requests: mpsc::UnboundedSender<Request>,
}

impl Publisher {
    /// Starts `committers` tasks, each running one publish transaction at a time: while one
    /// commits, the next gathers what arrived meanwhile. With `handoff`, a group's transaction
    /// leases new deliveries to the worker of this process when it has idle slots. The tasks end
    /// when every `Publisher` clone is dropped.
    pub fn start(store: Store, committers: usize, handoff: Option<Handoff>) -> Self {
        let (requests, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..committers.max(1) {
            tokio::spawn(commit_groups(store.clone(), queue.clone(), handoff.clone()));
        }
        Self { requests }
    }

    /// Publishes a batch of events: every one commits, or none does (see
    /// [`ingest::events_publish`]).
    pub async fn publish(
        &self,
        app_id: AppId,
        events: Vec<EventToPublish>,
    ) -> Result<PublishOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            app_id,
            events,
            reply,
        };
        if self.requests.send(request).is_err() {
            return Err(StoreError::Unavailable("the publisher has stopped".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the publisher has stopped".into())))
    }
}

async fn commit_groups(
    store: Store,
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Request>>>,
    handoff: Option<Handoff>,
) {
    loop {
        let mut gathered = Vec::new();
        {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut events = first.events.len();
            gathered.push(first);
            while events < GROUP_EVENTS {
                let Ok(next) = queue.try_recv() else { break };
                events += next.events.len();
                gathered.push(next);
            }
        }
        // One transaction per app: the ingest statements are scoped to one app.
        while !gathered.is_empty() {
            let app_id = gathered[0].app_id;
            let (group, rest): (Vec<Request>, Vec<Request>) =
                gathered.into_iter().partition(|r| r.app_id == app_id);
            gathered = rest;
            commit_group(&store, app_id, group, handoff.as_ref()).await;
        }
    }
}

/// Publishes the group's requests in one transaction, or one by one when it cannot.
async fn commit_group(
    store: &Store,
    app_id: AppId,
    group: Vec<Request>,
    handoff: Option<&Handoff>,
) {
    let events: Vec<NewEvent<'_>> = group
        .iter()
        .flat_map(|r| r.events.iter().map(EventToPublish::as_new_event))
        .collect();
    // Most events go to one endpoint: a slot per event; more deliveries than that are queued.
    let mut reservation = handoff.and_then(|h| h.reserve(events.len()));
    let lease = reservation.as_ref().map(Reservation::lease);
    if group.len() > 1 || lease.is_some() {
        match ingest::events_publish_leasing(store, app_id, &events, lease).await {
            Ok((PublishOutcome::Published(mut published), leased)) => {
                if let Some(reservation) = reservation.take() {
                    reservation.deliver(leased);
                }
                for request in group {
                    let rest = published.split_off(request.events.len().min(published.len()));
                    let mine = std::mem::replace(&mut published, rest);
                    let _ = request.reply.send(Ok(PublishOutcome::Published(mine)));
                }
                return;
            }
            // The database is away: it is away for each of them too; answer all at once rather
            // than wait for it once per request.
            Err(e) if e.is_unavailable() => {
                let reason = e.to_string();
                for request in group {
                    let _ = request
                        .reply
                        .send(Err(StoreError::Unavailable(reason.clone())));
                }
                return;
            }
            // One request alone: its answer, whatever it is.
            Ok((outcome, _)) if group.len() == 1 => {
                if let Some(request) = group.into_iter().next() {
                    let _ = request.reply.send(Ok(outcome));
                }
                return;
            }
            Err(e) if group.len() == 1 => {
                if let Some(request) = group.into_iter().next() {
                    let _ = request.reply.send(Err(e));
                }
                return;
            }
            // Nothing committed; one request may be at fault. Each gets its own answer below.
            Ok(_) | Err(_) => {}
        }
    }
    // Publishing one by one leases nothing: the slots go back.
    drop(reservation);
    for request in group {
        let outcome = publish_alone(store, app_id, &request.events).await;
        let _ = request.reply.send(outcome);
    }
}

async fn publish_alone(
    store: &Store,
    app_id: AppId,
    events: &[EventToPublish],
) -> Result<PublishOutcome, StoreError> {
    let events: Vec<NewEvent<'_>> = events.iter().map(EventToPublish::as_new_event).collect();
    ingest::events_publish(store, app_id, &events).await
}
