//! Apps (tenants) and their API keys.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{Store, StoreError, deliveries, endpoints};
use crate::ids::{ApiKeyId, AppId};
use crate::metrics::Transition;
use crate::secret::ApiKey;

/// An app.
#[derive(Debug, Clone)]
pub struct App {
    pub id: AppId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// An API key as listed: never the key itself.
#[derive(Debug, Clone)]
pub struct ApiKeyInfo {
    pub id: ApiKeyId,
    pub name: Option<String>,
    /// The key's last characters.
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

fn app_from_row(r: &tokio_postgres::Row) -> Result<App, StoreError> {
    Ok(App {
        id: AppId(r.try_get("id")?),
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
    })
}

fn key_from_row(r: &tokio_postgres::Row) -> Result<ApiKeyInfo, StoreError> {
    Ok(ApiKeyInfo {
        id: ApiKeyId(r.try_get("id")?),
        name: r.try_get("name")?,
        hint: r.try_get("hint")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

/// Inserts an app.
async fn app_insert(client: &impl GenericClient, id: AppId, name: &str) -> Result<App, StoreError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO apps (id, name) VALUES ($1, $2) RETURNING id, name, created_at",
        )
        .await?;
    app_from_row(&client.query_one(&stmt, &[&id.0, &name]).await?)
}

/// Inserts an API key for an app (its hash and hint only).
async fn api_key_insert(
    client: &impl GenericClient,
    app_id: AppId,
    key: &ApiKey,
    name: Option<&str>,
) -> Result<ApiKeyInfo, StoreError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO api_keys (id, app_id, key_hash, name, hint) VALUES ($1, $2, $3, $4, $5)
             RETURNING id, name, hint, created_at, revoked_at",
        )
        .await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &ApiKeyId::generate().0,
                &app_id.0,
                &key.hash().as_slice(),
                &name,
                &key.hint(),
            ],
        )
        .await?;
    key_from_row(&row)
}

/// Creates an app with its first API key, in one transaction.
pub async fn app_create(store: &Store, name: &str) -> Result<(App, ApiKey), StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let app = app_insert(&tx, AppId::generate(), name).await?;
    let key = ApiKey::generate();
    api_key_insert(&tx, app.id, &key, Some("default")).await?;
    tx.commit().await?;
    Ok((app, key))
}

/// Live apps, newest first, after the cursor.
pub async fn apps_list(
    store: &Store,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<App>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "SELECT id, name, created_at FROM apps
             WHERE deleted_at IS NULL AND ($1::uuid IS NULL OR id < $1)
             ORDER BY id DESC LIMIT $2",
        )
        .await?;
    let rows = client.query(&stmt, &[&before, &limit]).await?;
    rows.iter().map(app_from_row).collect()
}

/// How many live apps have a name other than `name`: `hookd demo` runs only on a database that
/// holds nothing but demo apps.
pub async fn apps_count_not_named(store: &Store, name: &str) -> Result<i64, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached("SELECT count(*) FROM apps WHERE deleted_at IS NULL AND name <> $1")
        .await?;
    Ok(client.query_one(&stmt, &[&name]).await?.try_get(0)?)
}

/// One live app.
pub async fn app_get(store: &Store, id: AppId) -> Result<Option<App>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "SELECT id, name, created_at FROM apps WHERE id = $1 AND deleted_at IS NULL",
        )
        .await?;
    client
        .query_opt(&stmt, &[&id.0])
        .await?
        .as_ref()
        .map(app_from_row)
        .transpose()
}

/// Marks an app deleted; false when there is no such live app.
async fn app_mark_deleted(client: &impl GenericClient, id: AppId) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached("UPDATE apps SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL")
        .await?;
    Ok(client.execute(&stmt, &[&id.0]).await? == 1)
}

/// Revokes every key of an app.
async fn api_keys_revoke_all(client: &impl GenericClient, app_id: AppId) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE api_keys SET revoked_at = now() WHERE app_id = $1 AND revoked_at IS NULL",
        )
        .await?;
    client.execute(&stmt, &[&app_id.0]).await?;
    Ok(())
}

/// Deletes an app: its keys are revoked, its endpoints are deleted and their pending deliveries
/// cancelled, all in one transaction. History stays queryable in the database. Processes that
/// remember its keys (key_cache.rs) forget them within a second, the caller's at once.
pub async fn app_delete(store: &Store, id: AppId) -> Result<bool, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    if !app_mark_deleted(&tx, id).await? {
        return Ok(false);
    }
    api_keys_revoke_all(&tx, id).await?;
    let endpoint_ids = endpoints::endpoints_mark_deleted(&tx, id, None).await?;
    let cancelled =
        deliveries::deliveries_cancel_pending(&tx, &endpoint_ids, "the app was deleted").await?;
    tx.commit().await?;
    crate::metrics::transition(Transition::Cancelled, cancelled);
    Ok(true)
}

/// The app a presented key belongs to, if the key is live and its app is not deleted.
pub async fn api_key_find_app(store: &Store, key: &ApiKey) -> Result<Option<AppId>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "SELECT k.app_id FROM api_keys k JOIN apps a ON a.id = k.app_id
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND a.deleted_at IS NULL",
        )
        .await?;
    let row = client.query_opt(&stmt, &[&key.hash().as_slice()]).await?;
    Ok(row.map(|r| r.try_get(0).map(AppId)).transpose()?)
}

/// Creates another API key for an app.
pub async fn api_key_create(
    store: &Store,
    app_id: AppId,
    name: Option<&str>,
) -> Result<(ApiKeyInfo, ApiKey), StoreError> {
    let client = store.client().await?;
    let key = ApiKey::generate();
    let info = api_key_insert(&client, app_id, &key, name).await?;
    Ok((info, key))
}

/// An app's keys, newest first, revoked ones included.
pub async fn api_keys_list(store: &Store, app_id: AppId) -> Result<Vec<ApiKeyInfo>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "SELECT id, name, hint, created_at, revoked_at FROM api_keys
             WHERE app_id = $1 ORDER BY id DESC",
        )
        .await?;
    let rows = client.query(&stmt, &[&app_id.0]).await?;
    rows.iter().map(key_from_row).collect()
}

/// Revokes one key of an app; false when the app has no such live key.
pub async fn api_key_revoke(
    store: &Store,
    app_id: AppId,
    id: ApiKeyId,
) -> Result<bool, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "UPDATE api_keys SET revoked_at = now()
             WHERE id = $1 AND app_id = $2 AND revoked_at IS NULL",
        )
        .await?;
    Ok(client.execute(&stmt, &[&id.0, &app_id.0]).await? == 1)
}
