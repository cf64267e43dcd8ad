//! The circuit breaker's policy: when an endpoint's circuit opens, how long it stays open, and
//! when a failing endpoint is disabled. The decisions themselves are made in the database, where
//! every worker sees the same circuit: `claim_due.sql` parks deliveries and picks the probe,
//! `record_circuits.sql` counts failures and opens or closes the circuit.

use std::time::Duration;

/// How the circuit breaker and automatic disabling behave, for every endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitPolicy {
    /// Failed attempts in a row (no success between) that open an endpoint's circuit.
    pub failures_to_open: u32,
    /// How long the circuit stays open the first time before a probe goes.
    pub cooldown: Duration,
    /// The longest cooldown: it doubles each time a probe fails, up to this.
    pub cooldown_cap: Duration,
    /// An endpoint that has failed without one success for this long is disabled and its
    /// pending deliveries are dead-lettered.
    pub disable_after: Duration,
}

impl Default for CircuitPolicy {
    fn default() -> Self {
        Self {
            failures_to_open: 20,
            cooldown: Duration::from_secs(30),
            cooldown_cap: Duration::from_secs(10 * 60),
            disable_after: Duration::from_secs(5 * 24 * 3600),
        }
    }
}

/// Whether an attempt speaks for or against its receiver's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The receiver took the webhook.
    Up,
    /// The receiver could not take it now (5xx, 429, timeout, no connection): worth retrying,
    /// and a sign it is down.
    Down,
}
