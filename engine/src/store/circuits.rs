//! Endpoint circuits: counting attempts against them, resuming the deliveries they parked, and
//! reading them for the API. The claim statement (`claim_due.sql`) parks and probes.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{StoreError, millis};
use crate::circuit::CircuitPolicy;

/// An endpoint's circuit as the API shows it. An endpoint that never failed has no row: the
/// default, closed with no failures.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
pub struct Circuit {
    pub state: CircuitState,
    pub consecutive_failures: i32,
    /// While open: when the probe may go. While half-open: when the probe's lease ends.
    pub open_until: Option<DateTime<Utc>>,
    /// The first failure after the last success.
    pub failing_since: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// When the circuit last changed state.
    pub changed_at: Option<DateTime<Utc>>,
}

/// Where an endpoint's circuit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Deliveries flow.
    #[default]
    Closed,
    /// Deliveries are parked until the cooldown ends.
    Open,
    /// One probe is in flight; the rest stay parked.
    HalfOpen,
}

/// An endpoint's circuit changed state, or the endpoint is to be disabled.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitChange {
    pub endpoint_id: Uuid,
    pub from: String,
    pub to: String,
    /// It has failed without a success for longer than the policy allows.
    pub disable: bool,
    pub failing_since: Option<DateTime<Utc>>,
}

/// One endpoint's attempts in a batch of outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptTally {
    pub endpoint_id: Uuid,
    pub successes: i32,
    pub failures: i32,
}

/// Counts a batch's attempts against their circuits (see `record_circuits.sql`).
pub(crate) async fn endpoint_circuits_record(
    client: &impl GenericClient,
    tallies: &[AttemptTally],
    policy: &CircuitPolicy,
) -> Result<Vec<CircuitChange>, StoreError> {
    let stmt = client
        .prepare_cached(include_str!("record_circuits.sql"))
        .await?;
    let ids: Vec<Uuid> = tallies.iter().map(|t| t.endpoint_id).collect();
    let successes: Vec<i32> = tallies.iter().map(|t| t.successes).collect();
    let failures: Vec<i32> = tallies.iter().map(|t| t.failures).collect();
    let threshold = i32::try_from(policy.failures_to_open).unwrap_or(i32::MAX);
    let rows = client
        .query(
            &stmt,
            &[
                &ids,
                &successes,
                &failures,
                &threshold,
                &millis(policy.cooldown),
                &millis(policy.cooldown_cap.max(policy.cooldown)),
                &millis(policy.disable_after),
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(CircuitChange {
                endpoint_id: r.try_get("endpoint_id")?,
                from: r.try_get("from_state")?,
                to: r.try_get("to_state")?,
                disable: r.try_get("disable")?,
                failing_since: r.try_get("failing_since")?,
            })
        })
        .collect()
}

/// Forgets endpoints' circuits (enabled or disabled by hand): they start closed, with no
/// failures.
pub(crate) async fn endpoint_circuits_reset(
    client: &impl GenericClient,
    endpoint_ids: &[Uuid],
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached("DELETE FROM endpoint_circuits WHERE endpoint_id = ANY ($1)")
        .await?;
    client.execute(&stmt, &[&endpoint_ids]).await?;
    Ok(())
}
