//! Endpoints: where an app's webhooks go.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::circuits::{self, Circuit};
use super::lanes;
use super::{Store, StoreError, deliveries};
use crate::ids::{AppId, EndpointId};
use crate::metrics::Transition;
use crate::secret::SigningSecret;

/// What an endpoint is created with.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub app_id: AppId,
    pub url: String,
    pub description: String,
    /// `None` subscribes to every event type.
    pub event_types: Option<Vec<String>>,
    pub secret: SigningSecret,
    pub headers: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
    pub policy: EndpointPolicy,
    /// Deliver in publish order, one at a time.
    pub ordered: bool,
}

/// Per-endpoint overrides of the global retry policy and timeout (`None`: the global value),
/// and the endpoint's limits (`None`: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointPolicy {
    pub max_attempts: Option<i32>,
    pub retry_base_ms: Option<i64>,
    pub retry_cap_ms: Option<i64>,
    pub timeout_ms: Option<i64>,
    /// Deliveries active at once (in flight or waiting for a retry), across every worker.
    pub max_in_flight: Option<i32>,
    /// Deliveries sent per second at most, across every worker.
    pub rate_limit_per_s: Option<i32>,
}

/// An endpoint as stored (its secret stays in the database).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: EndpointId,
    pub app_id: AppId,
    pub url: String,
    pub description: String,
    pub event_types: Option<Vec<String>>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
    pub policy: EndpointPolicy,
    /// Deliveries created while this holds reach the endpoint in publish order, one at a time.
    pub ordered: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Its circuit breaker.
    pub circuit: Circuit,
}

/// A partial update: `None` leaves a field alone; for the nullable ones `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Option<Vec<String>>>,
    pub headers: Option<BTreeMap<String, String>>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub max_attempts: Option<Option<i32>>,
    pub retry_base_ms: Option<Option<i64>>,
    pub retry_cap_ms: Option<Option<i64>>,
    pub timeout_ms: Option<Option<i64>>,
    pub max_in_flight: Option<Option<i32>>,
    pub rate_limit_per_s: Option<Option<i32>>,
    pub ordered: Option<bool>,
}

/// The columns every endpoint read returns, in [`endpoint_from_row`]'s terms.
macro_rules! endpoint_columns {
    () => {
        "id, app_id, url, description, event_types, enabled, disabled_reason, headers, metadata,
         max_attempts, retry_base_ms, retry_cap_ms, timeout_ms, max_in_flight, rate_limit_per_s,
         ordered, created_at, updated_at,
         (SELECT json_build_object('state', c.state, 'consecutive_failures',
                                   c.consecutive_failures, 'open_until', c.open_until,
                                   'failing_since', c.failing_since,
                                   'last_success_at', c.last_success_at,
                                   'changed_at', c.changed_at)
          FROM endpoint_circuits c WHERE c.endpoint_id = endpoints.id) AS circuit"
    };
}

fn string_map(value: serde_json::Value) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt(format!("endpoint map: {e}")))
}

fn endpoint_from_row(r: &tokio_postgres::Row) -> Result<Endpoint, StoreError> {
    Ok(Endpoint {
        id: EndpointId(r.try_get("id")?),
        app_id: AppId(r.try_get("app_id")?),
        url: r.try_get("url")?,
        description: r.try_get("description")?,
        event_types: r.try_get("event_types")?,
        enabled: r.try_get("enabled")?,
        disabled_reason: r.try_get("disabled_reason")?,
        headers: string_map(r.try_get("headers")?)?,
        metadata: string_map(r.try_get("metadata")?)?,
        policy: EndpointPolicy {
            max_attempts: r.try_get("max_attempts")?,
            retry_base_ms: r.try_get("retry_base_ms")?,
            retry_cap_ms: r.try_get("retry_cap_ms")?,
            timeout_ms: r.try_get("timeout_ms")?,
            max_in_flight: r.try_get("max_in_flight")?,
            rate_limit_per_s: r.try_get("rate_limit_per_s")?,
        },
        ordered: r.try_get("ordered")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        circuit: match r.try_get::<_, Option<serde_json::Value>>("circuit")? {
            Some(value) => serde_json::from_value(value)
                .map_err(|e| StoreError::Corrupt(format!("endpoint circuit: {e}")))?,
            None => Circuit::default(),
        },
    })
}

fn json_map(map: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}

/// Inserts an endpoint.
pub async fn endpoint_insert(store: &Store, new: &NewEndpoint) -> Result<Endpoint, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(concat!(
            "INSERT INTO endpoints (id, app_id, url, description, event_types, secret, headers,
                                    metadata, max_attempts, retry_base_ms, retry_cap_ms, timeout_ms,
                                    ordered, max_in_flight, rate_limit_per_s)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             RETURNING ",
            endpoint_columns!()
        ))
        .await?;
    let id = EndpointId::generate();
    let sealed = store.seal_secret(id, &new.secret)?;
    let row = client
        .query_one(
            &stmt,
            &[
                &id.0,
                &new.app_id.0,
                &new.url,
                &new.description,
                &new.event_types,
                &sealed,
                &json_map(&new.headers),
                &json_map(&new.metadata),
                &new.policy.max_attempts,
                &new.policy.retry_base_ms,
                &new.policy.retry_cap_ms,
                &new.policy.timeout_ms,
                &new.ordered,
                &new.policy.max_in_flight,
                &new.policy.rate_limit_per_s,
            ],
        )
        .await?;
    endpoint_from_row(&row)
}

/// One live endpoint of an app.
pub async fn endpoint_get(
    store: &Store,
    app_id: AppId,
    id: EndpointId,
) -> Result<Option<Endpoint>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM endpoints WHERE id = $1 AND app_id = $2 AND deleted_at IS NULL"
        ))
        .await?;
    client
        .query_opt(&stmt, &[&id.0, &app_id.0])
        .await?
        .as_ref()
        .map(endpoint_from_row)
        .transpose()
}

/// An app's live endpoints, newest first, after the cursor.
pub async fn endpoints_list(
    store: &Store,
    app_id: AppId,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Endpoint>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM endpoints
              WHERE app_id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR id < $2)
              ORDER BY id DESC LIMIT $3"
        ))
        .await?;
    let rows = client.query(&stmt, &[&app_id.0, &before, &limit]).await?;
    rows.iter().map(endpoint_from_row).collect()
}

/// Applies a partial update to a live endpoint, in one transaction. When its lane changes
/// (ordering or the in-flight limit), deliveries waiting in it go as far as the new room allows:
/// all at once when it has no lane any more.
pub async fn endpoint_update(
    store: &Store,
    app_id: AppId,
    id: EndpointId,
    patch: &EndpointPatch,
) -> Result<Option<Endpoint>, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let Some(endpoint) = endpoint_update_apply(&tx, app_id, id, patch).await? else {
        return Ok(None);
    };
    let resumed = if patch.ordered.is_some()
        || patch.max_in_flight.is_some()
        || patch.rate_limit_per_s.is_some()
    {
        deliveries::deliveries_resume_parked(&tx, &[id.0], "lane_changed").await?
            + lanes::lanes_advance(&tx, &[id.0]).await?
    } else {
        0
    };
    tx.commit().await?;
    crate::metrics::transition(Transition::Resumed, resumed);
    Ok(Some(endpoint))
}

/// Updates a live endpoint's columns.
async fn endpoint_update_apply(
    client: &impl GenericClient,
    app_id: AppId,
    id: EndpointId,
    patch: &EndpointPatch,
) -> Result<Option<Endpoint>, StoreError> {
    // For nullable columns a flag says whether to set them, so that null can be set.
    let stmt = client
        .prepare_cached(concat!(
            "UPDATE endpoints SET
                 url = coalesce($3, url),
                 description = coalesce($4, description),
                 event_types = CASE WHEN $5 THEN $6 ELSE event_types END,
                 headers = coalesce($7, headers),
                 metadata = coalesce($8, metadata),
                 max_attempts = CASE WHEN $9 THEN $10 ELSE max_attempts END,
                 retry_base_ms = CASE WHEN $11 THEN $12 ELSE retry_base_ms END,
                 retry_cap_ms = CASE WHEN $13 THEN $14 ELSE retry_cap_ms END,
                 timeout_ms = CASE WHEN $15 THEN $16 ELSE timeout_ms END,
                 ordered = coalesce($17, ordered),
                 max_in_flight = CASE WHEN $18 THEN $19 ELSE max_in_flight END,
                 rate_limit_per_s = CASE WHEN $20 THEN $21 ELSE rate_limit_per_s END,
                 updated_at = now()
             WHERE id = $1 AND app_id = $2 AND deleted_at IS NULL
             RETURNING ",
            endpoint_columns!()
        ))
        .await?;
    let event_types = patch.event_types.clone().flatten();
    let row = client
        .query_opt(
            &stmt,
            &[
                &id.0,
                &app_id.0,
                &patch.url,
                &patch.description,
                &patch.event_types.is_some(),
                &event_types,
                &patch.headers.as_ref().map(json_map),
                &patch.metadata.as_ref().map(json_map),
                &patch.max_attempts.is_some(),
                &patch.max_attempts.flatten(),
                &patch.retry_base_ms.is_some(),
                &patch.retry_base_ms.flatten(),
                &patch.retry_cap_ms.is_some(),
                &patch.retry_cap_ms.flatten(),
                &patch.timeout_ms.is_some(),
                &patch.timeout_ms.flatten(),
                &patch.ordered,
                &patch.max_in_flight.is_some(),
                &patch.max_in_flight.flatten(),
                &patch.rate_limit_per_s.is_some(),
                &patch.rate_limit_per_s.flatten(),
            ],
        )
        .await?;
    row.as_ref().map(endpoint_from_row).transpose()
}

/// Enables or disables a live endpoint, in one transaction. Enabling clears the reason it was
/// disabled for. Either way its circuit starts again closed and its parked deliveries are due:
/// delivered once enabled, dead-lettered when claimed once disabled.
pub async fn endpoint_set_enabled(
    store: &Store,
    app_id: AppId,
    id: EndpointId,
    enabled: bool,
) -> Result<Option<Endpoint>, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let Some(endpoint) = endpoint_enabled_set(&tx, app_id, id, enabled).await? else {
        return Ok(None);
    };
    circuits::endpoint_circuits_reset(&tx, &[id.0]).await?;
    let class = if enabled {
        "endpoint_enabled"
    } else {
        "endpoint_disabled"
    };
    let resumed = deliveries::deliveries_resume_parked(&tx, &[id.0], class).await?
        + lanes::lanes_advance(&tx, &[id.0]).await?;
    tx.commit().await?;
    crate::metrics::transition(Transition::Resumed, resumed);
    Ok(Some(Endpoint {
        circuit: Circuit::default(),
        ..endpoint
    }))
}

/// Sets whether a live endpoint is enabled.
async fn endpoint_enabled_set(
    client: &impl GenericClient,
    app_id: AppId,
    id: EndpointId,
    enabled: bool,
) -> Result<Option<Endpoint>, StoreError> {
    let stmt = client
        .prepare_cached(concat!(
            "UPDATE endpoints
             SET enabled = $3,
                 disabled_reason = CASE WHEN $3 THEN NULL ELSE 'disabled through the API' END,
                 updated_at = now()
             WHERE id = $1 AND app_id = $2 AND deleted_at IS NULL
             RETURNING ",
            endpoint_columns!()
        ))
        .await?;
    let row = client
        .query_opt(&stmt, &[&id.0, &app_id.0, &enabled])
        .await?;
    row.as_ref().map(endpoint_from_row).transpose()
}

/// Marks live endpoints deleted (one, or with `id` `None` all of the app's) and disabled;
/// returns their ids.
pub(crate) async fn endpoints_mark_deleted(
    client: &impl GenericClient,
    app_id: AppId,
    id: Option<EndpointId>,
) -> Result<Vec<Uuid>, StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE endpoints
             SET deleted_at = now(), enabled = false, disabled_reason = 'deleted', updated_at = now()
             WHERE app_id = $1 AND ($2::uuid IS NULL OR id = $2) AND deleted_at IS NULL
             RETURNING id",
        )
        .await?;
    let rows = client
        .query(&stmt, &[&app_id.0, &id.map(|id| id.0)])
        .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(StoreError::from))
        .collect()
}

/// Deletes an endpoint and cancels its pending deliveries, in one transaction. Deliveries in
/// flight finish their attempt; a retry after that is dead-lettered (the endpoint is disabled).
pub async fn endpoint_delete(
    store: &Store,
    app_id: AppId,
    id: EndpointId,
) -> Result<bool, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let deleted = endpoints_mark_deleted(&tx, app_id, Some(id)).await?;
    if deleted.is_empty() {
        return Ok(false);
    }
    let cancelled =
        deliveries::deliveries_cancel_pending(&tx, &deleted, "the endpoint was deleted").await?;
    tx.commit().await?;
    crate::metrics::transition(Transition::Cancelled, cancelled);
    Ok(true)
}

/// Disables endpoints (a receiver answered 410 Gone): no new deliveries are created for them and
/// their pending ones are dead-lettered when claimed.
pub async fn endpoints_disable(
    client: &impl GenericClient,
    ids: &[Uuid],
    reason: &str,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE endpoints SET enabled = false, disabled_reason = $2, updated_at = now()
             WHERE id = ANY ($1) AND enabled",
        )
        .await?;
    client.execute(&stmt, &[&ids, &reason]).await?;
    Ok(())
}
