//! Deliveries: state, history and redrive.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hookd_engine::delivery::{Delivery, DeliveryState, LogEntry, LogKind};
use hookd_engine::ids::{DeliveryId, EndpointId, EventId};
use hookd_engine::store::{deliveries as store, delivery_reads as reads};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::{ApiResult, ApiState, AppKey, Tag, page};
use crate::id::Id;
use crate::problem::{ApiError, ProblemKind};
use crate::text::Text;

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum DeliveryStateOut {
    Pending,
    InFlight,
    Succeeded,
    Dead,
    Cancelled,
}

impl From<DeliveryStateOut> for DeliveryState {
    fn from(s: DeliveryStateOut) -> Self {
        match s {
            DeliveryStateOut::Pending => Self::Pending,
            DeliveryStateOut::InFlight => Self::InFlight,
            DeliveryStateOut::Succeeded => Self::Succeeded,
            DeliveryStateOut::Dead => Self::Dead,
            DeliveryStateOut::Cancelled => Self::Cancelled,
        }
    }
}

impl From<DeliveryState> for DeliveryStateOut {
    fn from(s: DeliveryState) -> Self {
        match s {
            DeliveryState::Pending => Self::Pending,
            DeliveryState::InFlight => Self::InFlight,
            DeliveryState::Succeeded => Self::Succeeded,
            DeliveryState::Dead => Self::Dead,
            DeliveryState::Cancelled => Self::Cancelled,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DeliveryOut {
    pub id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub state: DeliveryStateOut,
    /// Attempts made so far (across redrives).
    pub attempts: i32,
    /// When a pending delivery is next attempted.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_http_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id.to_string(),
            event_id: d.event_id.to_string(),
            endpoint_id: d.endpoint_id.to_string(),
            state: d.state.into(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_http_status: d.last_http_status,
            last_error: d.last_error,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum LogKindOut {
    Created,
    Claimed,
    AttemptSucceeded,
    AttemptFailed,
    RetryScheduled,
    DeadLettered,
    Redriven,
    Cancelled,
    Released,
    Deferred,
    Resumed,
}

impl From<LogKind> for LogKindOut {
    fn from(k: LogKind) -> Self {
        match k {
            LogKind::Created => Self::Created,
            LogKind::Claimed => Self::Claimed,
            LogKind::AttemptSucceeded => Self::AttemptSucceeded,
            LogKind::AttemptFailed => Self::AttemptFailed,
            LogKind::RetryScheduled => Self::RetryScheduled,
            LogKind::DeadLettered => Self::DeadLettered,
            LogKind::Redriven => Self::Redriven,
            LogKind::Cancelled => Self::Cancelled,
            LogKind::Released => Self::Released,
            LogKind::Deferred => Self::Deferred,
            LogKind::Resumed => Self::Resumed,
        }
    }
}

/// One state change of a delivery.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct HistoryEntry {
    /// Position in the global log; increases with time.
    pub seq: i64,
    pub kind: LogKindOut,
    pub at: DateTime<Utc>,
    /// The delivery's attempt count once this entry applies.
    pub attempt: i32,
    pub worker_id: Option<String>,
    pub http_status: Option<i32>,
    pub latency_ms: Option<i32>,
    pub error_class: Option<String>,
    pub error: Option<String>,
    /// At most 1 KiB of the receiver's response body.
    pub response_excerpt: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub lease_expires_at: Option<DateTime<Utc>>,
}

impl From<LogEntry> for HistoryEntry {
    fn from(e: LogEntry) -> Self {
        Self {
            seq: e.seq,
            kind: e.kind.into(),
            at: e.at,
            attempt: e.attempt,
            worker_id: e.worker_id,
            http_status: e.http_status,
            latency_ms: e.latency_ms,
            error_class: e.error_class,
            error: e.error_message,
            response_excerpt: e.response_excerpt,
            next_attempt_at: e.next_attempt_at,
            lease_expires_at: e.lease_expires_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct History {
    /// Oldest first.
    pub data: Vec<HistoryEntry>,
}

#[derive(Debug, Object)]
pub struct Accepted {
    pub id: String,
    pub state: DeliveryStateOut,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DeliveryList {
    pub data: Vec<DeliveryOut>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Which dead letters to redrive; every field narrows the selection.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields, example)]
pub struct BulkRedrive {
    pub endpoint_id: Option<Id<EndpointId>>,
    #[oai(validator(min_length = 1, max_length = 256))]
    pub event_type: Option<Text>,
    /// Deliveries created at or after this time.
    pub after: Option<DateTime<Utc>>,
    /// Deliveries created before this time.
    pub before: Option<DateTime<Utc>>,
}

impl Example for BulkRedrive {
    fn example() -> Self {
        Self {
            endpoint_id: EndpointId::parse("ep_0193a0a1b2c37d8e9f0a1b2c3d4e5f60")
                .ok()
                .map(Id),
            event_type: Some(Text("order.paid".into())),
            after: None,
            before: None,
        }
    }
}

#[derive(Debug, Object)]
pub struct Redriven {
    /// How many dead letters were scheduled again.
    pub redriven: u64,
}

#[derive(Debug, ApiResponse)]
pub enum BulkRedriveResponse {
    /// The selected dead letters are scheduled now.
    #[oai(status = 202)]
    Accepted(Json<Redriven>),
}

#[derive(ApiResponse)]
enum RedriveResponse {
    /// The delivery is scheduled now.
    #[oai(status = 202)]
    Accepted(Json<Accepted>),
}

pub struct DeliveriesApi(pub Arc<ApiState>);

#[OpenApi]
impl DeliveriesApi {
    /// List deliveries
    ///
    /// Newest first; every filter narrows the list. Times select by creation.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/v1/deliveries", method = "get", tag = "Tag::Deliveries")]
    async fn list_deliveries(
        &self,
        auth: AppKey,
        state: Query<Option<DeliveryStateOut>>,
        endpoint_id: Query<Option<Id<EndpointId>>>,
        event_id: Query<Option<Id<EventId>>>,
        /// Created at or after (RFC 3339).
        after: Query<Option<DateTime<Utc>>>,
        /// Created before (RFC 3339).
        before: Query<Option<DateTime<Utc>>>,
        /// Items per page (1–200, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        #[oai(validator(pattern = r"^[A-Za-z0-9_-]{22}$"))]
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<DeliveryList>> {
        let app_id = self.0.app_of(&auth).await?;
        let (limit, after_id) = page::params(limit.0, cursor.0.as_deref())?;
        let filter = reads::DeliveryFilter {
            state: state.0.map(DeliveryState::from),
            endpoint_id: endpoint_id.0.map(|Id(id)| id),
            event_id: event_id.0.map(|Id(id)| id),
            after: after.0,
            before: before.0,
        };
        let deliveries =
            reads::deliveries_list(&self.0.store, app_id, &filter, after_id, limit).await?;
        let next_cursor = page::next_cursor(&deliveries, limit, |d| d.id.0);
        Ok(Json(DeliveryList {
            data: deliveries.into_iter().map(DeliveryOut::from).collect(),
            next_cursor,
        }))
    }

    /// Redrive dead letters in bulk
    ///
    /// Schedules every dead-lettered delivery the filters select, now, with a fresh retry
    /// budget. Safe to repeat: a redriven delivery is no longer dead.
    #[oai(
        path = "/v1/deliveries/redrive",
        method = "post",
        tag = "Tag::Deliveries"
    )]
    async fn redrive_dead_letters(
        &self,
        auth: AppKey,
        body: Json<BulkRedrive>,
    ) -> ApiResult<BulkRedriveResponse> {
        let app_id = self.0.app_of(&auth).await?;
        let body = body.0;
        let filter = store::DeadLetterFilter {
            endpoint_id: body.endpoint_id.map(|Id(id)| id),
            event_type: body.event_type.map(String::from),
            after: body.after,
            before: body.before,
        };
        let redriven = store::deliveries_redrive_dead(&self.0.store, app_id, &filter).await?;
        Ok(BulkRedriveResponse::Accepted(Json(Redriven { redriven })))
    }

    /// Get a delivery
    #[oai(path = "/v1/deliveries/:id", method = "get", tag = "Tag::Deliveries")]
    async fn get_delivery(
        &self,
        auth: AppKey,
        id: Path<Id<DeliveryId>>,
    ) -> ApiResult<Json<DeliveryOut>> {
        let app_id = self.0.app_of(&auth).await?;
        let Path(Id(id)) = id;
        let delivery = reads::delivery_get(&self.0.store, app_id, id)
            .await?
            .ok_or_else(|| ApiError::not_found("delivery"))?;
        Ok(Json(delivery.into()))
    }

    /// A delivery's history
    ///
    /// Every state change, oldest first: claims, attempts with status, latency, error and
    /// response excerpt, scheduled retries, dead-lettering, redrives, cancellation.
    #[oai(
        path = "/v1/deliveries/:id/history",
        method = "get",
        tag = "Tag::Deliveries"
    )]
    async fn delivery_history(
        &self,
        auth: AppKey,
        id: Path<Id<DeliveryId>>,
    ) -> ApiResult<Json<History>> {
        let app_id = self.0.app_of(&auth).await?;
        let Path(Id(id)) = id;
        let entries = reads::delivery_history(&self.0.store, app_id, id)
            .await?
            .ok_or_else(|| ApiError::not_found("delivery"))?;
        Ok(Json(History {
            data: entries.into_iter().map(HistoryEntry::from).collect(),
        }))
    }

    /// Redrive a delivery
    ///
    /// A dead-lettered or delivered delivery is scheduled again now, with a fresh retry budget.
    #[oai(
        path = "/v1/deliveries/:id/redrive",
        method = "post",
        tag = "Tag::Deliveries"
    )]
    async fn redrive_delivery(
        &self,
        auth: AppKey,
        id: Path<Id<DeliveryId>>,
    ) -> ApiResult<RedriveResponse> {
        let app_id = self.0.app_of(&auth).await?;
        let Path(Id(id)) = id;
        match store::delivery_redrive(&self.0.store, app_id, id).await? {
            store::RedriveOutcome::Redriven => Ok(RedriveResponse::Accepted(Json(Accepted {
                id: id.to_string(),
                state: DeliveryStateOut::Pending,
            }))),
            store::RedriveOutcome::NotRedrivable => Err(ApiError::new(
                ProblemKind::NotRedrivable,
                "only a dead-lettered or succeeded delivery can be redriven",
            )),
            store::RedriveOutcome::NotFound => Err(ApiError::not_found("delivery")),
        }
    }

    /// Cancel a delivery
    ///
    /// A pending or in-flight delivery stops: no further attempts. An attempt already on the
    /// wire completes, but its outcome is not applied.
    #[oai(
        path = "/v1/deliveries/:id/cancel",
        method = "post",
        tag = "Tag::Deliveries"
    )]
    async fn cancel_delivery(
        &self,
        auth: AppKey,
        id: Path<Id<DeliveryId>>,
    ) -> ApiResult<Json<DeliveryOut>> {
        let app_id = self.0.app_of(&auth).await?;
        let Path(Id(id)) = id;
        match store::delivery_cancel(&self.0.store, app_id, id).await? {
            store::CancelOutcome::Cancelled => {}
            store::CancelOutcome::NotCancellable => {
                return Err(ApiError::new(
                    ProblemKind::NotCancellable,
                    "only a pending or in-flight delivery can be cancelled",
                ));
            }
            store::CancelOutcome::NotFound => return Err(ApiError::not_found("delivery")),
        }
        let delivery = reads::delivery_get(&self.0.store, app_id, id)
            .await?
            .ok_or_else(|| ApiError::not_found("delivery"))?;
        Ok(Json(delivery.into()))
    }
}
