//! Worker processes that crash, compete and shut down: nothing is lost, nothing is attempted
//! twice at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::harness::*;

async fn publish_many(api: &Client, key: &str, n: usize) -> HashSet<String> {
    let mut ids = HashSet::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(25) {
        let batch = chunk
            .iter()
            .map(|i| api.publish(key, "load", json!({"i": i})));
        for accepted in futures_util::future::join_all(batch).await {
            ids.insert(accepted["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn a_worker_killed_mid_delivery_loses_nothing() {
    let db = TestDb::create().await;
    let api_process = Hookd::start(&db, "api", &[]).await;
    let api = Client::new(&api_process);
    // The first webhooks hang until long after the kill.
    let mut receiver = Receiver::start(Arc::new(|n| {
        (
            204,
            if n < 5 {
                Duration::from_secs(3)
            } else {
                Duration::ZERO
            },
        )
    }))
    .await;
    let key = api.create_app().await;
    api.create_endpoint(&key, json!({"url": receiver.url}))
        .await;
    let worker_env = [
        ("HOOKD_DELIVERY_TIMEOUT_MS", "1000"),
        ("HOOKD_LEASE_MARGIN_MS", "500"),
        ("HOOKD_WORKER_CONCURRENCY", "5"),
    ];
    let worker = Hookd::start(&db, "worker", &worker_env).await;
    let published = publish_many(&api, &key, 20).await;
    receiver.next().await;
    worker.kill().await;

    let _replacement = Hookd::start(&db, "worker", &worker_env).await;
    let mut arrived = HashSet::new();
    while arrived.len() < published.len() {
        arrived.insert(receiver.next().await.headers["webhook-id"].clone());
    }
    assert_eq!(arrived, published);
    // Every delivery is recorded as delivered, some of them after their lease expired.
    let deadline = std::time::Instant::now() + PATIENCE;
    while count(
        &db,
        "SELECT count(*) FROM deliveries WHERE state = 'succeeded'",
    )
    .await
        < 20
    {
        assert!(
            std::time::Instant::now() < deadline,
            "deliveries not all succeeded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reclaimed = count(
        &db,
        "SELECT count(*) FROM delivery_log WHERE kind = 'claimed' AND error_class = 'lease_expired'",
    )
    .await;
    assert!(
        reclaimed >= 1,
        "the killed worker's leases should have been reclaimed"
    );
    db.assert_projection_consistent().await;
}

#[tokio::test]
async fn two_workers_never_attempt_the_same_delivery_at_once() {
    let db = TestDb::create().await;
    let api_process = Hookd::start(&db, "api", &[]).await;
    let api = Client::new(&api_process);
    let mut receiver = Receiver::start(Arc::new(|_| (204, Duration::from_millis(20)))).await;
    let key = api.create_app().await;
    api.create_endpoint(&key, json!({"url": receiver.url}))
        .await;
    let env = [
        ("HOOKD_WORKER_CONCURRENCY", "8"),
        ("HOOKD_CLAIM_BATCH", "4"),
    ];
    let _a = Hookd::start(&db, "worker", &env).await;
    let _b = Hookd::start(&db, "worker", &env).await;
    let published = publish_many(&api, &key, 200).await;

    let mut arrivals = Vec::new();
    let mut distinct = HashSet::new();
    while distinct.len() < published.len() {
        let got = receiver.next().await;
        assert_eq!(
            got.concurrent_same_id, 0,
            "a delivery was in flight twice at once"
        );
        distinct.insert(got.headers["webhook-id"].clone());
        arrivals.push(got);
    }
    // Without crashes nothing arrives twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(extra) = receiver.rx.try_recv() {
        arrivals.push(extra);
    }
    assert_eq!(arrivals.len(), published.len(), "duplicates arrived");
    let workers = count(
        &db,
        "SELECT count(DISTINCT worker_id) FROM delivery_log WHERE kind = 'claimed'",
    )
    .await;
    assert_eq!(workers, 2, "both workers should have shared the work");
}

#[tokio::test]
async fn sigterm_finishes_in_flight_work_and_exits_cleanly() {
    let db = TestDb::create().await;
    let api_process = Hookd::start(&db, "api", &[]).await;
    let api = Client::new(&api_process);
    let mut receiver = Receiver::start(Arc::new(|_| (204, Duration::from_millis(500)))).await;
    let key = api.create_app().await;
    api.create_endpoint(&key, json!({"url": receiver.url}))
        .await;
    let worker = Hookd::start(&db, "worker", &[("HOOKD_WORKER_CONCURRENCY", "2")]).await;
    publish_many(&api, &key, 6).await;
    receiver.next().await;

    let status = worker.terminate().await;
    assert!(status.success(), "hookd exited with {status}");
    // The sends in flight at SIGTERM finished and were recorded; nothing is left leased.
    let in_flight = count(
        &db,
        "SELECT count(*) FROM deliveries WHERE state = 'in_flight'",
    )
    .await;
    assert_eq!(in_flight, 0);
    let succeeded = count(
        &db,
        "SELECT count(*) FROM deliveries WHERE state = 'succeeded'",
    )
    .await;
    assert!(succeeded >= 1);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM deliveries WHERE state IN ('succeeded', 'pending')"
        )
        .await,
        6
    );
    db.assert_projection_consistent().await;
}
