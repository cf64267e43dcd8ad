//! The demo's producer: publishes events a shop would (orders, payments, shipments, customers,
//! invoices) at a steady rate through hookd's REST API, each with an `Idempotency-Key`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::RngExt as _;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Publish requests in flight at once: when hookd is slow to answer, the producer waits instead
/// of piling requests up.
const IN_FLIGHT: usize = 32;

#[derive(Debug, Clone)]
pub struct Producer {
    rate_per_s: f64,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    published: AtomicU64,
    failed: AtomicU64,
    /// Whether the last publish failed, so a failing API is logged once, not once per event.
    failing: AtomicBool,
}

impl Producer {
    pub fn new(rate_per_s: f64) -> Self {
        Self {
            rate_per_s,
            counts: Arc::default(),
        }
    }

    pub fn rate_per_s(&self) -> f64 {
        self.rate_per_s
    }

    pub fn status(&self) -> Value {
        json!({
            "rate_per_s": self.rate_per_s,
            "published": self.counts.published.load(Ordering::Relaxed),
            "failed": self.counts.failed.load(Ordering::Relaxed),
        })
    }

    /// Publishes one event every 1/rate s to `{base}/v1/events` until `shutdown`.
    pub async fn run(
        &self,
        client: &reqwest::Client,
        base: &str,
        api_key: &str,
        shutdown: CancellationToken,
    ) {
        let url = format!("{base}/v1/events");
        let permits = Arc::new(Semaphore::new(IN_FLIGHT));
        // The flag's parser keeps the rate within 0.1–1000/s; anything else publishes once a
        // second rather than panicking.
        let every = Duration::try_from_secs_f64(1.0 / self.rate_per_s)
            .ok()
            .filter(|every| !every.is_zero())
            .unwrap_or(Duration::from_secs(1));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for sequence in 1u64.. {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let permit = tokio::select! {
                () = shutdown.cancelled() => return,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let (event_type, payload) = shop_event(sequence);
            let request = client
                .post(&url)
                .bearer_auth(api_key)
                .header("content-type", "application/json")
                .header(
                    "idempotency-key",
                    format!("demo-{}-{sequence}", std::process::id()),
                )
                .body(json!({"type": event_type, "payload": payload}).to_string());
            let counts = self.counts.clone();
            tokio::spawn(async move {
                let outcome = match request.send().await {
                    Ok(response) if response.status().is_success() => Ok(()),
                    Ok(response) => Err(format!("hookd answered {}", response.status())),
                    Err(e) => Err(e.to_string()),
                };
                counts.record(outcome);
                drop(permit);
            });
        }
    }
}

impl Counts {
    fn record(&self, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.published.fetch_add(1, Ordering::Relaxed);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("demo producer: publishing again");
                }
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "demo producer: a publish failed");
                }
            }
        }
    }
}

/// The `sequence`th event of an imaginary shop: its type and payload.
fn shop_event(sequence: u64) -> (&'static str, Value) {
    const CURRENCIES: [&str; 3] = ["EUR", "USD", "GBP"];
    const CARRIERS: [&str; 3] = ["DHL", "UPS", "La Poste"];
    const PLANS: [&str; 3] = ["starter", "team", "business"];
    const COUNTRIES: [&str; 4] = ["FR", "DE", "US", "GB"];
    let mut rng = rand::rng();
    let order = format!("ord_{:06}", 100_000 + sequence / 3);
    let customer = format!("cus_{:05}", rng.random_range(10_000..99_999));
    let amount = rng.random_range(500..50_000);
    let currency = CURRENCIES[rng.random_range(0..CURRENCIES.len())];
    match sequence % 6 {
        0 => (
            "order.created",
            json!({
                "order_id": order,
                "customer_id": customer,
                "items": [{"sku": format!("SKU-{}", rng.random_range(100..999)),
                           "quantity": rng.random_range(1..4), "unit_amount": amount}],
                "currency": currency,
            }),
        ),
        1 => (
            "order.paid",
            json!({"order_id": order, "amount": amount, "currency": currency, "method": "card"}),
        ),
        2 => (
            "order.shipped",
            json!({
                "order_id": order,
                "carrier": CARRIERS[rng.random_range(0..CARRIERS.len())],
                "tracking_number": format!("TRK{}", rng.random_range(10_000_000..99_999_999)),
            }),
        ),
        3 => (
            "customer.created",
            json!({"customer_id": customer, "email": format!("{customer}@example.com"),
                   "country": COUNTRIES[rng.random_range(0..COUNTRIES.len())]}),
        ),
        4 => (
            "invoice.paid",
            json!({"invoice_id": format!("in_{sequence:07}"), "customer_id": customer,
                   "amount": amount, "currency": currency}),
        ),
        _ => (
            "subscription.renewed",
            json!({"subscription_id": format!("sub_{:05}", rng.random_range(1_000..9_999)),
                   "customer_id": customer, "plan": PLANS[rng.random_range(0..PLANS.len())]}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_event_comes_round() {
        let types: std::collections::BTreeSet<&str> = (1..=6).map(|n| shop_event(n).0).collect();
        assert_eq!(types.len(), 6);
        let (event_type, payload) = shop_event(7);
        assert_eq!(event_type, "order.paid");
        assert!(payload["amount"].as_i64().is_some_and(|a| a >= 500));
    }
}
