//! Retention: a worker's background sweep removes delivered history past its age with its
//! deliveries and log rows, keeps dead letters for their longer age and everything unfinished,
//! expires idempotency keys, and the database refuses any other delete.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

/// Rows of `table` whose `column` equals the prefixed id's uuid.
async fn count(client: &tokio_postgres::Client, table: &str, column: &str, id: &str) -> i64 {
    let uuid = id.split_once('_').unwrap().1;
    client
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE {column} = $1::text::uuid"),
            &[&uuid],
        )
        .await
        .unwrap()
        .get(0)
}

/// Publishes one event with an idempotency key; its answer.
async fn publish_keyed(
    api: &Client,
    key: &str,
    idempotency_key: &str,
    event_type: &str,
) -> serde_json::Value {
    let body = json!({"type": event_type, "payload": {"n": 1}});
    let (status, answer) = api.publish_with_key(key, idempotency_key, &body).await;
    assert_eq!(status, 202, "{answer}");
    answer
}

#[tokio::test]
async fn the_sweep_removes_delivered_history_and_keeps_dead_letters_and_unfinished_work() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(
        &db,
        "serve",
        &[
            ("HOOKD_RETENTION", "1s"),
            ("HOOKD_DEAD_LETTER_RETENTION", "1h"),
            ("HOOKD_IDEMPOTENCY_RETENTION", "1s"),
            ("HOOKD_RETENTION_SWEEP_EVERY", "200ms"),
        ],
    )
    .await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let ok = Receiver::ok().await;
    let failing = Receiver::start(Arc::new(|_| (500, Duration::ZERO))).await;
    api.create_endpoint(&key, json!({"url": ok.url, "event_types": ["order.paid"]}))
        .await;
    api.create_endpoint(
        &key,
        json!({"url": failing.url, "event_types": ["order.failed"], "max_attempts": 1}),
    )
    .await;
    // Failing with a long backoff: pending for the whole test.
    api.create_endpoint(
        &key,
        json!({"url": failing.url, "event_types": ["order.pending"], "retry_base_ms": 3_600_000}),
    )
    .await;

    let delivered = publish_keyed(&api, &key, "paid-1", "order.paid").await;
    let dead = api.publish(&key, "order.failed", json!({})).await;
    let pending = api.publish(&key, "order.pending", json!({})).await;
    let unsubscribed = api.publish(&key, "order.nobody", json!({})).await;
    let delivery_of =
        |event: &serde_json::Value| event["deliveries"][0]["id"].as_str().unwrap().to_owned();
    let (delivered_dlv, dead_dlv, pending_dlv) = (
        delivery_of(&delivered),
        delivery_of(&dead),
        delivery_of(&pending),
    );
    api.wait_for_state(&key, &delivered_dlv, "succeeded").await;
    api.wait_for_state(&key, &dead_dlv, "dead").await;
    // Its first attempt failed; the next is an hour away.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let pending_state = api.delivery(&key, &pending_dlv).await;
        if pending_state["state"] == "pending" && pending_state["attempts"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{pending_state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = db.client().await;
    assert!(count(&client, "delivery_log", "delivery_id", &delivered_dlv).await >= 3);

    // The sweep runs every 200 ms and delivered history expires after 1 s.
    let event_path =
        |event: &serde_json::Value| format!("/v1/events/{}", event["id"].as_str().unwrap());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, _) = api
            .call(Method::GET, &event_path(&delivered), &key, None)
            .await;
        if status == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the delivered event was never removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = api
        .call(
            Method::GET,
            &format!("/v1/deliveries/{delivered_dlv}"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(count(&client, "deliveries", "id", &delivered_dlv).await, 0);
    assert_eq!(
        count(&client, "delivery_log", "delivery_id", &delivered_dlv).await,
        0
    );
    // Published a few milliseconds after the delivered one, it may pass its cutoff one sweep
    // later.
    let unsubscribed_id = unsubscribed["id"].as_str().unwrap();
    while count(&client, "events", "id", unsubscribed_id).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the event without deliveries was never removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Dead letters keep their longer age; unfinished work stays whatever its age.
    for event in [&dead, &pending] {
        let (status, body) = api.call(Method::GET, &event_path(event), &key, None).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(api.delivery(&key, &dead_dlv).await["state"], "dead");
    assert!(count(&client, "delivery_log", "delivery_id", &dead_dlv).await >= 3);
    assert_eq!(api.delivery(&key, &pending_dlv).await["state"], "pending");

    // The idempotency key expired too: the same key now publishes a new event.
    let again = publish_keyed(&api, &key, "paid-1", "order.paid").await;
    assert_ne!(again["id"], delivered["id"]);

    let (status, metrics) = api.call(Method::GET, "/metrics", ADMIN_TOKEN, None).await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_owned();
    let removed = |what: &str| -> f64 {
        let prefix = format!("hookd_retention_removed_total{{what=\"{what}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
            .parse()
            .unwrap()
    };
    assert!(removed("events") >= 2.0, "{metrics}");
    assert!(removed("log_rows") >= 3.0, "{metrics}");
    assert!(removed("idempotency_keys") >= 1.0, "{metrics}");

    hookd.terminate().await;
    let report = db.assert_projection_consistent().await;
    assert!(report.contains(" 0 differ"), "{report}");
    assert!(!report.contains("belong to no delivery"), "{report}");
}

#[tokio::test]
async fn the_database_refuses_deletes_that_retention_would_not_make() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "serve", &[]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let receiver = Receiver::ok().await;
    api.create_endpoint(&key, json!({"url": receiver.url}))
        .await;
    let event = api.publish(&key, "order.paid", json!({})).await;
    let delivery = event["deliveries"][0]["id"].as_str().unwrap().to_owned();
    api.wait_for_state(&key, &delivery, "succeeded").await;
    hookd.terminate().await;
    let uuid = delivery.strip_prefix("dlv_").unwrap().to_owned();

    let mut client = db.client().await;
    // (cutoff declared, statement): each is refused, and the rows stay.
    let refused = [
        (None, "DELETE FROM delivery_log"),
        (None, "DELETE FROM deliveries"),
        (None, "DELETE FROM events"),
        // Nothing deletes endpoints or apps (the API deletes them softly): their deliveries
        // and events name them, with no foreign key to keep that true (0013).
        (None, "DELETE FROM endpoints"),
        (None, "DELETE FROM apps"),
        // A cutoff in the future would let anything go.
        (
            Some("now() + interval '1 hour'"),
            "DELETE FROM delivery_log",
        ),
        // The rows are younger than the declared cutoff.
        (
            Some("now() - interval '1 hour'"),
            "DELETE FROM delivery_log",
        ),
        (Some("now() - interval '1 hour'"), "DELETE FROM deliveries"),
    ];
    for (cutoff, statement) in refused {
        let tx = client.transaction().await.unwrap();
        if let Some(cutoff) = cutoff {
            tx.batch_execute(&format!(
                "SELECT set_config('hookd.retention_cutoff', ({cutoff})::text, true)"
            ))
            .await
            .unwrap();
        }
        let err = tx.batch_execute(statement).await.unwrap_err();
        let err = format!("{err:?}");
        assert!(
            ["append-only", "only by retention", "never deleted"]
                .iter()
                .any(|refusal| err.contains(refusal)),
            "{cutoff:?} {statement}: {err}"
        );
        tx.rollback().await.unwrap();
    }
    let log_rows: i64 = client
        .query_one(
            "SELECT count(*) FROM delivery_log WHERE delivery_id = $1::text::uuid",
            &[&uuid],
        )
        .await
        .unwrap()
        .get(0);
    assert!(log_rows >= 3, "{log_rows}");

    // Unfinished deliveries cannot be removed even past the cutoff.
    client
        .batch_execute(&format!(
            "UPDATE deliveries SET state = 'pending', updated_at = now() - interval '2 hours'
             WHERE id = '{uuid}'"
        ))
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(
        "SELECT set_config('hookd.retention_cutoff', (now() - interval '1 hour')::text, true)",
    )
    .await
    .unwrap();
    let err = tx
        .batch_execute("DELETE FROM deliveries")
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("only by retention"), "{err:?}");
}

#[tokio::test]
async fn dead_letter_retention_shorter_than_delivered_is_refused_at_start() {
    let db = TestDb::create().await;
    let mut env: Vec<(&str, String)> = fast_env();
    env.push(("HOOKD_RETENTION", "7d".into()));
    env.push(("HOOKD_DEAD_LETTER_RETENTION", "1d".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let output = db.hookd_command_with(&["worker"], &env).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("dead letters must be kept at least as long"),
        "{stderr}"
    );

    let output = db
        .hookd_command_with(
            &["worker"],
            &[
                ("HOOKD_RETENTION", "soon"),
                ("HOOKD_MASTER_KEY", MASTER_KEY),
            ],
        )
        .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("HOOKD_RETENTION") || stderr.contains("--retention"),
        "{stderr}"
    );

    // Keeping delivered history for ever keeps dead letters as long, without saying so twice:
    // the worker runs until it is asked to stop.
    let keeping = Hookd::start(&db, "worker", &[("HOOKD_RETENTION", "1000y")]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(keeping.terminate().await.success());
}

/// Dead letters and cancelled deliveries leave with their queue rows once past their age.
#[tokio::test]
async fn the_sweep_removes_old_dead_letters_and_cancelled_deliveries_with_their_queue_rows() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(
        &db,
        "serve",
        &[
            ("HOOKD_RETENTION", "1s"),
            ("HOOKD_DEAD_LETTER_RETENTION", "2s"),
            ("HOOKD_RETENTION_SWEEP_EVERY", "200ms"),
        ],
    )
    .await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let failing = Receiver::start(Arc::new(|_| (500, Duration::ZERO))).await;
    api.create_endpoint(
        &key,
        json!({"url": failing.url, "event_types": ["order.failed"], "max_attempts": 1}),
    )
    .await;
    api.create_endpoint(
        &key,
        json!({"url": failing.url, "event_types": ["order.waiting"], "retry_base_ms": 3_600_000}),
    )
    .await;
    let dead = api.publish(&key, "order.failed", json!({})).await;
    let waiting = api.publish(&key, "order.waiting", json!({})).await;
    let dead_dlv = dead["deliveries"][0]["id"].as_str().unwrap().to_owned();
    let waiting_dlv = waiting["deliveries"][0]["id"].as_str().unwrap().to_owned();
    api.wait_for_state(&key, &dead_dlv, "dead").await;
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/v1/deliveries/{waiting_dlv}/cancel"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    api.wait_for_state(&key, &waiting_dlv, "cancelled").await;
    let client = db.client().await;
    for dlv in [&dead_dlv, &waiting_dlv] {
        assert_eq!(
            count(&client, "delivery_queue", "delivery_id", dlv).await,
            1
        );
    }

    let deadline = Instant::now() + PATIENCE;
    for dlv in [&dead_dlv, &waiting_dlv] {
        while count(&client, "deliveries", "id", dlv).await > 0 {
            assert!(Instant::now() < deadline, "{dlv} was never removed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            count(&client, "delivery_queue", "delivery_id", dlv).await,
            0
        );
        assert_eq!(count(&client, "delivery_log", "delivery_id", dlv).await, 0);
    }
    hookd.terminate().await;
    let report = db.assert_projection_consistent().await;
    assert!(!report.contains("belong to no delivery"), "{report}");
}
