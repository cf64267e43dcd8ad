//! Reading published events.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError};
use crate::ids::{AppId, EventId};

/// A published event.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: EventId,
    pub event_type: String,
    /// The payload as JSON text.
    pub payload: String,
    pub created_at: DateTime<Utc>,
}

/// Which events a list returns; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub event_type: Option<String>,
    /// Published at or after.
    pub after: Option<DateTime<Utc>>,
    /// Published before.
    pub before: Option<DateTime<Utc>>,
}

/// The columns every event read returns, in [`event_from_row`]'s terms.
macro_rules! event_columns {
    () => {
        "id, event_type, payload::text AS payload, created_at"
    };
}

fn event_from_row(r: &tokio_postgres::Row) -> Result<Event, StoreError> {
    Ok(Event {
        id: EventId(r.try_get("id")?),
        event_type: r.try_get("event_type")?,
        payload: r.try_get("payload")?,
        created_at: r.try_get("created_at")?,
    })
}

/// One event of an app.
pub async fn event_get(
    store: &Store,
    app_id: AppId,
    id: EventId,
) -> Result<Option<Event>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE id = $1 AND app_id = $2"
        ))
        .await?;
    client
        .query_opt(&stmt, &[&id.0, &app_id.0])
        .await?
        .as_ref()
        .map(event_from_row)
        .transpose()
}

/// An app's events, newest first, after the cursor, narrowed by the filter.
pub async fn events_list(
    store: &Store,
    app_id: AppId,
    filter: &EventFilter,
    before_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Event>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events
             WHERE app_id = $1
               AND ($2::text IS NULL OR event_type = $2)
               AND ($3::timestamptz IS NULL OR id >= hookd_uuid_v7_floor($3))
               AND ($4::timestamptz IS NULL OR id < hookd_uuid_v7_floor($4))
               AND ($5::uuid IS NULL OR id < $5)
             ORDER BY id DESC LIMIT $6"
        ))
        .await?;
    let rows = client
        .query(
            &stmt,
            &[
                &app_id.0,
                &filter.event_type,
                &filter.after,
                &filter.before,
                &before_id,
                &limit,
            ],
        )
        .await?;
    rows.iter().map(event_from_row).collect()
}
