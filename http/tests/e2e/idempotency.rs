//! Idempotent publishing under concurrency, and group commit: concurrent publishes share
//! transactions yet each keeps the answer it would have had alone.

use reqwest::Method;
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
    let requests = (0..20).map(|_| api.publish_with_key(&key, "invoice-7", &body));
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
    let (status, problem) = api.publish_with_key(&key, "invoice-7", &other_body).await;
    assert_eq!(status, 409);
    assert_eq!(problem["type"], "urn:hookd:problem:idempotency-conflict");

    let other_key = api.create_app().await;
    let (status, _) = api
        .publish_with_key(&other_key, "invoice-7", &other_body)
        .await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn publishes_sharing_a_transaction_keep_their_own_answers() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "api", &[]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let other_app = api.create_app().await;
    let receiver = Receiver::ok().await;
    api.create_endpoint(&key, json!({"url": receiver.url}))
        .await;
    let (foreign_endpoint, _) = api
        .create_endpoint(&other_app, json!({"url": receiver.url}))
        .await;

    let (api, key, other_app) = (&api, key.as_str(), other_app.as_str());
    let foreign_endpoint = foreign_endpoint.as_str();
    // All at once, so that they queue behind each other's transactions: plain publishes of two
    // apps, five uses of one key with different bodies, two identical keyed requests, and
    // events naming another app's endpoint.
    let plain = (0..100).map(|n| {
        let app = if n % 5 == 0 { other_app } else { key };
        let body = json!({"type": "order.paid", "payload": {"n": n}});
        async move {
            (
                "plain",
                api.call(Method::POST, "/v1/events", app, Some(body)).await,
            )
        }
    });
    let reused = (0..5).map(|n| {
        let body = json!({"type": "order.paid", "payload": {"reused": n}});
        async move { ("reused", api.publish_with_key(key, "reused", &body).await) }
    });
    let same_body = json!({"type": "order.paid", "payload": {"same": true}});
    let same =
        (0..2).map(|_| async { ("same", api.publish_with_key(key, "same", &same_body).await) });
    let foreign = (0..3).map(|_| {
        let body = json!({"type": "order.paid", "payload": {}, "endpoint_ids": [foreign_endpoint]});
        async move {
            (
                "foreign",
                api.call(Method::POST, "/v1/events", key, Some(body)).await,
            )
        }
    });
    let mut requests: Vec<futures_util::future::BoxFuture<'_, (&str, (u16, serde_json::Value))>> =
        Vec::new();
    requests.extend(plain.map(|f| Box::pin(f) as _));
    requests.extend(reused.map(|f| Box::pin(f) as _));
    requests.extend(same.map(|f| Box::pin(f) as _));
    requests.extend(foreign.map(|f| Box::pin(f) as _));
    let answers = futures_util::future::join_all(requests).await;

    let statuses = |kind: &str| -> Vec<u16> {
        let mut s: Vec<u16> = answers
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, (status, _))| *status)
            .collect();
        s.sort_unstable();
        s
    };
    assert_eq!(statuses("plain"), vec![202; 100]);
    assert_eq!(statuses("reused"), [202, 409, 409, 409, 409]);
    assert_eq!(statuses("same"), [202, 202]);
    assert_eq!(statuses("foreign"), [400, 400, 400]);
    let same_ids: Vec<&serde_json::Value> = answers
        .iter()
        .filter(|(k, _)| *k == "same")
        .map(|(_, (_, body))| &body["id"])
        .collect();
    assert_eq!(
        same_ids[0], same_ids[1],
        "identical keyed requests get one event"
    );
    for (kind, (status, body)) in &answers {
        if *kind == "plain" && *status == 202 {
            assert!(
                body["id"].as_str().is_some_and(|id| id.starts_with("evt_")),
                "{body}"
            );
        }
    }

    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT xmin::text),
                    (SELECT count(*) FROM deliveries) FROM events",
            &[],
        )
        .await
        .unwrap();
    let (events, transactions, deliveries): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    // 100 plain, one per reused key, one for the identical pair; the other app's 20 events
    // match its own endpoint, the 80 of this app and its 2 keyed events this app's endpoint.
    assert_eq!((events, deliveries), (102, 102));
    assert!(
        transactions < events,
        "{events} events in {transactions} transactions: no publishes shared a transaction"
    );
}
