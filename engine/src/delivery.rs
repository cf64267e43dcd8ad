//! A delivery's states and the kinds of entry in its log, as the database spells them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::ids::{DeliveryId, EndpointId, EventId};

/// Where a delivery stands. `pending` and `in_flight` are live; the others are final until an
/// operator redrives the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    Pending,
    InFlight,
    Succeeded,
    Dead,
    Cancelled,
}

/// A log entry kind: one per state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogKind {
    Created,
    Claimed,
    AttemptSucceeded,
    AttemptFailed,
    RetryScheduled,
    DeadLettered,
    Redriven,
    Cancelled,
    /// A worker shutting down handed an unfinished delivery back to the queue.
    Released,
    /// Parked behind its endpoint's open circuit: pending, with no due time, not charged.
    Deferred,
    /// Due again: its endpoint's circuit closed, or the endpoint was enabled or disabled.
    Resumed,
}

/// A database value this build does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

macro_rules! text_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }

        impl FromStr for $ty {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(UnknownValue { what: $what, value: s.to_owned() }),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(DeliveryState, "delivery state", {
    Pending => "pending",
    InFlight => "in_flight",
    Succeeded => "succeeded",
    Dead => "dead",
    Cancelled => "cancelled",
});

text_enum!(LogKind, "delivery log kind", {
    Created => "created",
    Claimed => "claimed",
    AttemptSucceeded => "attempt_succeeded",
    AttemptFailed => "attempt_failed",
    RetryScheduled => "retry_scheduled",
    DeadLettered => "dead_lettered",
    Redriven => "redriven",
    Cancelled => "cancelled",
    Released => "released",
    Deferred => "deferred",
    Resumed => "resumed",
});

/// One row of a delivery's history.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub seq: i64,
    pub kind: LogKind,
    pub at: DateTime<Utc>,
    /// The delivery's attempt count once this entry applies.
    pub attempt: i32,
    pub worker_id: Option<String>,
    pub http_status: Option<i32>,
    pub latency_ms: Option<i32>,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub response_excerpt: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// The current state of a delivery, as the projection table holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub event_id: EventId,
    pub endpoint_id: EndpointId,
    pub state: DeliveryState,
    pub attempts: i32,
    /// When a pending delivery is next attempted.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_http_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
