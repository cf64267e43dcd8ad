//! Endpoint secret rotation, and resealing every stored secret under the current master key.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::ids::{AppId, EndpointId};
use crate::secret::SigningSecret;

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP_HOURS: i32 = 24;

/// Makes `new` the endpoint's secret; the old one keeps signing beside it for
/// [`ROTATION_OVERLAP_HOURS`]. Returns when the old one stops, or `None` for no such endpoint.
pub async fn endpoint_rotate_secret(
    store: &Store,
    app_id: AppId,
    id: EndpointId,
    new: &SigningSecret,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let sealed = store.seal_secret(id, new)?;
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "UPDATE endpoints
             SET previous_secret = secret,
                 previous_secret_expires_at = now() + make_interval(hours => $4),
                 secret = $3,
                 updated_at = now()
             WHERE id = $1 AND app_id = $2 AND deleted_at IS NULL
             RETURNING previous_secret_expires_at",
        )
        .await?;
    let row = client
        .query_opt(&stmt, &[&id.0, &app_id.0, &sealed, &ROTATION_OVERLAP_HOURS])
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Every endpoint's stored secrets, locked until the transaction ends.
async fn endpoint_secrets_lock_all(
    client: &impl GenericClient,
) -> Result<Vec<(Uuid, String, Option<String>)>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT id, secret, previous_secret FROM endpoints ORDER BY id FOR UPDATE")
        .await?;
    let rows = client.query(&stmt, &[]).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// Stores an endpoint's resealed secrets.
async fn endpoint_secrets_update(
    client: &impl GenericClient,
    id: Uuid,
    secret: &str,
    previous: Option<&str>,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached("UPDATE endpoints SET secret = $2, previous_secret = $3 WHERE id = $1")
        .await?;
    client.execute(&stmt, &[&id, &secret, &previous]).await?;
    Ok(())
}

/// What a reseal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResealReport {
    pub endpoints: usize,
    pub resealed: usize,
}

/// Seals every endpoint secret with the current master key (after a master key rotation, or to
/// seal secrets stored before sealing existed), in one transaction: all or nothing.
pub async fn secrets_reseal(store: &Store) -> Result<ResealReport, StoreError> {
    let vault = store.vault()?;
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let rows = endpoint_secrets_lock_all(&tx).await?;
    let mut resealed = 0;
    for (id, secret, previous) in &rows {
        let stale = |stored: &str| !vault.is_current(stored);
        if !stale(secret) && previous.as_deref().is_none_or(|p| !stale(p)) {
            continue;
        }
        let endpoint = EndpointId(*id);
        let reseal = |stored: &str| -> Result<String, StoreError> {
            store.seal_secret(endpoint, &store.open_secret(endpoint, stored)?)
        };
        let previous = previous.as_deref().map(reseal).transpose()?;
        endpoint_secrets_update(&tx, *id, &reseal(secret)?, previous.as_deref()).await?;
        resealed += 1;
    }
    tx.commit().await?;
    Ok(ResealReport {
        endpoints: rows.len(),
        resealed,
    })
}
