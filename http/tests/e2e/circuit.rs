//! The circuit breaker and automatic disabling, with several worker processes sharing one
//! database: verdicts come from the receiver's record and the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

/// A receiver that answers 503 while `up` is false and 204 once it is true.
async fn switchable_receiver(up: Arc<AtomicBool>) -> Receiver {
    Receiver::start(Arc::new(move |_| {
        if up.load(Ordering::SeqCst) {
            (204, Duration::ZERO)
        } else {
            (503, Duration::ZERO)
        }
    }))
    .await
}

/// Polls the endpoint until `done` holds for it.
async fn wait_for_endpoint(
    api: &Client,
    key: &str,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let body = api.endpoint(key, id).await;
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "the endpoint never became {what}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Polls the database until `sql` counts `want`.
async fn wait_for_count(client: &tokio_postgres::Client, sql: &str, want: i64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let n = count(client, sql).await;
        if n == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: {n}, never {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Webhooks that arrive within `window`.
async fn arrivals_during(receiver: &mut Receiver, window: Duration) -> usize {
    let end = tokio::time::Instant::now() + window;
    let mut n = 0;
    while tokio::time::timeout_at(end, receiver.rx.recv())
        .await
        .is_ok()
    {
        n += 1;
    }
    n
}

#[tokio::test]
async fn an_open_circuit_parks_deliveries_until_a_probe_succeeds_across_workers() {
    let db = TestDb::create().await;
    let api_process = Hookd::start(&db, "api", &[]).await;
    let env = [
        ("HOOKD_CIRCUIT_FAILURES", "3"),
        ("HOOKD_CIRCUIT_COOLDOWN", "400ms"),
        ("HOOKD_CIRCUIT_COOLDOWN_CAP", "800ms"),
        // Without the circuit, 30 deliveries retried every 20–100 ms would hammer the receiver.
        ("HOOKD_RETRY_BASE_MS", "20"),
        ("HOOKD_RETRY_CAP_MS", "100"),
        ("HOOKD_MAX_ATTEMPTS", "100"),
    ];
    let workers = [
        Hookd::start(&db, "worker", &env).await,
        Hookd::start(&db, "worker", &env).await,
    ];
    let api = Client::new(&api_process);
    let key = api.create_app().await;
    let up = Arc::new(AtomicBool::new(false));
    let mut receiver = switchable_receiver(up.clone()).await;
    let (endpoint_id, _) = api
        .create_endpoint(&key, json!({"url": receiver.url}))
        .await;
    for n in 0..30 {
        api.publish(&key, "order.paid", json!({"n": n})).await;
    }

    let open = wait_for_endpoint(&api, &key, &endpoint_id, "open", |e| {
        e["circuit"]["state"] != "closed"
    })
    .await;
    assert!(
        open["circuit"]["consecutive_failures"].as_i64().unwrap() >= 3,
        "{open}"
    );
    assert!(open["circuit"]["failing_since"].is_string(), "{open}");
    assert!(open["enabled"].as_bool().unwrap(), "{open}");

    // While open, only probes reach the receiver: at most one per cooldown (400–800 ms), plus
    // attempts already in flight when it opened.
    let _ = arrivals_during(&mut receiver, Duration::from_millis(300)).await;
    let during = arrivals_during(&mut receiver, Duration::from_secs(2)).await;
    assert!(
        during <= 6,
        "{during} attempts reached a receiver behind an open circuit"
    );

    let client = db.client().await;
    assert!(
        count(&client, "SELECT count(*) FROM delivery_log WHERE kind = 'deferred' AND error_class = 'circuit_open'").await > 0
    );
    assert!(
        count(
            &client,
            "SELECT count(*) FROM delivery_log WHERE error_class = 'circuit_probe'"
        )
        .await
            > 0
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM deliveries WHERE state NOT IN ('pending', 'in_flight')"
        )
        .await,
        0,
        "nothing is dead-lettered or dropped while the circuit is open"
    );
    // Parked deliveries were not charged: far fewer attempts than 30 deliveries retried for
    // seconds would have made.
    let charged = count(
        &client,
        "SELECT coalesce(sum(attempts), 0)::bigint FROM deliveries",
    )
    .await;
    assert!(charged < 30 + 30, "{charged} attempts charged");

    // The receiver recovers: the next probe closes the circuit and the parked deliveries flow.
    up.store(true, Ordering::SeqCst);
    wait_for_count(
        &client,
        "SELECT count(*) FROM deliveries WHERE state = 'succeeded'",
        30,
    )
    .await;
    let closed = api.endpoint(&key, &endpoint_id).await;
    assert_eq!(closed["circuit"]["state"], "closed", "{closed}");
    assert_eq!(closed["circuit"]["consecutive_failures"], 0, "{closed}");
    assert!(closed["circuit"]["last_success_at"].is_string(), "{closed}");
    assert!(
        count(&client, "SELECT count(*) FROM delivery_log WHERE kind = 'resumed' AND error_class = 'circuit_closed'").await > 0
    );

    // A parked delivery's history tells the story.
    let parked_delivery: String = client
        .query_one(
            "SELECT 'dlv_' || replace(delivery_id::text, '-', '') FROM delivery_log
             WHERE kind = 'resumed' LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let kinds = api.history_kinds(&key, &parked_delivery).await;
    let deferred = kinds.iter().position(|k| k == "deferred").unwrap();
    let resumed = kinds.iter().position(|k| k == "resumed").unwrap();
    assert!(deferred < resumed, "{kinds:?}");
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("attempt_succeeded"),
        "{kinds:?}"
    );

    for worker in workers {
        worker.terminate().await;
    }
    db.assert_projection_consistent().await;
}

#[tokio::test]
async fn an_endpoint_failing_too_long_is_disabled_and_recovered_once_enabled() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(
        &db,
        "serve",
        &[
            ("HOOKD_AUTO_DISABLE_AFTER", "1s"),
            ("HOOKD_CIRCUIT_FAILURES", "1000"),
            ("HOOKD_MAX_ATTEMPTS", "100"),
            ("HOOKD_RETRY_BASE_MS", "50"),
            ("HOOKD_RETRY_CAP_MS", "200"),
        ],
    )
    .await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let up = Arc::new(AtomicBool::new(false));
    let receiver = switchable_receiver(up.clone()).await;
    let (endpoint_id, _) = api
        .create_endpoint(&key, json!({"url": receiver.url}))
        .await;
    let started = chrono::Utc::now() - chrono::Duration::minutes(1);
    let mut deliveries = Vec::new();
    for n in 0..5 {
        let event = api.publish(&key, "order.paid", json!({"n": n})).await;
        deliveries.push(event["deliveries"][0]["id"].as_str().unwrap().to_owned());
    }

    let disabled = wait_for_endpoint(&api, &key, &endpoint_id, "disabled", |e| {
        e["enabled"] == false
    })
    .await;
    let reason = disabled["disabled_reason"].as_str().unwrap();
    assert!(reason.contains("failing since"), "{reason}");
    for id in &deliveries {
        let dead = api.wait_for_state(&key, id, "dead").await;
        assert!(
            dead["last_error"].as_str().unwrap().contains("disabled"),
            "{dead}"
        );
    }
    // Nothing new is delivered to it while disabled.
    let event = api.publish(&key, "order.paid", json!({"late": true})).await;
    assert_eq!(event["deliveries"].as_array().unwrap().len(), 0, "{event}");

    up.store(true, Ordering::SeqCst);
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/v1/endpoints/{endpoint_id}/enable"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["circuit"]["state"], "closed", "{body}");
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/v1/endpoints/{endpoint_id}/recover"),
            &key,
            Some(json!({"since": started.to_rfc3339()})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["redriven"], 5, "{body}");
    for id in &deliveries {
        api.wait_for_state(&key, id, "succeeded").await;
    }
    hookd.terminate().await;
    db.assert_projection_consistent().await;
}
