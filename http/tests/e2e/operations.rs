//! Reading events and deliveries, cancelling, bulk redrive, recover and endpoint statistics.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

fn ids(list: &serde_json::Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn events_and_deliveries_are_listed_filtered_and_read() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "serve", &[]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let mut receiver = Receiver::ok().await;
    let (first_endpoint, _) = api
        .create_endpoint(&key, json!({"url": receiver.url}))
        .await;
    api.create_endpoint(&key, json!({"url": receiver.url}))
        .await;
    let mut events = Vec::new();
    for (i, event_type) in ["a", "b", "a"].iter().enumerate() {
        events.push(api.publish(&key, event_type, json!({"n": i})).await);
    }
    for _ in 0..6 {
        receiver.next().await;
    }

    let (status, of_type_a) = api.call(Method::GET, "/v1/events?type=a", &key, None).await;
    assert_eq!(status, 200, "{of_type_a}");
    assert_eq!(
        ids(&of_type_a),
        [
            events[2]["id"].as_str().unwrap(),
            events[0]["id"].as_str().unwrap()
        ],
        "newest first"
    );
    let event_id = events[1]["id"].as_str().unwrap();
    let (status, event) = api
        .call(Method::GET, &format!("/v1/events/{event_id}"), &key, None)
        .await;
    assert_eq!(status, 200, "{event}");
    assert_eq!(
        (event["type"].as_str(), &event["payload"]),
        (Some("b"), &json!({"n": 1}))
    );
    assert_eq!(event["deliveries"].as_array().unwrap().len(), 2);

    let path = format!("/v1/deliveries?event_id={event_id}");
    let (_, of_event) = api.call(Method::GET, &path, &key, None).await;
    assert_eq!(of_event["data"].as_array().unwrap().len(), 2);
    let path = format!("/v1/deliveries?endpoint_id={first_endpoint}&limit=2");
    let (_, page_one) = api.call(Method::GET, &path, &key, None).await;
    let cursor = page_one["next_cursor"].as_str().unwrap();
    let (_, page_two) = api
        .call(Method::GET, &format!("{path}&cursor={cursor}"), &key, None)
        .await;
    assert_eq!((ids(&page_one).len(), ids(&page_two).len()), (2, 1));
    assert!(page_two["next_cursor"].is_null());

    // Time filters: nothing was created in the future, everything before it.
    let future = (chrono::Utc::now() + chrono::TimeDelta::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, none) = api
        .call(
            Method::GET,
            &format!("/v1/deliveries?after={future}"),
            &key,
            None,
        )
        .await;
    assert!(ids(&none).is_empty());
    let (_, all) = api
        .call(
            Method::GET,
            &format!("/v1/events?before={future}"),
            &key,
            None,
        )
        .await;
    assert_eq!(ids(&all).len(), 3);
    let (status, _) = api
        .call(Method::GET, "/v1/deliveries?state=bogus", &key, None)
        .await;
    assert_eq!(status, 400);
    let (status, _) = api
        .call(Method::GET, "/v1/events?cursor=zzz", &key, None)
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn cancel_bulk_redrive_and_recover_bring_dead_letters_home() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "serve", &[]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let mut failing = Receiver::start(Arc::new(|_| (500, Duration::ZERO))).await;
    let (endpoint, _) = api
        .create_endpoint(
            &key,
            json!({"url": failing.url, "max_attempts": 1, "event_types": ["dies"]}),
        )
        .await;
    let mut dead = Vec::new();
    for _ in 0..3 {
        let accepted = api.publish(&key, "dies", json!({})).await;
        dead.push(accepted["deliveries"][0]["id"].as_str().unwrap().to_owned());
    }
    for id in &dead {
        failing.next().await;
        api.wait_for_state(&key, id, "dead").await;
    }

    // A delivery waiting on a far retry can be cancelled, once.
    let slow = Receiver::start(Arc::new(|_| (503, Duration::ZERO))).await;
    api.create_endpoint(
        &key,
        json!({"url": slow.url, "retry_base_ms": 3600000, "event_types": ["waits"]}),
    )
    .await;
    let waiting = api.publish(&key, "waits", json!({})).await;
    let waiting = waiting["deliveries"][0]["id"].as_str().unwrap().to_owned();
    api.wait_for_state(&key, &waiting, "pending").await;
    let cancel = format!("/v1/deliveries/{waiting}/cancel");
    let (status, cancelled) = api.call(Method::POST, &cancel, &key, None).await;
    assert_eq!(
        (status, cancelled["state"].as_str()),
        (200, Some("cancelled"))
    );
    let (status, problem) = api.call(Method::POST, &cancel, &key, None).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (409, Some("urn:hookd:problem:not-cancellable"))
    );
    // Only dead-lettered or delivered deliveries can be redriven.
    let redrive = format!("/v1/deliveries/{waiting}/redrive");
    let (status, problem) = api.call(Method::POST, &redrive, &key, None).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (409, Some("urn:hookd:problem:not-redrivable"))
    );

    // The receiver recovers; bulk redrive by endpoint brings all three home, and is idempotent.
    failing.set_behavior(Arc::new(|_| (200, Duration::ZERO)));
    let body = json!({"endpoint_id": endpoint, "event_type": "dies"});
    let (status, redriven) = api
        .call(
            Method::POST,
            "/v1/deliveries/redrive",
            &key,
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        (status, redriven["redriven"].as_u64()),
        (202, Some(3)),
        "{redriven}"
    );
    for id in &dead {
        api.wait_for_state(&key, id, "succeeded").await;
    }
    let (_, again) = api
        .call(Method::POST, "/v1/deliveries/redrive", &key, Some(body))
        .await;
    assert_eq!(again["redriven"], 0);

    // Recover: the endpoint's dead letters since a time.
    failing.set_behavior(Arc::new(|_| (500, Duration::ZERO)));
    let accepted = api.publish(&key, "dies", json!({})).await;
    let late = accepted["deliveries"][0]["id"].as_str().unwrap().to_owned();
    api.wait_for_state(&key, &late, "dead").await;
    failing.set_behavior(Arc::new(|_| (200, Duration::ZERO)));
    let since = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).to_rfc3339();
    let recover = format!("/v1/endpoints/{endpoint}/recover");
    let (status, recovered) = api
        .call(Method::POST, &recover, &key, Some(json!({"since": since})))
        .await;
    assert_eq!(
        (status, recovered["redriven"].as_u64()),
        (202, Some(1)),
        "{recovered}"
    );
    api.wait_for_state(&key, &late, "succeeded").await;
    db.assert_projection_consistent().await;
}

#[tokio::test]
async fn endpoint_stats_report_states_success_rate_and_latency() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "serve", &[("HOOKD_RETRY_BASE_MS", "10")]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    // Every first attempt fails, every retry succeeds: half the attempts succeed.
    let receiver = Receiver::start(Arc::new(|n| {
        (if n % 2 == 0 { 500 } else { 200 }, Duration::from_millis(5))
    }))
    .await;
    let (endpoint, _) = api
        .create_endpoint(&key, json!({"url": receiver.url}))
        .await;
    for _ in 0..4 {
        let accepted = api.publish(&key, "x", json!({})).await;
        let id = accepted["deliveries"][0]["id"].as_str().unwrap().to_owned();
        api.wait_for_state(&key, &id, "succeeded").await;
    }
    let (status, stats) = api
        .call(
            Method::GET,
            &format!("/v1/endpoints/{endpoint}/stats"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        stats["deliveries"],
        json!([{"state": "succeeded", "count": 4}])
    );
    assert_eq!(stats["attempts"], 8);
    assert_eq!(stats["success_rate"], 0.5);
    assert!(stats["latency_p50_ms"].as_f64().unwrap() >= 5.0, "{stats}");
    assert!(stats["latency_p99_ms"].as_f64() >= stats["latency_p50_ms"].as_f64());
    let (status, _) = api
        .call(
            Method::GET,
            &format!("/v1/endpoints/{endpoint}/stats?window_seconds=0"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 400);
}

/// The reads that must stay fast as the log grows use indexes, never a scan of a whole table.
#[tokio::test]
async fn history_and_dead_letter_reads_are_served_by_indexes() {
    let db = TestDb::create().await;
    let client = db.client().await;
    // With sequential scans priced out, a plan still containing one has no index to use.
    client
        .batch_execute("SET enable_seqscan = off")
        .await
        .unwrap();
    let app = uuid::Uuid::now_v7();
    let id = uuid::Uuid::now_v7();
    let queries = [
        (
            "one delivery's history",
            "SELECT l.* FROM deliveries d LEFT JOIN delivery_log l ON l.delivery_id = d.id
             WHERE d.id = $1 AND d.app_id = $2 ORDER BY l.seq",
        ),
        (
            "one endpoint's dead letters",
            "SELECT q.delivery_id FROM delivery_queue q WHERE q.endpoint_id = $1
               AND q.state = 'dead' AND q.app_id = $2
               AND q.delivery_id >= hookd_uuid_v7_floor(now() - interval '1 day')",
        ),
        (
            "a page of an app's dead deliveries",
            "SELECT d.id FROM delivery_queue q JOIN deliveries d ON d.id = q.delivery_id
             WHERE q.app_id = $2 AND q.state = 'dead' AND q.delivery_id < $1
             ORDER BY q.delivery_id DESC LIMIT 50",
        ),
        (
            "a page of an app's deliveries",
            "SELECT id FROM deliveries WHERE app_id = $2 AND id < $1 ORDER BY id DESC LIMIT 50",
        ),
        (
            "a page of an app's events of one type",
            "SELECT id FROM events WHERE app_id = $2 AND event_type = 'a' AND id < $1
             ORDER BY id DESC LIMIT 50",
        ),
    ];
    for (what, sql) in queries {
        let rows = client
            .query(&format!("EXPLAIN {sql}"), &[&id, &app])
            .await
            .unwrap();
        let plan: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
        let plan = plan.join("\n");
        assert!(!plan.contains("Seq Scan"), "{what} scans a table:\n{plan}");
        assert!(plan.contains("Index"), "{what}:\n{plan}");
    }
}
