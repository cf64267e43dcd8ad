//! Publishers: closed-loop single-event clients, batch clients, and an open-loop publisher at a
//! fixed rate. Each event carries `sent_at_us` so the receiver can time its arrival.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::hookd::Api;

/// Microseconds since the Unix epoch, the clock the receiver times arrivals with.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn event(event_type: &str) -> Value {
    json!({"type": event_type, "payload": {"sent_at_us": now_us(), "order": {"id": 1042, "total": "99.90", "currency": "EUR"}}})
}

/// What a publisher achieved.
#[derive(Debug, Default)]
pub struct Published {
    pub events: u64,
    pub elapsed: Duration,
    /// Request round trips (send to 202), µs.
    pub acks_us: Vec<u64>,
    pub errors: u64,
}

impl Published {
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Counts one request's answer: its events and round trip if it was accepted.
    fn tally(&mut self, accepted: bool, events: u64, took: Duration) {
        if accepted {
            self.events += events;
            self.acks_us.push(took.as_micros() as u64);
        } else {
            self.errors += 1;
        }
    }

    fn merge(&mut self, other: Published) {
        self.events += other.events;
        self.acks_us.extend(other.acks_us);
        self.errors += other.errors;
    }
}

/// What one request carries.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// `POST /v1/events`, one event.
    Single,
    /// `POST /v1/events/batch` with this many events.
    Batch(usize),
}

impl Shape {
    fn request(self, event_type: &str) -> (&'static str, Value, u64) {
        match self {
            Self::Single => ("/v1/events", event(event_type), 1),
            Self::Batch(size) => {
                let events: Vec<_> = (0..size).map(|_| event(event_type)).collect();
                ("/v1/events/batch", json!({ "events": events }), size as u64)
            }
        }
    }
}

/// `clients` clients, each sending a request and waiting for its answer, again and again, for
/// `run`.
pub async fn closed_loop(
    api: &Api,
    key: &str,
    event_type: &str,
    shape: Shape,
    clients: usize,
    run: Duration,
) -> Published {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        let (api, key, event_type) = (api.clone(), key.to_owned(), event_type.to_owned());
        tasks.spawn(async move {
            let mut mine = Published::default();
            while started.elapsed() < run {
                let (path, body, events) = shape.request(&event_type);
                let sent = Instant::now();
                let accepted = api.post(path, &key, &body).await.is_ok();
                mine.tally(accepted, events, sent.elapsed());
            }
            mine
        });
    }
    let mut total = Published::default();
    while let Some(Ok(mine)) = tasks.join_next().await {
        total.merge(mine);
    }
    total.elapsed = started.elapsed();
    total
}

/// `requests` batch requests of `size` events, `clients` at a time.
pub async fn batches(
    api: &Api,
    key: &str,
    event_type: &str,
    size: usize,
    requests: usize,
    clients: usize,
) -> Published {
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(clients));
    let mut tasks = JoinSet::new();
    for _ in 0..requests {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (api, key, event_type) = (api.clone(), key.to_owned(), event_type.to_owned());
        tasks.spawn(async move {
            let _permit = permit;
            let (path, body, _) = Shape::Batch(size).request(&event_type);
            let sent = Instant::now();
            let result = api.post(path, &key, &body).await;
            (result.is_ok(), sent.elapsed())
        });
    }
    let mut total = Published::default();
    while let Some(Ok((accepted, took))) = tasks.join_next().await {
        total.tally(accepted, size as u64, took);
    }
    total.elapsed = started.elapsed();
    total
}

/// Single-event requests started at `rate` per second for `run` whatever the answers take
/// (open loop), at most `max_in_flight` at once; event types taken in turn from `event_types`.
pub async fn at_rate(
    api: &Api,
    key: &str,
    event_types: &[String],
    rate: u64,
    run: Duration,
    max_in_flight: usize,
) -> Published {
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let mut tasks = JoinSet::new();
    let total_events = (rate as f64 * run.as_secs_f64()) as u64;
    let mut total = Published::default();
    for n in 0..total_events {
        let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // The API is behind: this event is not sent, and counts as an error.
            total.errors += 1;
            continue;
        };
        let event_type = &event_types[n as usize % event_types.len().max(1)];
        let body = event(event_type);
        let (api, key) = (api.clone(), key.to_owned());
        tasks.spawn(async move {
            let _permit = permit;
            let sent = Instant::now();
            let result = api.post("/v1/events", &key, &body).await;
            (result.is_ok(), sent.elapsed())
        });
        // Reap finished requests as we go, so the set stays small.
        while let Some(Ok((accepted, took))) = tasks.try_join_next() {
            total.tally(accepted, 1, took);
        }
    }
    while let Some(Ok((accepted, took))) = tasks.join_next().await {
        total.tally(accepted, 1, took);
    }
    total.elapsed = started.elapsed();
    total
}

/// Percentiles of a sample, in ms.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of_us(mut sample: Vec<u64>) -> Self {
        sample.sort_unstable();
        let at = |q: f64| {
            if sample.is_empty() {
                return 0.0;
            }
            let index = ((sample.len() as f64 * q).ceil() as usize).clamp(1, sample.len()) - 1;
            sample[index] as f64 / 1000.0
        };
        Self {
            count: sample.len(),
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}
