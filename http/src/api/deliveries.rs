//! Deliveries: state, history and redrive.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hookd_engine::delivery::{Delivery, DeliveryState, LogEntry, LogKind};
use hookd_engine::ids::DeliveryId;
use hookd_engine::store::deliveries as store;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::{ApiResult, ApiState, AppKey, Tag, parse_id};
use crate::problem::{ApiError, ProblemKind};

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum DeliveryStateOut {
    Pending,
    InFlight,
    Succeeded,
    Dead,
    Cancelled,
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

#[derive(Debug, Object)]
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
        }
    }
}

/// One state change of a delivery.
#[derive(Debug, Object)]
pub struct HistoryEntry {
    /// Position in the global log; increases with time.
    pub seq: i64,
    pub kind: LogKindOut,
    pub at: DateTime<Utc>,
    /// The delivery's attempt count once this entry applies.
    pub attempt: i32,
    #[oai(skip_serializing_if_is_none)]
    pub worker_id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub http_status: Option<i32>,
    #[oai(skip_serializing_if_is_none)]
    pub latency_ms: Option<i32>,
    #[oai(skip_serializing_if_is_none)]
    pub error_class: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
    /// At most 1 KiB of the receiver's response body.
    #[oai(skip_serializing_if_is_none)]
    pub response_excerpt: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
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

#[derive(ApiResponse)]
enum RedriveResponse {
    /// The delivery is scheduled now.
    #[oai(status = 202)]
    Accepted(Json<Accepted>),
}

pub struct DeliveriesApi(pub Arc<ApiState>);

#[OpenApi]
impl DeliveriesApi {
    /// Get a delivery
    #[oai(path = "/v1/deliveries/:id", method = "get", tag = "Tag::Deliveries")]
    async fn get_delivery(&self, auth: AppKey, id: Path<String>) -> ApiResult<Json<DeliveryOut>> {
        let app_id = self.0.app_of(&auth).await?;
        let id = parse_id(DeliveryId::parse, &id)?;
        let delivery = store::delivery_get(&self.0.store, app_id, id)
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
    async fn delivery_history(&self, auth: AppKey, id: Path<String>) -> ApiResult<Json<History>> {
        let app_id = self.0.app_of(&auth).await?;
        let id = parse_id(DeliveryId::parse, &id)?;
        let entries = store::delivery_history(&self.0.store, app_id, id)
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
    async fn redrive_delivery(&self, auth: AppKey, id: Path<String>) -> ApiResult<RedriveResponse> {
        let app_id = self.0.app_of(&auth).await?;
        let id = parse_id(DeliveryId::parse, &id)?;
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
}
