//! Fairness: endpoints that hang until the timeout on every request do not starve the healthy
//! ones of a worker's slots. Latency is measured at the receiver, from the moment of publishing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn healthy_endpoints_keep_their_latency_while_a_tenth_of_endpoints_hang() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(
        &db,
        "serve",
        &[
            // Few slots, so that the hanging endpoints' attempts could fill them all.
            ("HOOKD_WORKER_CONCURRENCY", "16"),
            ("HOOKD_DELIVERY_TIMEOUT_MS", "2000"),
            ("HOOKD_RETRY_BASE_MS", "60000"),
            // The circuit breaker would take the hanging endpoints out of the way too (see
            // circuit.rs); here the slot share alone must keep the others going.
            ("HOOKD_CIRCUIT_FAILURES", "1000000"),
        ],
    )
    .await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let hanging = Receiver::start(Arc::new(|_| (204, Duration::from_secs(5)))).await;
    let mut healthy = Receiver::ok().await;
    for n in 0..20 {
        let url = if n < 2 { &hanging.url } else { &healthy.url };
        api.create_endpoint(&key, json!({"url": url, "event_types": [format!("t{n}")]}))
            .await;
    }

    // 100 events a second for 4 seconds, round robin: the two hanging endpoints alone would
    // need 20 a second × 2 s = 40 slots.
    let start = Instant::now();
    let mut healthy_sent = 0;
    for i in 0..400u64 {
        let due = start + Duration::from_millis(i * 10);
        tokio::time::sleep_until(due.into()).await;
        let n = i % 20;
        let sent_ms = start.elapsed().as_millis() as u64;
        api.publish(&key, &format!("t{n}"), json!({"sent_ms": sent_ms}))
            .await;
        if n >= 2 {
            healthy_sent += 1;
        }
    }
    // (published at, latency) of every healthy delivery.
    let mut latencies = Vec::new();
    while latencies.len() < healthy_sent {
        let received = healthy.next().await;
        let body: Value = serde_json::from_str(&received.body).unwrap();
        let sent_ms = body["data"]["sent_ms"].as_u64().unwrap();
        let sent = start + Duration::from_millis(sent_ms);
        latencies.push((sent_ms, received.at.duration_since(sent)));
    }
    let percentile = |from_ms: u64, p: usize| {
        let mut l: Vec<Duration> = latencies
            .iter()
            .filter(|(sent, _)| *sent >= from_ms)
            .map(|(_, l)| *l)
            .collect();
        l.sort();
        l[(l.len() * p / 100).min(l.len() - 1)]
    };
    let (p50, p99) = (percentile(0, 50), percentile(0, 99));
    assert!(
        p50 < Duration::from_millis(50),
        "healthy endpoints' latency p50 {p50:?} (p99 {p99:?}) while 2 of 20 hang"
    );
    // Until the first hanging attempts have run a second, the hanging endpoints may take slots
    // like any other; from then on this worker holds them back to a quarter of its slots.
    let settled = percentile(2_500, 99);
    assert!(
        settled < Duration::from_millis(250),
        "healthy endpoints' latency p99 {settled:?} once the hanging ones were held back"
    );
    hookd.terminate().await;
}

#[tokio::test]
async fn an_app_publishing_a_flood_does_not_hold_back_the_events_of_another_app() {
    let db = TestDb::create().await;
    // Two worker processes: the order is the database's, whichever worker claims.
    let limited = [("HOOKD_WORKER_CONCURRENCY", "8")];
    let hookd = Hookd::start(&db, "serve", &limited).await;
    let worker = Hookd::start(&db, "worker", &limited).await;
    let api = Client::new(&hookd);
    let flooder = api.create_app().await;
    let other = api.create_app().await;
    // Every request takes the receivers 10 ms: 16 slots deliver at most 1,600 a second, so the
    // flood below keeps the workers busy for 5 s or more.
    let slow = || -> Behavior { Arc::new(|_| (204, Duration::from_millis(10))) };
    let mut flood_receiver = Receiver::start(slow()).await;
    let mut other_receiver = Receiver::start(slow()).await;
    api.create_endpoint(&flooder, json!({"url": flood_receiver.url}))
        .await;
    api.create_endpoint(&other, json!({"url": other_receiver.url}))
        .await;

    let flood: Vec<Value> = (0..1000)
        .map(|n| json!({"type": "flood", "payload": {"n": n}}))
        .collect();
    for _ in 0..8 {
        api.publish_batch(&flooder, &flood).await;
    }
    // Then the other app publishes 20 events, 50 ms apart, while the flood drains. Claiming
    // oldest-first, the first would wait for the whole flood, seconds.
    let start = Instant::now();
    for i in 0..20u64 {
        tokio::time::sleep_until((start + Duration::from_millis(i * 50)).into()).await;
        let sent_ms = start.elapsed().as_millis() as u64;
        api.publish(&other, "other", json!({"sent_ms": sent_ms}))
            .await;
    }
    let mut latencies: Vec<Duration> = other_receiver
        .take(20)
        .await
        .iter()
        .map(|received| {
            let body: Value = serde_json::from_str(&received.body).unwrap();
            let sent = start + Duration::from_millis(body["data"]["sent_ms"].as_u64().unwrap());
            received.at.duration_since(sent)
        })
        .collect();
    latencies.sort();
    let worst = latencies[latencies.len() - 1];
    let flood_arrived_by_then = flood_receiver.rx.len();
    assert!(
        worst < Duration::from_millis(500),
        "the other app's slowest delivery took {worst:?} (median {:?}) behind a flood of 8,000",
        latencies[latencies.len() / 2]
    );
    // The flood still arrives whole: fairness orders the claims, it does not drop or cap them.
    let flood_arrived = flood_receiver.take(8000).await;
    assert_eq!(flood_arrived.len(), 8000);
    assert!(
        flood_arrived_by_then < 8000,
        "the flood was over before the other app's events arrived: nothing was measured"
    );
    db.assert_projection_consistent().await;
    worker.terminate().await;
    hookd.terminate().await;
}
