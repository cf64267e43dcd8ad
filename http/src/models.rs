//! The JSON shapes of the API (snake_case fields; lists as `{"data": [...]}`).

use chrono::{DateTime, Utc};
use hookd_engine::delivery::{Delivery, DeliveryState, LogEntry, LogKind};
use poem_openapi::{Enum, Object};

use crate::text::Text;

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateApp {
    /// A name for people; need not be unique.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Text,
}

#[derive(Debug, Object)]
pub struct AppCreated {
    pub id: String,
    pub name: String,
    /// The app's API key. Shown once: only its hash is stored.
    pub api_key: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// Where webhooks are POSTed: http or https, no credentials.
    #[oai(validator(max_length = 2048))]
    pub url: Text,
    /// Event types this endpoint receives; omitted or null means every type.
    #[oai(validator(max_items = 100))]
    pub event_types: Option<Vec<Text>>,
    /// A `whsec_` signing secret (base64 of 24–64 bytes); generated when omitted.
    pub secret: Option<Text>,
    #[oai(validator(max_length = 1000))]
    pub description: Option<Text>,
    /// Overrides `HOOKD_MAX_ATTEMPTS` for this endpoint.
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub max_attempts: Option<i32>,
    /// Overrides `HOOKD_RETRY_BASE_MS` for this endpoint.
    #[oai(validator(minimum(value = "1"), maximum(value = "86400000")))]
    pub retry_base_ms: Option<i64>,
    /// Overrides `HOOKD_RETRY_CAP_MS` for this endpoint.
    #[oai(validator(minimum(value = "1"), maximum(value = "604800000")))]
    pub retry_cap_ms: Option<i64>,
    /// Overrides `HOOKD_DELIVERY_TIMEOUT_MS` for this endpoint.
    #[oai(validator(minimum(value = "1"), maximum(value = "300000")))]
    pub timeout_ms: Option<i64>,
}

#[derive(Debug, Object)]
pub struct EndpointCreated {
    pub id: String,
    pub url: String,
    pub description: String,
    /// Null means every type.
    pub event_types: Option<Vec<String>>,
    /// The signing secret. Shown at creation only.
    pub secret: String,
    pub enabled: bool,
    pub max_attempts: Option<i32>,
    pub retry_base_ms: Option<i64>,
    pub retry_cap_ms: Option<i64>,
    pub timeout_ms: Option<i64>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct PublishEvent {
    /// The event type, matched against endpoints' `event_types`.
    #[oai(rename = "type", validator(min_length = 1, max_length = 256))]
    pub event_type: Text,
    /// Any JSON value; delivered as the webhook body's `data`.
    pub payload: serde_json::Value,
}

#[derive(Debug, Object)]
pub struct DeliveryRef {
    pub id: String,
    pub endpoint_id: String,
}

#[derive(Debug, Object)]
pub struct EventAccepted {
    /// The event id; receivers see it as `webhook-id`.
    pub id: String,
    /// One delivery per subscribed endpoint.
    pub deliveries: Vec<DeliveryRef>,
}

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

#[derive(Debug, Object)]
pub struct Health {
    pub status: String,
}
