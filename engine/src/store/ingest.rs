//! Ingestion: an event, the deliveries it fans out to and its idempotency record commit in one
//! transaction, and the delivery log's trigger rings the workers on that commit.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::ids::{AppId, DeliveryId, EndpointId, EventId};

/// An event to publish.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    pub app_id: AppId,
    pub event_type: &'a str,
    /// The payload as JSON text; delivered byte for byte.
    pub payload: &'a str,
    pub idempotency: Option<IdempotencyKey<'a>>,
}

/// A producer's `Idempotency-Key`, with a hash of the request it came with.
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

/// What publishing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The event is committed with its deliveries.
    Created(Published),
    /// The idempotency key was used before with the same request: the original result.
    Replayed(Published),
    /// The idempotency key was used before with a different request.
    KeyConflict,
}

/// Records an idempotency key; false when the app already used it. When another transaction is
/// inserting the same key right now, this waits for it to commit or roll back.
async fn idempotency_key_insert(
    client: &impl GenericClient,
    app_id: AppId,
    key: &IdempotencyKey<'_>,
    event_id: EventId,
) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO idempotency_keys (app_id, key, request_hash, event_id)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (app_id, key) DO NOTHING",
        )
        .await?;
    let inserted = client
        .execute(
            &stmt,
            &[
                &app_id.0,
                &key.key,
                &key.request_hash.as_slice(),
                &event_id.0,
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// The request hash and event of an app's idempotency key.
async fn idempotency_key_find(
    client: &impl GenericClient,
    app_id: AppId,
    key: &str,
) -> Result<Option<(Vec<u8>, EventId)>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT request_hash, event_id FROM idempotency_keys WHERE app_id = $1 AND key = $2",
        )
        .await?;
    let row = client.query_opt(&stmt, &[&app_id.0, &key]).await?;
    row.map(|r| Ok((r.try_get(0)?, EventId(r.try_get(1)?))))
        .transpose()
}

/// Inserts the event itself.
async fn event_insert(
    client: &impl GenericClient,
    id: EventId,
    event: &NewEvent<'_>,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO events (id, app_id, event_type, payload) VALUES ($1, $2, $3, $4::text::json)",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[&id.0, &event.app_id.0, &event.event_type, &event.payload],
        )
        .await?;
    Ok(())
}

/// Creates the event's deliveries with their `created` log rows.
async fn deliveries_create_for_event(
    client: &impl GenericClient,
    app_id: AppId,
    event_id: EventId,
    event_type: &str,
) -> Result<Vec<(DeliveryId, EndpointId)>, StoreError> {
    let stmt = client
        .prepare_cached(include_str!("create_deliveries.sql"))
        .await?;
    let rows = client
        .query(&stmt, &[&app_id.0, &event_id.0, &event_type])
        .await?;
    rows.iter().map(delivery_pair).collect()
}

/// The deliveries an event fanned out to.
async fn event_deliveries_list(
    client: &impl GenericClient,
    event_id: EventId,
) -> Result<Vec<(DeliveryId, EndpointId)>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT id, endpoint_id FROM deliveries WHERE event_id = $1 ORDER BY id")
        .await?;
    let rows = client.query(&stmt, &[&event_id.0]).await?;
    rows.iter().map(delivery_pair).collect()
}

fn delivery_pair(row: &tokio_postgres::Row) -> Result<(DeliveryId, EndpointId), StoreError> {
    let id: Uuid = row.try_get(0)?;
    let endpoint: Uuid = row.try_get(1)?;
    Ok((DeliveryId(id), EndpointId(endpoint)))
}

/// Publishes an event: everything commits together or nothing does.
pub async fn event_publish(
    store: &Store,
    event: &NewEvent<'_>,
) -> Result<PublishOutcome, StoreError> {
    let mut client = store.client().await?;
    let event_id = EventId::generate();
    let tx = client.transaction().await?;
    if let Some(key) = &event.idempotency
        && !idempotency_key_insert(&tx, event.app_id, key, event_id).await?
    {
        tx.rollback().await?;
        return idempotent_replay(&client, event.app_id, key).await;
    }
    event_insert(&tx, event_id, event).await?;
    let deliveries =
        deliveries_create_for_event(&tx, event.app_id, event_id, event.event_type).await?;
    tx.commit().await?;
    Ok(PublishOutcome::Created(Published {
        event_id,
        deliveries,
    }))
}

async fn idempotent_replay(
    client: &impl GenericClient,
    app_id: AppId,
    key: &IdempotencyKey<'_>,
) -> Result<PublishOutcome, StoreError> {
    let Some((hash, event_id)) = idempotency_key_find(client, app_id, key.key).await? else {
        // Keys are never removed before they are a day old (today: never).
        return Err(StoreError::Corrupt(
            "idempotency key vanished between insert and lookup".into(),
        ));
    };
    if hash != key.request_hash {
        return Ok(PublishOutcome::KeyConflict);
    }
    let deliveries = event_deliveries_list(client, event_id).await?;
    Ok(PublishOutcome::Replayed(Published {
        event_id,
        deliveries,
    }))
}
