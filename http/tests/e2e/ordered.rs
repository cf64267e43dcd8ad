//! Ordered delivery: an ordered endpoint receives in publish order, one at a time, through
//! retries, a worker killed mid-run, several workers, dead letters and redrives. Verdicts come
//! from the receiver's record of what arrived.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

/// Every answer takes this long, so that two requests in flight at once would overlap in time.
const ANSWER_DELAY: Duration = Duration::from_millis(15);

fn payload_n(received: &Received) -> i64 {
    let body: Value = serde_json::from_str(&received.body).unwrap();
    body["data"]["n"].as_i64().unwrap()
}

/// No request began before the previous one was answered.
fn assert_one_at_a_time(arrived: &[Received]) {
    for pair in arrived.windows(2) {
        assert!(
            pair[1].at >= pair[0].at + ANSWER_DELAY,
            "two requests overlapped: n={} then n={}",
            payload_n(&pair[0]),
            payload_n(&pair[1])
        );
    }
}

#[tokio::test]
async fn ordered_delivery_keeps_publish_order_through_retries_and_a_killed_worker() {
    let db = TestDb::create().await;
    let api_process = Hookd::start(&db, "api", &[]).await;
    let env = [
        ("HOOKD_DELIVERY_TIMEOUT_MS", "500"),
        ("HOOKD_LEASE_MARGIN_MS", "500"),
        ("HOOKD_RETRY_BASE_MS", "10"),
        ("HOOKD_RETRY_CAP_MS", "50"),
        ("HOOKD_MAX_ATTEMPTS", "100"),
        ("HOOKD_CIRCUIT_FAILURES", "1000"),
    ];
    let mut workers = vec![
        Hookd::start(&db, "worker", &env).await,
        Hookd::start(&db, "worker", &env).await,
    ];
    let api = Client::new(&api_process);
    let key = api.create_app().await;
    // Every third request fails: each of those deliveries retries while the rest wait.
    let mut receiver = Receiver::start(Arc::new(|i| {
        (if i % 3 == 1 { 500 } else { 204 }, ANSWER_DELAY)
    }))
    .await;
    let (endpoint, _) = api
        .create_endpoint(&key, json!({"url": receiver.url, "ordered": true}))
        .await;
    let other = Receiver::ok().await;
    // An unordered endpoint of the same app keeps going as usual.
    api.create_endpoint(&key, json!({"url": other.url})).await;

    let single = 30;
    for n in 0..single {
        api.publish(&key, "order.paid", json!({"n": n})).await;
    }
    let batch: Vec<Value> = (single..single + 10)
        .map(|n| json!({"type": "order.paid", "payload": {"n": n}}))
        .collect();
    api.publish_batch(&key, &batch).await;
    let total = single + 10;

    // Kill a worker once a third has arrived: its lease expires and the lane waits for it.
    let mut arrived = receiver.take(15).await;
    workers.remove(0).kill().await;
    workers.push(Hookd::start(&db, "worker", &env).await);

    // Accepted deliveries, in arrival order, with a redelivery after the crash collapsed.
    let mut accepted: Vec<i64> = Vec::new();
    let mut index = 0;
    loop {
        while index < arrived.len() {
            if index % 3 != 1 {
                let n = payload_n(&arrived[index]);
                if accepted.last() != Some(&n) {
                    accepted.push(n);
                }
            }
            index += 1;
        }
        if accepted.len() == total as usize {
            break;
        }
        arrived.push(receiver.next().await);
    }
    assert_eq!(accepted, (0..total).collect::<Vec<_>>(), "publish order");
    assert_one_at_a_time(&arrived);
    // Every attempt of a delivery came before any attempt of the next.
    let sent: Vec<i64> = arrived.iter().map(payload_n).collect();
    assert!(sent.windows(2).all(|w| w[0] <= w[1]), "{sent:?}");
    let detail = api.endpoint(&key, &endpoint).await;
    assert_eq!(detail["ordered"], true, "{detail}");

    for worker in workers {
        worker.terminate().await;
    }
    db.assert_projection_consistent().await;
}

#[tokio::test]
async fn a_dead_letter_lets_the_next_go_and_a_redrive_waits_its_turn() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(
        &db,
        "serve",
        &[("HOOKD_RETRY_BASE_MS", "10"), ("HOOKD_RETRY_CAP_MS", "20")],
    )
    .await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    // The second delivery (n = 1) fails both of its attempts and is dead-lettered.
    let mut receiver = Receiver::start(Arc::new(|i| {
        (if i == 1 || i == 2 { 500 } else { 204 }, ANSWER_DELAY)
    }))
    .await;
    let (endpoint, _) = api
        .create_endpoint(
            &key,
            json!({"url": receiver.url, "ordered": true, "max_attempts": 2}),
        )
        .await;
    let mut deliveries = Vec::new();
    for n in 0..4 {
        let event = api.publish(&key, "order.paid", json!({"n": n})).await;
        deliveries.push(event["deliveries"][0]["id"].as_str().unwrap().to_owned());
    }
    let arrived = receiver.take(5).await;
    let sent: Vec<i64> = arrived.iter().map(payload_n).collect();
    assert_eq!(sent, [0, 1, 1, 2, 3]);
    assert_one_at_a_time(&arrived);
    api.wait_for_state(&key, &deliveries[1], "dead").await;
    api.wait_for_state(&key, &deliveries[3], "succeeded").await;

    // While a delivery is retrying, a redriven dead letter waits behind it.
    receiver.set_behavior(Arc::new(|i| (if i == 5 { 500 } else { 204 }, ANSWER_DELAY)));
    let event = api.publish(&key, "order.paid", json!({"n": 4})).await;
    let fifth = event["deliveries"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/v1/deliveries/{}/redrive", deliveries[1]),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let arrived = receiver.take(3).await;
    let sent: Vec<i64> = arrived.iter().map(payload_n).collect();
    // n = 4 was first in line when the redrive came, so it goes first (and retries once).
    assert_eq!(sent, [4, 4, 1], "{sent:?}");
    api.wait_for_state(&key, &fifth, "succeeded").await;
    api.wait_for_state(&key, &deliveries[1], "succeeded").await;
    let history = api.history_kinds(&key, &deliveries[1]).await;
    assert!(history.contains(&"resumed".to_owned()), "{history:?}");

    // Turning ordering off releases whatever waits in line.
    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("/v1/endpoints/{endpoint}"),
            &key,
            Some(json!({"ordered": false})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ordered"], false);
    hookd.terminate().await;
    db.assert_projection_consistent().await;
}
