//! Prefixed, typed identifiers (`app_…`, `ep_…`, `evt_…`, `dlv_…`).
//!
//! Each id is a UUID in the database and `<prefix>_<32 hex digits>` everywhere else, so an id
//! pasted into the wrong place is refused by its parser instead of silently matching nothing.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// An id string that is not of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a valid {kind} id (expected `{prefix}_` followed by 32 hex digits)")]
pub struct IdParseError {
    pub kind: &'static str,
    pub prefix: &'static str,
    pub input: String,
}

/// What every kind of id shares, for code that handles them alike (the API's id types).
pub trait PrefixedId: Copy + fmt::Display + Send + Sync + 'static {
    /// What comes before the `_`: `app`, `ep`, …
    const PREFIX: &'static str;
    /// How error messages name the kind: `app`, `endpoint`, …
    const KIND: &'static str;
    fn parse(input: &str) -> Result<Self, IdParseError>;
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn parse(input: &str) -> Result<Self, IdParseError> {
                input
                    .strip_prefix(concat!($prefix, "_"))
                    .filter(|hex| hex.len() == 32)
                    .and_then(|hex| Uuid::try_parse(hex).ok())
                    .map(Self)
                    .ok_or_else(|| IdParseError {
                        kind: $kind,
                        prefix: $prefix,
                        input: input.chars().take(80).collect(),
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "_{}"), self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl PrefixedId for $name {
            const PREFIX: &'static str = $prefix;
            const KIND: &'static str = $kind;
            fn parse(input: &str) -> Result<Self, IdParseError> {
                $name::parse(input)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

prefixed_id!(
    /// A tenant: owns endpoints, events and deliveries.
    AppId, "app", "app");
prefixed_id!(
    /// A receiver URL subscribed to some event types.
    EndpointId, "ep", "endpoint");
prefixed_id!(
    /// A published event; also the `webhook-id` receivers de-duplicate on.
    EventId, "evt", "event");
prefixed_id!(
    /// One event bound for one endpoint.
    DeliveryId, "dlv", "delivery");
prefixed_id!(
    /// An app's API key record (not the key itself).
    ApiKeyId, "key", "API key");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_display() {
        let id = DeliveryId::generate();
        assert_eq!(DeliveryId::parse(&id.to_string()), Ok(id));
    }

    #[test]
    fn refuses_wrong_prefix_and_malformed_input() {
        let evt = EventId::generate().to_string();
        for bad in [
            evt.as_str(),
            "dlv_",
            "dlv_xyz",
            "dlv_0123456789abcdef0123456789abcdeg",
            "0123456789abcdef0123456789abcdef",
            "dlv_0123456789abcdef0123456789abcdef0",
        ] {
            assert!(DeliveryId::parse(bad).is_err(), "{bad} should not parse");
        }
    }
}
