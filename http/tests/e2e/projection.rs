//! The projection always equals the fold of the log, and the log cannot be rewritten.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn projection_check_finds_no_drift_after_random_outcomes_and_catches_tampering() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(
        &db,
        "serve",
        &[
            ("HOOKD_MAX_ATTEMPTS", "3"),
            ("HOOKD_RETRY_BASE_MS", "20"),
            ("HOOKD_DELIVERY_TIMEOUT_MS", "300"),
        ],
    )
    .await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    // A fixed pseudo-random mix of answers: successes, retryable failures, refusals, timeouts.
    let mix: [(u16, u64); 10] = [
        (200, 0),
        (500, 0),
        (204, 0),
        (429, 0),
        (404, 0),
        (200, 0),
        (503, 0),
        (200, 600),
        (408, 0),
        (200, 0),
    ];
    let mut receivers = Vec::new();
    for salt in 0..3usize {
        let receiver = Receiver::start(Arc::new(move |n| {
            let (status, delay) = mix[(n * 7 + salt * 3) % mix.len()];
            (status, Duration::from_millis(delay))
        }))
        .await;
        api.create_endpoint(&key, json!({"url": receiver.url}))
            .await;
        receivers.push(receiver);
    }
    let mut deliveries = Vec::new();
    for i in 0..40 {
        let accepted = api.publish(&key, "mixed", json!({"i": i})).await;
        for d in accepted["deliveries"].as_array().unwrap() {
            deliveries.push(d["id"].as_str().unwrap().to_owned());
        }
    }
    let client = db.client().await;
    let settled = || async {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let live: i64 = client
                .query_one(
                    "SELECT count(*) FROM deliveries WHERE state IN ('pending', 'in_flight')",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if live == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "{live} deliveries never settled");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    settled().await;
    // Redrive every dead letter once: more transitions for the fold to follow.
    let mut redriven = 0;
    for id in &deliveries {
        if api.delivery(&key, id).await["state"] == "dead" {
            let (status, _) = api
                .call(
                    Method::POST,
                    &format!("/v1/deliveries/{id}/redrive"),
                    &key,
                    None,
                )
                .await;
            assert_eq!(status, 202);
            redriven += 1;
        }
    }
    assert!(redriven > 0, "the mix should produce dead letters");
    settled().await;

    let output = db.hookd_command(&["projection", "check"]).await;
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains("checked 120 deliveries: 0 differ"),
        "{report}"
    );

    // The log refuses to be rewritten.
    for statement in [
        "UPDATE delivery_log SET http_status = 200",
        "DELETE FROM delivery_log",
        "TRUNCATE delivery_log CASCADE",
    ] {
        let err = client.batch_execute(statement).await.unwrap_err();
        assert!(
            err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"),
            "{statement}: {err:?}"
        );
    }

    // Tampering with the projection is caught and names the delivery.
    let victim = &deliveries[5];
    let uuid = victim.strip_prefix("dlv_").unwrap();
    client
        .execute(
            "UPDATE deliveries SET attempts = attempts + 1 WHERE id = $1::text::uuid",
            &[&uuid],
        )
        .await
        .unwrap();
    let report = failed_check(&db).await;
    assert!(report.contains(victim.as_str()), "{report}");
    assert!(report.contains("1 differ"), "{report}");

    // The queue table is checked against the projection: a delivered delivery back in the
    // queue, and a queue row without its delivery.
    let delivered: String = client
        .query_one(
            "SELECT replace(id::text, '-', '') FROM deliveries
             WHERE state = 'succeeded' AND id <> $1::text::uuid LIMIT 1",
            &[&uuid],
        )
        .await
        .unwrap()
        .get(0);
    client
        .execute(
            "INSERT INTO delivery_queue (delivery_id, app_id, endpoint_id, state, attempts, due_at)
             SELECT id, app_id, endpoint_id, 'pending', attempts, now() FROM deliveries
             WHERE id = $1::text::uuid",
            &[&delivered],
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO delivery_queue (delivery_id, app_id, endpoint_id, state, attempts)
             SELECT gen_random_uuid(), app_id, endpoint_id, 'dead', 1 FROM deliveries LIMIT 1",
        )
        .await
        .unwrap();
    let report = failed_check(&db).await;
    assert!(
        report.contains(&format!("dlv_{delivered}: queue: a delivered delivery")),
        "{report}"
    );
    assert!(report.contains("2 differ"), "{report}");
    assert!(
        report.contains("1 queue rows belong to no delivery"),
        "{report}"
    );

    // History without its delivery (the log has no foreign key) is caught too.
    client
        .batch_execute(
            "INSERT INTO delivery_log (delivery_id, kind, attempt) VALUES (gen_random_uuid(), 'created', 0)",
        )
        .await
        .unwrap();
    let report = failed_check(&db).await;
    assert!(
        report.contains("1 log rows belong to no delivery"),
        "{report}"
    );

    // Nor has a delivery a foreign key to its event (0013): one without is caught too.
    client
        .batch_execute(&format!(
            "UPDATE deliveries SET event_id = gen_random_uuid() WHERE id = '{delivered}'"
        ))
        .await
        .unwrap();
    let report = failed_check(&db).await;
    assert!(
        report.contains("1 deliveries name an event, endpoint or app that is gone"),
        "{report}"
    );
}

/// What `hookd projection check` printed, once it has failed as it must (exit status 1).
async fn failed_check(db: &TestDb) -> String {
    let output = db.hookd_command(&["projection", "check"]).await;
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(1), "{report}");
    report
}
