//! Apps (tenants), their API keys, and their endpoints.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::{Store, StoreError};
use crate::ids::{ApiKeyId, AppId, EndpointId};
use crate::secret::{ApiKey, SigningSecret};

/// An app as created.
#[derive(Debug, Clone)]
pub struct App {
    pub id: AppId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// What an endpoint is created with.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub app_id: AppId,
    pub url: String,
    pub description: String,
    /// `None` subscribes to every event type.
    pub event_types: Option<Vec<String>>,
    pub secret: SigningSecret,
    pub max_attempts: Option<i32>,
    pub retry_base_ms: Option<i64>,
    pub retry_cap_ms: Option<i64>,
    pub timeout_ms: Option<i64>,
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
    pub max_attempts: Option<i32>,
    pub retry_base_ms: Option<i64>,
    pub retry_cap_ms: Option<i64>,
    pub timeout_ms: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// Inserts an app.
async fn app_insert(
    client: &impl GenericClient,
    id: AppId,
    name: &str,
) -> Result<DateTime<Utc>, StoreError> {
    let stmt = client
        .prepare_cached("INSERT INTO apps (id, name) VALUES ($1, $2) RETURNING created_at")
        .await?;
    Ok(client.query_one(&stmt, &[&id.0, &name]).await?.try_get(0)?)
}

/// Inserts an API key for an app (its hash only).
async fn api_key_insert(
    client: &impl GenericClient,
    id: ApiKeyId,
    app_id: AppId,
    key: &ApiKey,
    name: Option<&str>,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached("INSERT INTO api_keys (id, app_id, key_hash, name) VALUES ($1, $2, $3, $4)")
        .await?;
    client
        .execute(&stmt, &[&id.0, &app_id.0, &key.hash().as_slice(), &name])
        .await?;
    Ok(())
}

/// The app a presented key belongs to, if the key exists and is not revoked.
pub async fn api_key_find_app(store: &Store, key: &ApiKey) -> Result<Option<AppId>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached("SELECT app_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
        .await?;
    let row = client.query_opt(&stmt, &[&key.hash().as_slice()]).await?;
    Ok(row.map(|r| r.try_get(0).map(AppId)).transpose()?)
}

/// Creates an app with its first API key, in one transaction.
pub async fn app_create(store: &Store, name: &str) -> Result<(App, ApiKey), StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let id = AppId::generate();
    let created_at = app_insert(&tx, id, name).await?;
    let key = ApiKey::generate();
    api_key_insert(&tx, ApiKeyId::generate(), id, &key, Some("default")).await?;
    tx.commit().await?;
    let app = App {
        id,
        name: name.to_owned(),
        created_at,
    };
    Ok((app, key))
}

/// Inserts an endpoint.
pub async fn endpoint_insert(store: &Store, new: &NewEndpoint) -> Result<Endpoint, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO endpoints (id, app_id, url, description, event_types, secret,
                                    max_attempts, retry_base_ms, retry_cap_ms, timeout_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             RETURNING created_at",
        )
        .await?;
    let id = EndpointId::generate();
    let row = client
        .query_one(
            &stmt,
            &[
                &id.0,
                &new.app_id.0,
                &new.url,
                &new.description,
                &new.event_types,
                &new.secret.expose(),
                &new.max_attempts,
                &new.retry_base_ms,
                &new.retry_cap_ms,
                &new.timeout_ms,
            ],
        )
        .await?;
    Ok(Endpoint {
        id,
        app_id: new.app_id,
        url: new.url.clone(),
        description: new.description.clone(),
        event_types: new.event_types.clone(),
        enabled: true,
        disabled_reason: None,
        max_attempts: new.max_attempts,
        retry_base_ms: new.retry_base_ms,
        retry_cap_ms: new.retry_cap_ms,
        timeout_ms: new.timeout_ms,
        created_at: row.try_get(0)?,
    })
}

/// Disables endpoints (a receiver answered 410 Gone): no new deliveries are created for them and
/// their pending ones are dead-lettered when claimed.
pub async fn endpoints_disable(
    client: &impl GenericClient,
    ids: &[uuid::Uuid],
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

/// One endpoint of an app.
pub async fn endpoint_get(
    store: &Store,
    app_id: AppId,
    id: EndpointId,
) -> Result<Option<Endpoint>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "SELECT url, description, event_types, enabled, disabled_reason, max_attempts,
                    retry_base_ms, retry_cap_ms, timeout_ms, created_at
             FROM endpoints WHERE id = $1 AND app_id = $2",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&id.0, &app_id.0]).await? else {
        return Ok(None);
    };
    Ok(Some(Endpoint {
        id,
        app_id,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        event_types: row.try_get("event_types")?,
        enabled: row.try_get("enabled")?,
        disabled_reason: row.try_get("disabled_reason")?,
        max_attempts: row.try_get("max_attempts")?,
        retry_base_ms: row.try_get("retry_base_ms")?,
        retry_cap_ms: row.try_get("retry_cap_ms")?,
        timeout_ms: row.try_get("timeout_ms")?,
        created_at: row.try_get("created_at")?,
    }))
}
