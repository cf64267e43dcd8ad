//! Idempotent publishing under concurrency.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn twenty_concurrent_identical_requests_create_one_event() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "api", &[]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let receiver = Receiver::ok().await;
    api.create_endpoint(&key, json!({"url": receiver.url}))
        .await;

    let body = json!({"type": "invoice.created", "payload": {"invoice": 7}});
    let requests = (0..20).map(|_| publish_with_key(&api, &key, "invoice-7", &body));
    let answers = futures_util::future::join_all(requests).await;
    for (status, answer) in &answers {
        assert_eq!(*status, 202, "{answer}");
        assert_eq!(answer, &answers[0].1, "every answer is the original one");
    }
    let client = db.client().await;
    let events: i64 = client
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    let deliveries: i64 = client
        .query_one("SELECT count(*) FROM deliveries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((events, deliveries), (1, 1));

    // The same key with another body is a conflict; another app may use the same key freely.
    let other_body = json!({"type": "invoice.created", "payload": {"invoice": 8}});
    let (status, problem) = publish_with_key(&api, &key, "invoice-7", &other_body).await;
    assert_eq!(status, 409);
    assert_eq!(problem["type"], "urn:hookd:problem:idempotency-conflict");

    let other_key = api.create_app().await;
    let (status, _) = publish_with_key(&api, &other_key, "invoice-7", &other_body).await;
    assert_eq!(status, 202);
}

async fn publish_with_key(
    api: &Client,
    key: &str,
    idempotency_key: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = api
        .http
        .post(format!("{}/v1/events", api.base))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .header("Idempotency-Key", idempotency_key)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}
