//! Workers are woken by NOTIFY, not by polling, and recover from a lost LISTEN connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use hookd_engine::store::Store;
use hookd_engine::store::deliveries::{ScanFloor, delivery_claim_due};
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn a_notification_wakes_a_worker_sleeping_on_a_far_off_retry() {
    let db = TestDb::create().await;
    // Retries an hour away: the worker's only timer is far off.
    let hookd = Hookd::start(
        &db,
        "serve",
        &[
            ("HOOKD_RETRY_BASE_MS", "3600000"),
            ("HOOKD_RETRY_CAP_MS", "3600000"),
        ],
    )
    .await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let mut failing = Receiver::start(Arc::new(|_| (500, Duration::ZERO))).await;
    api.create_endpoint(&key, json!({"url": failing.url, "event_types": ["a"]}))
        .await;
    let first = api.publish(&key, "a", json!({})).await;
    failing.next().await;
    let first_id = first["deliveries"][0]["id"].as_str().unwrap();
    let pending = api.wait_for_state(&key, first_id, "pending").await;
    let next_attempt: chrono::DateTime<chrono::Utc> = pending["next_attempt_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(next_attempt - chrono::Utc::now() > chrono::TimeDelta::minutes(50));
    // Let the worker settle into its long sleep.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut healthy = Receiver::ok().await;
    api.create_endpoint(&key, json!({"url": healthy.url, "event_types": ["b"]}))
        .await;
    let published_at = Instant::now();
    api.publish(&key, "b", json!({})).await;
    let got = healthy.next().await;
    let latency = got.at - published_at;
    assert!(
        latency < Duration::from_secs(2),
        "the notification should wake the worker at once, took {latency:?}"
    );
    // The far-off retry is still waiting: nothing polled it early.
    assert_eq!(api.delivery(&key, first_id).await["attempts"], 1);
    assert!(failing.rx.try_recv().is_err());
}

#[tokio::test]
async fn workers_reconnect_and_catch_up_after_losing_their_connections() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "serve", &[]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let mut receiver = Receiver::ok().await;
    api.create_endpoint(&key, json!({"url": receiver.url}))
        .await;
    api.publish(&key, "before", json!({})).await;
    receiver.next().await;

    // Cut every hookd connection, the LISTEN one included.
    let client = db.client().await;
    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'hookd'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        killed >= 2,
        "expected the pool and the LISTEN connection, killed {killed}"
    );

    // The API answers again once its pool replaces the dead connections.
    let deadline = Instant::now() + PATIENCE;
    let accepted = loop {
        let (status, body) = api
            .call(
                reqwest::Method::POST,
                "/v1/events",
                &key,
                Some(json!({"type": "after", "payload": {}})),
            )
            .await;
        if status == 202 {
            break body;
        }
        assert_eq!(
            status, 503,
            "a lost connection must read as unavailable: {body}"
        );
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let got = receiver.next().await;
    assert_eq!(got.headers["webhook-id"], accepted["id"].as_str().unwrap());
}

#[tokio::test]
async fn a_delivery_left_below_the_claim_floor_is_found_by_the_scan_from_the_head() {
    let db = TestDb::create().await;
    let api_process = Hookd::start(&db, "api", &[]).await;
    let api = Client::new(&api_process);
    let _worker = Hookd::start(
        &db,
        "worker",
        &[
            ("HOOKD_RETRY_BASE_MS", "3600000"),
            ("HOOKD_RETRY_CAP_MS", "3600000"),
        ],
    )
    .await;
    let key = api.create_app().await;
    let mut stuck = Receiver::start(Arc::new(|_| (500, Duration::ZERO))).await;
    api.create_endpoint(&key, json!({"url": stuck.url, "event_types": ["stuck"]}))
        .await;
    let mut ticks = Receiver::ok().await;
    api.create_endpoint(&key, json!({"url": ticks.url, "event_types": ["tick"]}))
        .await;
    let event = api.publish(&key, "stuck", json!({})).await;
    stuck.next().await;
    let id = event["deliveries"][0]["id"].as_str().unwrap().to_owned();
    api.wait_for_state(&key, &id, "pending").await;

    // Claims now run with a floor just behind them.
    for _ in 0..5 {
        api.publish(&key, "tick", json!({})).await;
        ticks.next().await;
    }
    // What a claim that failed mid-way, or a very long transaction, could leave: a delivery due
    // long before the floor of any claim to come.
    stuck.set_behavior(Arc::new(|_| (204, Duration::ZERO)));
    let uuid = id.strip_prefix("dlv_").unwrap();
    db.client()
        .await
        .batch_execute(&format!(
            "UPDATE delivery_queue SET due_at = now() - interval '10 minutes',
                 fair_key = now() - interval '10 minutes'
             WHERE delivery_id = '{uuid}';
             UPDATE deliveries SET due_at = now() - interval '10 minutes' WHERE id = '{uuid}';
             SELECT pg_notify('hookd_work', '')"
        ))
        .await
        .unwrap();
    // The worker sleeps with nothing due above its floor: only its scan from the head, owed
    // within seconds of the claims with a floor, can find the delivery.
    let got = stuck.next().await;
    assert_eq!(got.headers["webhook-id"], event["id"].as_str().unwrap());
    api.wait_for_state(&key, &id, "succeeded").await;
}

/// The claim's two scans of pending deliveries, run as a worker runs them: what became due below
/// the floor goes first, in the order it became due; a claim that this scan fills reaches no
/// position (so that the next one scans from the head rather than skip what it left), and only
/// the scan from the floor up moves the floor.
#[tokio::test]
async fn only_the_scan_from_the_floor_up_moves_the_floor() {
    let db = TestDb::create().await;
    let api_process = Hookd::start(&db, "api", &[]).await;
    let api = Client::new(&api_process);
    let key = api.create_app().await;
    let receiver = Receiver::ok().await;
    api.create_endpoint(&key, json!({"url": receiver.url, "event_types": ["a"]}))
        .await;
    let now = || async {
        let row = db.client().await.query_one("SELECT now()", &[]).await;
        row.unwrap().get::<_, DateTime<Utc>>(0)
    };
    let publish = |count| {
        let (api, key) = (&api, &key);
        async move {
            let mut ids = Vec::new();
            for _ in 0..count {
                let event = api.publish(key, "a", json!({})).await;
                ids.push(event["deliveries"][0]["id"].as_str().unwrap().to_owned());
            }
            ids
        }
    };
    let store = Store::connect(&db.url, 1).unwrap();
    let claim = |floor| {
        let store = &store;
        async move {
            let timeout = Duration::from_secs(5);
            let batch = delivery_claim_due(store, "w", 2, timeout, timeout, &[], floor).await;
            let batch = batch.unwrap();
            // In publish order (the ids are time-ordered), not the order the rows came back in.
            let mut ids: Vec<String> = batch.leased.iter().map(|c| c.id.to_string()).collect();
            ids.sort();
            (ids, batch.reached)
        }
    };

    // Three deliveries become due below a floor an hour ahead; a batch of two takes the first
    // two to become due and reaches no position, the next takes the third.
    let began = now().await;
    let below = publish(3).await;
    let far_floor = ScanFloor::After {
        began,
        reached: Some(began + TimeDelta::hours(1)),
    };
    assert_eq!(claim(far_floor).await, (below[..2].to_vec(), None));
    assert_eq!(claim(far_floor).await, (below[2..].to_vec(), None));

    // Above a floor an hour behind, the scan from the floor takes them and reaches a position.
    let began = now().await;
    let above = publish(2).await;
    let low_floor = ScanFloor::After {
        began,
        reached: Some(began - TimeDelta::hours(1)),
    };
    let (taken, reached) = claim(low_floor).await;
    assert_eq!(taken, above);
    assert!(
        reached.is_some_and(|position| position >= began),
        "the scan from the floor reached {reached:?}, not past {began}"
    );
}
