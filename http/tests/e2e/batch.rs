//! Batch publishing: one transaction, per-event idempotency keys, explicit endpoints.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

async fn count(db: &TestDb, table: &str) -> i64 {
    db.client()
        .await
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

fn endpoints_of(entry: &Value) -> Vec<&str> {
    entry["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["endpoint_id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_batch_commits_together_with_its_own_keys_and_targets() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "api", &[]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let receiver = Receiver::ok().await;
    let (a, _) = api
        .create_endpoint(&key, json!({"url": receiver.url, "event_types": ["a"]}))
        .await;
    let (b, _) = api
        .create_endpoint(&key, json!({"url": receiver.url, "event_types": ["b"]}))
        .await;
    let batch = json!({"events": [
        {"type": "a", "payload": {"n": 0}},
        {"type": "b", "payload": {"n": 1}, "idempotency_key": "k1"},
        {"type": "a", "payload": {"n": 2}, "endpoint_ids": [b]},
        {"type": "b", "payload": {"n": 1}, "idempotency_key": "k1"},
    ]});
    let (status, first) = api
        .call(Method::POST, "/v1/events/batch", &key, Some(batch.clone()))
        .await;
    assert_eq!(status, 202, "{first}");
    let data = first["data"].as_array().unwrap();
    assert_eq!(data.len(), 4);
    assert_eq!(endpoints_of(&data[0]), [a.as_str()]);
    assert_eq!(endpoints_of(&data[1]), [b.as_str()]);
    assert_eq!(
        endpoints_of(&data[2]),
        [b.as_str()],
        "explicit endpoints replace type matching"
    );
    assert_eq!(
        data[3], data[1],
        "a key repeated within the batch is one event"
    );
    assert_eq!(count(&db, "events").await, 3);

    // Repeated: the keyed event replays, the others are new events.
    let (_, again) = api
        .call(Method::POST, "/v1/events/batch", &key, Some(batch))
        .await;
    assert_eq!(again["data"][1], data[1]);
    assert_ne!(again["data"][0]["id"], data[0]["id"]);
    assert_eq!(count(&db, "events").await, 5);

    // One bad event fails the whole batch, and nothing of it is committed.
    let conflicting = json!({"events": [
        {"type": "a", "payload": {}},
        {"type": "b", "payload": {"n": "other"}, "idempotency_key": "k1"},
    ]});
    let (status, problem) = api
        .call(Method::POST, "/v1/events/batch", &key, Some(conflicting))
        .await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("events[1].idempotency_key")
    );
    let other_app = api.create_app().await;
    let (foreign, _) = api
        .create_endpoint(&other_app, json!({"url": receiver.url}))
        .await;
    let (status, problem) = api
        .call(
            Method::POST,
            "/v1/events/batch",
            &key,
            Some(json!({"events": [{"type": "a", "payload": {}, "endpoint_ids": [foreign]}]})),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("events[0].endpoint_ids")
    );
    assert_eq!(count(&db, "events").await, 5);
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/events/batch",
            &key,
            Some(json!({"events": []})),
        )
        .await;
    assert_eq!(status, 400);

    // A full batch of 1,000 in one request.
    let events: Vec<Value> = (0..1000)
        .map(|i| json!({"type": "a", "payload": {"i": i}}))
        .collect();
    let (status, full) = api
        .call(
            Method::POST,
            "/v1/events/batch",
            &key,
            Some(json!({"events": events})),
        )
        .await;
    assert_eq!(status, 202, "{full}");
    assert_eq!(full["data"].as_array().unwrap().len(), 1000);
    assert_eq!(count(&db, "events").await, 1005);
    let events: Vec<Value> = (0..1001)
        .map(|_| json!({"type": "a", "payload": {}}))
        .collect();
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/events/batch",
            &key,
            Some(json!({"events": events})),
        )
        .await;
    assert_eq!(status, 400, "more than 1,000 events are refused");
}
