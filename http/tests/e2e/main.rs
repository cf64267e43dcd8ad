//! End-to-end tests: real PostgreSQL, real hookd processes, real HTTP receivers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod auth;
mod batch;
mod circuit;
mod crash;
mod dashboard;
mod delivery;
mod fairness;
mod fuzz;
mod idempotency;
mod limits;
mod logs;
mod metrics;
mod monitoring;
mod openapi;
mod operations;
mod ordered;
mod projection;
mod reliability;
mod resources;
mod retention;
mod secrets;
mod security;
mod wakeup;
