//! hookd's engine: everything but HTTP in and configuration.
//!
//! A tour, from the edges in:
//! - [`ids`], [`secret`]: typed, prefixed ids and secrets that never print themselves.
//! - [`store`]: the only code that talks SQL. Deliveries are event-sourced: every state change
//!   appends to `delivery_log` and updates the `deliveries` projection in one statement;
//!   [`projection`] is the fold that defines what the projection must hold.
//! - [`worker`]: claims due deliveries (`FOR UPDATE SKIP LOCKED`, under a lease), sends them with
//!   [`sender`], signs with [`signing`], classifies the result with [`outcome`] and schedules the
//!   next attempt with [`retry`]. [`listener`] wakes it on NOTIFY; [`handoff`] hands it what a
//!   publish in its own process leased to it.
//! - [`key_cache`]: which app an API key belongs to, remembered for a second.
//! - [`address`]: which addresses webhooks may go to.
//! - [`circuit`]: the circuit breaker's policy (its decisions are made in the store).
//! - [`fairness`]: how many slots an endpoint whose requests hang may hold.
//! - [`retention`]: the background sweep that removes history past its age.
//! - [`metrics`]: every metric hookd exports, and the gauges read from the database.

pub mod address;
pub mod circuit;
pub mod custom_headers;
pub mod delivery;
pub mod endpoint_url;
pub mod fairness;
pub mod handoff;
pub mod ids;
pub mod key_cache;
pub mod listener;
pub mod metrics;
pub mod outcome;
pub mod projection;
pub mod publisher;
pub mod retention;
pub mod retry;
pub mod secret;
pub mod sender;
pub mod signing;
pub mod store;
pub mod vault;
pub mod worker;
