//! Ingestion: events, the deliveries they fan out to and their idempotency records commit in one
//! transaction, and the delivery log's trigger rings the workers on that commit. A single
//! publish is a batch of one; every step is one statement for the whole batch.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::deliveries::{Claimed, claimed_from_row};
use super::{Store, StoreError, millis};
use crate::fairness;
use crate::ids::{AppId, DeliveryId, EndpointId, EventId};

/// An event to publish.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    pub event_type: &'a str,
    /// The payload as JSON text.
    pub payload: &'a str,
    /// Deliver to exactly these endpoints instead of matching by type.
    pub endpoint_ids: Option<&'a [EndpointId]>,
    pub idempotency: Option<IdempotencyKey<'a>>,
}

/// A producer's idempotency key, with a hash of the request it came with.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyKey<'a> {
    pub key: &'a str,
    pub request_hash: [u8; 32],
}

/// A published event and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub event_id: EventId,
    /// Ordered by delivery id.
    pub deliveries: Vec<(DeliveryId, EndpointId)>,
}

/// What publishing a batch did. Either every event is committed (or replayed) or none is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// One entry per event, in order: committed now, or the original of a replayed key.
    Published(Vec<Published>),
    /// The event at `index` reuses an idempotency key with a different request.
    KeyConflict { index: usize },
    /// The event at `index` names endpoints the app does not have.
    UnknownEndpoints { index: usize, ids: Vec<EndpointId> },
}

/// Which of the given endpoints are the app's live ones.
async fn endpoints_live_of_app(
    client: &impl GenericClient,
    app_id: AppId,
    ids: &[Uuid],
) -> Result<HashSet<Uuid>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT id FROM endpoints WHERE id = ANY ($2) AND app_id = $1 AND deleted_at IS NULL",
        )
        .await?;
    let rows = client.query(&stmt, &[&app_id.0, &ids]).await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(StoreError::from))
        .collect()
}

/// Records idempotency keys; returns those this statement inserted. A key another transaction
/// is inserting right now makes this wait for it to commit or roll back. Of duplicates within
/// the batch, the first wins.
async fn idempotency_keys_insert(
    client: &impl GenericClient,
    app_id: AppId,
    keys: &[&str],
    hashes: &[&[u8]],
    event_ids: &[Uuid],
) -> Result<HashSet<String>, StoreError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO idempotency_keys (app_id, key, request_hash, event_id)
             SELECT $1, key, hash, event_id
             FROM unnest($2::text[], $3::bytea[], $4::uuid[]) WITH ORDINALITY
                  AS t(key, hash, event_id, n)
             ORDER BY n
             ON CONFLICT (app_id, key) DO NOTHING
             RETURNING key",
        )
        .await?;
    let rows = client
        .query(&stmt, &[&app_id.0, &keys, &hashes, &event_ids])
        .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(StoreError::from))
        .collect()
}

/// The request hash and event of each given key the app has used.
async fn idempotency_keys_find(
    client: &impl GenericClient,
    app_id: AppId,
    keys: &[&str],
) -> Result<HashMap<String, (Vec<u8>, Uuid)>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT key, request_hash, event_id FROM idempotency_keys
             WHERE app_id = $1 AND key = ANY ($2)",
        )
        .await?;
    let rows = client.query(&stmt, &[&app_id.0, &keys]).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?))))
        .collect()
}

const EVENTS_INSERT_SQL: &str = "INSERT INTO events (id, app_id, event_type, payload)
     SELECT id, $1, event_type, payload::json
     FROM unnest($2::uuid[], $3::text[], $4::text[]) AS t(id, event_type, payload)";

/// Inserts the events themselves.
async fn events_insert(
    client: &impl GenericClient,
    app_id: AppId,
    batch: &FreshEvents<'_>,
) -> Result<(), StoreError> {
    let stmt = client.prepare_cached(EVENTS_INSERT_SQL).await?;
    client
        .execute(
            &stmt,
            &[&app_id.0, &batch.ids, &batch.types, &batch.payloads],
        )
        .await?;
    Ok(())
}

const ENDPOINTS_LOCK_LANED_TARGETS_SQL: &str = "SELECT id FROM endpoints
     WHERE app_id = $1 AND enabled
       AND (ordered OR max_in_flight IS NOT NULL OR rate_limit_per_s IS NOT NULL)
       AND ((event_types IS NULL OR event_types && $2::text[]) OR id = ANY ($3))
     ORDER BY id
     FOR NO KEY UPDATE";

/// Locks the app's endpoints with a lane (ordered, or limited in flight or rate) that the batch may
/// reach (by type, or named), in id order: fan-out and promotion to a lane happen one
/// transaction at a time, each seeing the other's deliveries. Returns how many it locked; for
/// apps without such endpoints the index finds none and nothing waits.
async fn endpoints_lock_laned_targets(
    client: &impl GenericClient,
    app_id: AppId,
    batch: &FreshEvents<'_>,
) -> Result<u64, StoreError> {
    let stmt = client
        .prepare_cached(ENDPOINTS_LOCK_LANED_TARGETS_SQL)
        .await?;
    Ok(client
        .query(&stmt, &[&app_id.0, &batch.types, &batch.pair_endpoints])
        .await?
        .len() as u64)
}

const CREATE_DELIVERIES_SQL: &str = include_str!("create_deliveries.sql");
const CREATE_DELIVERIES_BY_TYPE_SQL: &str = include_str!("create_deliveries_by_type.sql");

/// Deliveries a publish may lease to a worker in its own process (engine/src/handoff.rs).
#[derive(Debug, Clone, Copy)]
pub struct LeaseAtPublish<'a> {
    pub worker_id: &'a str,
    /// At most this many.
    pub slots: usize,
    /// The worker's timeout for endpoints without their own, and its lease margin.
    pub default_timeout: Duration,
    pub lease_margin: Duration,
}

impl LeaseAtPublish<'_> {
    /// The fan-out statements' numbers for leasing: the slots, the default timeout and the
    /// margin (milliseconds); zeros when nothing is leased.
    fn numbers(lease: Option<Self>) -> (i64, i64, i64) {
        (
            lease.map_or(0, |l| i64::try_from(l.slots).unwrap_or(i64::MAX)),
            lease.map_or(0, |l| millis(l.default_timeout)),
            lease.map_or(0, |l| millis(l.lease_margin)),
        )
    }
}

/// The deliveries a publish created, and those of them it leased.
#[derive(Debug, Default)]
struct Created {
    deliveries: Vec<(Uuid, DeliveryId, EndpointId)>,
    leased: Vec<Claimed>,
}

impl Created {
    fn from_rows(store: &Store, rows: &[tokio_postgres::Row]) -> Result<Self, StoreError> {
        let mut created = Self::default();
        for r in rows {
            created.deliveries.push((
                r.try_get("event_id")?,
                DeliveryId(r.try_get("id")?),
                EndpointId(r.try_get("endpoint_id")?),
            ));
            if r.try_get("leased")? {
                created.leased.push(claimed_from_row(store, r)?);
            }
        }
        Ok(created)
    }
}

/// Creates the events' deliveries with their `created` log rows, leasing some when asked (see
/// `create_deliveries.sql`).
async fn deliveries_create_for_events(
    store: &Store,
    client: &impl GenericClient,
    app_id: AppId,
    batch: &FreshEvents<'_>,
    lease: Option<LeaseAtPublish<'_>>,
) -> Result<Created, StoreError> {
    let stmt = client.prepare_cached(CREATE_DELIVERIES_SQL).await?;
    let (slots, timeout, margin) = LeaseAtPublish::numbers(lease);
    let rows = client
        .query(
            &stmt,
            &[
                &app_id.0,
                &batch.ids,
                &batch.types,
                &batch.explicit,
                &batch.pair_events,
                &batch.pair_endpoints,
                &millis(fairness::FAIR_HORIZON),
                &fairness::FAIR_SPACING_MS,
                &lease.map(|l| l.worker_id),
                &slots,
                &timeout,
                &margin,
            ],
        )
        .await?;
    Created::from_rows(store, &rows)
}

/// Creates the deliveries of events that are all matched by type, like
/// [`deliveries_create_for_events`] but cheaper (see `create_deliveries_by_type.sql`); `None`,
/// having created nothing, when an endpoint they reach has a lane.
async fn deliveries_create_by_type_unless_laned(
    store: &Store,
    client: &impl GenericClient,
    app_id: AppId,
    batch: &FreshEvents<'_>,
    lease: Option<LeaseAtPublish<'_>>,
) -> Result<Option<Created>, StoreError> {
    let stmt = client.prepare_cached(CREATE_DELIVERIES_BY_TYPE_SQL).await?;
    let (slots, timeout, margin) = LeaseAtPublish::numbers(lease);
    let rows = client
        .query(
            &stmt,
            &[
                &app_id.0,
                &batch.ids,
                &batch.types,
                &millis(fairness::FAIR_HORIZON),
                &fairness::FAIR_SPACING_MS,
                &lease.map(|l| l.worker_id),
                &slots,
                &timeout,
                &margin,
            ],
        )
        .await?;
    for r in &rows {
        if r.try_get::<_, bool>("lane_found")? {
            return Ok(None);
        }
    }
    Created::from_rows(store, &rows).map(Some)
}

/// The events of a publish that are new (not replays), as the statements take them.
struct FreshEvents<'a> {
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    payloads: Vec<&'a str>,
    /// Whether each event names its endpoints.
    explicit: Vec<bool>,
    /// The named (event, endpoint) pairs.
    pair_events: Vec<Uuid>,
    pair_endpoints: Vec<Uuid>,
}

impl<'a> FreshEvents<'a> {
    fn new(batch: &[(Uuid, &NewEvent<'a>)]) -> Self {
        let mut pair_events = Vec::new();
        let mut pair_endpoints = Vec::new();
        for (id, event) in batch {
            for endpoint in event.endpoint_ids.unwrap_or_default() {
                pair_events.push(*id);
                pair_endpoints.push(endpoint.0);
            }
        }
        Self {
            ids: batch.iter().map(|(id, _)| *id).collect(),
            types: batch.iter().map(|(_, e)| e.event_type).collect(),
            payloads: batch.iter().map(|(_, e)| e.payload).collect(),
            explicit: batch
                .iter()
                .map(|(_, e)| e.endpoint_ids.is_some())
                .collect(),
            pair_events,
            pair_endpoints,
        }
    }
}

/// Inserts new events and fans them out: the events, the lock on their laned endpoints, then
/// their deliveries, in that order (and the full fan-out after them when the cheaper one finds
/// a lane). The three statements go out together (pipelined), one round trip instead of three,
/// which is most of a publish transaction's time under load. A statement is sent when its
/// future is first polled, the join polls them in its order (`biased`), and PostgreSQL runs
/// them in the order they arrive; preparing all three first (a cache hit after each
/// connection's first publish) keeps a first poll from waiting on a prepare, which would let a
/// later one go ahead.
async fn events_insert_and_fan_out(
    store: &Store,
    client: &impl GenericClient,
    app_id: AppId,
    batch: &FreshEvents<'_>,
    lease: Option<LeaseAtPublish<'_>>,
) -> Result<Created, StoreError> {
    // Events matched by type take the cheaper statement while none of their endpoints has a
    // lane; an event that names its endpoints (even none) takes the full one.
    let by_type = !batch.explicit.contains(&true);
    let fan_out_sql = if by_type {
        CREATE_DELIVERIES_BY_TYPE_SQL
    } else {
        CREATE_DELIVERIES_SQL
    };
    for sql in [
        EVENTS_INSERT_SQL,
        ENDPOINTS_LOCK_LANED_TARGETS_SQL,
        fan_out_sql,
    ] {
        client.prepare_cached(sql).await?;
    }
    if !by_type {
        let fan_out = deliveries_create_for_events(store, client, app_id, batch, lease);
        return events_insert_lock_and(client, app_id, batch, fan_out).await;
    }
    let fan_out = deliveries_create_by_type_unless_laned(store, client, app_id, batch, lease);
    match events_insert_lock_and(client, app_id, batch, fan_out).await? {
        Some(created) => Ok(created),
        // A lane among the endpoints: one more round trip, for apps that use lanes.
        None => deliveries_create_for_events(store, client, app_id, batch, lease).await,
    }
}

/// Sends the events insert, the lane lock and `fan_out` together, in that order.
async fn events_insert_lock_and<T>(
    client: &impl GenericClient,
    app_id: AppId,
    batch: &FreshEvents<'_>,
    fan_out: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    // All three answer before any error is looked at, in statement order: after the first
    // failure the others fail only because the transaction is aborted.
    let (inserted, locked, created) = tokio::join!(
        biased;
        events_insert(client, app_id, batch),
        endpoints_lock_laned_targets(client, app_id, batch),
        fan_out,
    );
    inserted?;
    locked?;
    created
}

/// The deliveries of earlier events, for replayed idempotency keys.
async fn deliveries_of_events(
    client: &impl GenericClient,
    event_ids: &[Uuid],
) -> Result<Vec<(Uuid, DeliveryId, EndpointId)>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT event_id, id, endpoint_id FROM deliveries
             WHERE event_id = ANY ($1) ORDER BY id",
        )
        .await?;
    let rows = client.query(&stmt, &[&event_ids]).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                DeliveryId(r.try_get(1)?),
                EndpointId(r.try_get(2)?),
            ))
        })
        .collect()
}

/// Publishes a batch of events: everything commits together or nothing does.
pub async fn events_publish(
    store: &Store,
    app_id: AppId,
    events: &[NewEvent<'_>],
) -> Result<PublishOutcome, StoreError> {
    Ok(events_publish_leasing(store, app_id, events, None).await?.0)
}

/// Publishes a batch of events like [`events_publish`], leasing up to `lease.slots` of the new
/// deliveries to the given worker in the same transaction; returns those beside the outcome.
pub async fn events_publish_leasing(
    store: &Store,
    app_id: AppId,
    events: &[NewEvent<'_>],
    lease: Option<LeaseAtPublish<'_>>,
) -> Result<(PublishOutcome, Vec<Claimed>), StoreError> {
    let mut client = store.client().await?;
    if let Some(outcome) = unknown_endpoints(&client, app_id, events).await? {
        return Ok((outcome, Vec::new()));
    }
    let event_ids: Vec<Uuid> = events.iter().map(|_| EventId::generate().0).collect();
    let tx = client.transaction().await?;

    // Which events replay an earlier request (same key, same body) instead of being new.
    let mut original: Vec<Option<Uuid>> = vec![None; events.len()];
    let keyed: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].idempotency.is_some())
        .collect();
    if !keyed.is_empty() {
        let key = |i: usize| events[i].idempotency.map_or("", |k| k.key);
        let keys: Vec<&str> = keyed.iter().map(|&i| key(i)).collect();
        let hashes: Vec<&[u8]> = keyed
            .iter()
            .map(|&i| {
                events[i]
                    .idempotency
                    .as_ref()
                    .map_or(&[][..], |k| &k.request_hash[..])
            })
            .collect();
        let ids: Vec<Uuid> = keyed.iter().map(|&i| event_ids[i]).collect();
        let inserted = idempotency_keys_insert(&tx, app_id, &keys, &hashes, &ids).await?;
        let mut first_use: HashSet<&str> = HashSet::new();
        let replays: Vec<usize> = keyed
            .iter()
            .copied()
            .filter(|&i| !(inserted.contains(key(i)) && first_use.insert(key(i))))
            .collect();
        if !replays.is_empty() {
            let replay_keys: Vec<&str> = replays.iter().map(|&i| key(i)).collect();
            let found = idempotency_keys_find(&tx, app_id, &replay_keys).await?;
            for i in replays {
                let Some((hash, event_id)) = found.get(key(i)) else {
                    return Err(StoreError::Corrupt(
                        "an idempotency key vanished within its transaction".into(),
                    ));
                };
                let same = events[i]
                    .idempotency
                    .is_some_and(|k| hash.as_slice() == k.request_hash);
                if !same {
                    tx.rollback().await?;
                    return Ok((PublishOutcome::KeyConflict { index: i }, Vec::new()));
                }
                original[i] = Some(*event_id);
            }
        }
    }

    let fresh: Vec<(Uuid, &NewEvent<'_>)> = (0..events.len())
        .filter(|&i| original[i].is_none())
        .map(|i| (event_ids[i], &events[i]))
        .collect();
    let mut deliveries = Vec::new();
    let mut leased = Vec::new();
    if !fresh.is_empty() {
        let created =
            events_insert_and_fan_out(store, &tx, app_id, &FreshEvents::new(&fresh), lease).await?;
        deliveries = created.deliveries;
        leased = created.leased;
    }
    let created = deliveries.len();
    let earlier: Vec<Uuid> = original
        .iter()
        .flatten()
        .copied()
        .filter(|id| !event_ids.contains(id))
        .collect();
    if !earlier.is_empty() {
        deliveries.extend(deliveries_of_events(&tx, &earlier).await?);
    }
    tx.commit().await?;
    crate::metrics::events_published(fresh.len(), created);

    let mut by_event: HashMap<Uuid, Vec<(DeliveryId, EndpointId)>> = HashMap::new();
    for (event, delivery, endpoint) in deliveries {
        by_event
            .entry(event)
            .or_default()
            .push((delivery, endpoint));
    }
    let published = (0..events.len())
        .map(|i| {
            let id = original[i].unwrap_or(event_ids[i]);
            let mut deliveries = by_event.get(&id).cloned().unwrap_or_default();
            deliveries.sort();
            Published {
                event_id: EventId(id),
                deliveries,
            }
        })
        .collect();
    Ok((PublishOutcome::Published(published), leased))
}

/// The first event naming an endpoint the app does not have, if any.
async fn unknown_endpoints(
    client: &impl GenericClient,
    app_id: AppId,
    events: &[NewEvent<'_>],
) -> Result<Option<PublishOutcome>, StoreError> {
    let named: Vec<Uuid> = events
        .iter()
        .flat_map(|e| e.endpoint_ids.unwrap_or_default())
        .map(|id| id.0)
        .collect();
    if named.is_empty() {
        return Ok(None);
    }
    let live = endpoints_live_of_app(client, app_id, &named).await?;
    for (index, event) in events.iter().enumerate() {
        let missing: Vec<EndpointId> = event
            .endpoint_ids
            .unwrap_or_default()
            .iter()
            .copied()
            .filter(|id| !live.contains(&id.0))
            .collect();
        if !missing.is_empty() {
            return Ok(Some(PublishOutcome::UnknownEndpoints {
                index,
                ids: missing,
            }));
        }
    }
    Ok(None)
}
