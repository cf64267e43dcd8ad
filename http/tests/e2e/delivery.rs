//! Delivery, signing, retries, dead-letter and redrive, seen from a real receiver.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn delivers_a_signed_webhook_that_an_independent_verifier_accepts() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "serve", &[]).await;
    let api = Client::new(&hookd);
    let mut receiver = Receiver::ok().await;
    let key = api.create_app().await;
    let (endpoint, secret) = api
        .create_endpoint(
            &key,
            json!({"url": receiver.url, "event_types": ["order.paid"]}),
        )
        .await;
    // Subscribed to another type only: gets no delivery.
    let other = Receiver::ok().await;
    api.create_endpoint(
        &key,
        json!({"url": other.url, "event_types": ["order.shipped"]}),
    )
    .await;

    let accepted = api
        .publish(&key, "order.paid", json!({"order": 42, "total": "9.90"}))
        .await;
    let deliveries = accepted["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{accepted}");
    assert_eq!(deliveries[0]["endpoint_id"], endpoint.as_str());

    let got = receiver.next().await;
    assert_eq!(got.headers["webhook-id"], accepted["id"].as_str().unwrap());
    assert_eq!(got.headers["content-type"], "application/json");
    assert!(got.headers["user-agent"].starts_with("hookd/"));
    assert!(got.headers["webhook-signature"].starts_with("v1,"));
    let body: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(body["type"], "order.paid");
    assert_eq!(body["data"], json!({"order": 42, "total": "9.90"}));
    assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
    verify_independently(&secret, &got).await;

    let id = deliveries[0]["id"].as_str().unwrap();
    let delivery = api.wait_for_state(&key, id, "succeeded").await;
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["last_http_status"], 204);
    assert_eq!(
        api.history_kinds(&key, id).await,
        ["created", "claimed", "attempt_succeeded"]
    );
}

#[tokio::test]
async fn retries_with_growing_gaps_then_succeeds() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "serve", &[("HOOKD_RETRY_BASE_MS", "100")]).await;
    let api = Client::new(&hookd);
    let mut receiver = Receiver::start(Arc::new(|n| {
        (if n < 3 { 500 } else { 200 }, Duration::ZERO)
    }))
    .await;
    let key = api.create_app().await;
    api.create_endpoint(&key, json!({"url": receiver.url}))
        .await;
    let accepted = api.publish(&key, "ping", json!({})).await;

    let mut arrivals = Vec::new();
    for _ in 0..4 {
        arrivals.push(receiver.next().await);
    }
    let ids: Vec<&String> = arrivals.iter().map(|r| &r.headers["webhook-id"]).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "webhook-id must be stable across retries"
    );
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(100), "{gaps:?}");
    assert!(
        gaps[0] < gaps[1] && gaps[1] < gaps[2],
        "gaps must grow: {gaps:?}"
    );

    let id = accepted["deliveries"][0]["id"].as_str().unwrap();
    let delivery = api.wait_for_state(&key, id, "succeeded").await;
    assert_eq!(delivery["attempts"], 4);
    let kinds = api.history_kinds(&key, id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "retry_scheduled").count(), 3);
    assert_eq!(kinds.iter().filter(|k| *k == "attempt_failed").count(), 3);
    assert_eq!(kinds.last().unwrap(), "attempt_succeeded");
}

#[tokio::test]
async fn dead_letters_then_redrive_delivers() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "serve", &[]).await;
    let api = Client::new(&hookd);
    let mut receiver = Receiver::start(Arc::new(|_| (503, Duration::ZERO))).await;
    let key = api.create_app().await;
    api.create_endpoint(&key, json!({"url": receiver.url, "max_attempts": 2}))
        .await;
    let accepted = api.publish(&key, "ping", json!({"n": 1})).await;
    let id = accepted["deliveries"][0]["id"].as_str().unwrap();

    let dead = api.wait_for_state(&key, id, "dead").await;
    assert_eq!(dead["attempts"], 2);
    assert_eq!(dead["last_http_status"], 503);
    assert_eq!(dead["last_error"], "HTTP 503");
    receiver.next().await;
    receiver.next().await;

    // A dead delivery is redriven (what cannot be redriven is refused: see the cancel test).
    receiver.set_behavior(Arc::new(|_| (200, Duration::ZERO)));
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/v1/deliveries/{id}/redrive"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let got = receiver.next().await;
    assert_eq!(got.headers["webhook-id"], accepted["id"].as_str().unwrap());
    let delivered = api.wait_for_state(&key, id, "succeeded").await;
    assert_eq!(delivered["attempts"], 3);
    let kinds = api.history_kinds(&key, id).await;
    let tail: Vec<&str> = kinds[kinds.len() - 4..]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        ["dead_lettered", "redriven", "claimed", "attempt_succeeded"]
    );

    // A delivered one can be sent again too: it re-enters the queue.
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/v1/deliveries/{id}/redrive"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let again = receiver.next().await;
    assert_eq!(
        again.headers["webhook-id"],
        accepted["id"].as_str().unwrap()
    );
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let delivery = api.delivery(&key, id).await;
        if delivery["state"] == "succeeded" && delivery["attempts"] == 4 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{delivery}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hookd.terminate().await;
    let report = db.assert_projection_consistent().await;
    assert!(report.contains(" 0 differ"), "{report}");
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_other_4xx_dead_letter_at_once() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "serve", &[]).await;
    let api = Client::new(&hookd);
    let gone = Receiver::start(Arc::new(|_| (410, Duration::ZERO))).await;
    let refusing = Receiver::start(Arc::new(|_| (422, Duration::ZERO))).await;
    let key = api.create_app().await;
    let (gone_endpoint, _) = api.create_endpoint(&key, json!({"url": gone.url})).await;
    api.create_endpoint(&key, json!({"url": refusing.url}))
        .await;
    let accepted = api.publish(&key, "ping", json!({})).await;
    for delivery in accepted["deliveries"].as_array().unwrap() {
        let dead = api
            .wait_for_state(&key, delivery["id"].as_str().unwrap(), "dead")
            .await;
        assert_eq!(dead["attempts"], 1, "no retry after a 4xx: {dead}");
    }
    let client = db.client().await;
    let gone_uuid = gone_endpoint.strip_prefix("ep_").unwrap();
    let row = client
        .query_one(
            "SELECT enabled FROM endpoints WHERE id = $1::text::uuid",
            &[&gone_uuid],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0), "410 must disable the endpoint");
    // A disabled endpoint gets no new deliveries.
    let next = api.publish(&key, "ping", json!({})).await;
    assert_eq!(next["deliveries"].as_array().unwrap().len(), 1, "{next}");
}

#[tokio::test]
async fn bad_requests_get_problem_details_never_a_500() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(
        &db,
        "api",
        &[
            ("HOOKD_MAX_BODY_BYTES", "4096"),
            ("HOOKD_ALLOW_PRIVATE_TARGETS", "false"),
        ],
    )
    .await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let http = reqwest::Client::new();
    let post = |path: &str, token: &str, body: String| {
        http.post(format!("{}{path}", api.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
    };
    let cases = [
        (
            post(
                "/v1/events",
                "wrong-key",
                r#"{"type":"a","payload":{}}"#.into(),
            ),
            401,
        ),
        (post("/v1/apps", &key, r#"{"name":"x"}"#.into()), 403),
        (post("/v1/events", &key, "{not json".into()), 400),
        (
            post(
                "/v1/events",
                &key,
                r#"{"type":"a","payload":{},"extra":1}"#.into(),
            ),
            400,
        ),
        (
            post("/v1/events", &key, r#"{"type":["a"],"payload":{}}"#.into()),
            400,
        ),
        (
            post("/v1/events", &key, r#"{"type":7,"payload":{}}"#.into()),
            400,
        ),
        (post("/v1/endpoints", &key, r#"{"url":true}"#.into()), 400),
        (
            post("/v1/events", &key, r#"{"type":"","payload":{}}"#.into()),
            400,
        ),
        (
            post(
                "/v1/events",
                &key,
                format!(r#"{{"type":"a","payload":"{}"}}"#, "x".repeat(5000)),
            ),
            413,
        ),
        (
            post(
                "/v1/endpoints",
                &key,
                r#"{"url":"ftp://example.com"}"#.into(),
            ),
            400,
        ),
        (
            post(
                "/v1/endpoints",
                &key,
                r#"{"url":"http://u:p@example.com/"}"#.into(),
            ),
            400,
        ),
        (
            post(
                "/v1/endpoints",
                &key,
                r#"{"url":"http://127.0.0.1/x"}"#.into(),
            ),
            400,
        ),
        (
            post(
                "/v1/endpoints",
                &key,
                r#"{"url":"https://example.com","secret":"nope"}"#.into(),
            ),
            400,
        ),
        (
            post("/v1/deliveries/dlv_nothex/redrive", &key, String::new()),
            400,
        ),
        (
            post(
                "/v1/deliveries/dlv_0123456789abcdef0123456789abcdef/redrive",
                &key,
                String::new(),
            ),
            404,
        ),
        (post("/v1/nowhere", &key, String::new()), 404),
    ];
    for (request, expected) in cases {
        let request = request.build().unwrap();
        let body = request
            .body()
            .and_then(|b| b.as_bytes())
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(80)]).into_owned())
            .unwrap_or_default();
        let label = format!("{} {} {body}", request.method(), request.url());
        let response = http.execute(request).await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{label}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("application/problem+json"),
            "{label}: {content_type}"
        );
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["status"], expected, "{label}: {problem}");
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:hookd:problem:")
        );
        assert!(!problem["detail"].as_str().unwrap().is_empty());
    }
    // A body of the wrong shape is refused with the field at fault named.
    let named = [
        (
            "/v1/events",
            json!({"type": 7, "payload": {}}),
            "type: expected a string",
        ),
        (
            "/v1/events/batch",
            json!({"events": [{"type": "a", "payload": {}}, {"type": true, "payload": {}}]}),
            "events[1].type: expected a string, found a boolean",
        ),
        (
            "/v1/endpoints",
            json!({"url": "https://example.com/", "metadata": {"team": 1}}),
            "metadata.team: expected a string, found a number",
        ),
        (
            "/v1/endpoints",
            json!({"url": "https://example.com/", "timeout_ms": "fast"}),
            "timeout_ms: expected an integer, found a string",
        ),
    ];
    for (path, body, detail) in named {
        let (status, problem) = api.call(Method::POST, path, &key, Some(body)).await;
        assert_eq!(status, 400, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().starts_with(detail),
            "{path}: {problem}"
        );
    }
    let (status, spec) = api.call(Method::GET, "/openapi.json", "", None).await;
    assert_eq!(status, 200);
    assert!(spec["paths"]["/v1/events"]["post"].is_object());
    let (status, ready) = api.call(Method::GET, "/ready", "", None).await;
    assert_eq!((status, ready["status"].as_str()), (200, Some("ready")));
}

/// In one `serve` process, a publish leases to its idle worker in the same transaction: the
/// claim is logged with the creation, and the worker sends it without a claim statement. With
/// the API and the worker apart, the worker claims it after the NOTIFY, in a later transaction.
#[tokio::test]
async fn an_idle_worker_in_the_publishing_process_takes_the_delivery_from_the_publish() {
    let db = TestDb::create().await;
    let client = db.client().await;
    // Whether the delivery's claim was logged in the transaction that created it.
    let claimed_at_publish = |dlv: String| {
        let client = &client;
        async move {
            let uuid = dlv.strip_prefix("dlv_").unwrap().to_owned();
            client
                .query_one(
                    "SELECT (SELECT at FROM delivery_log
                             WHERE delivery_id = $1::text::uuid AND kind = 'created')
                          = (SELECT at FROM delivery_log
                             WHERE delivery_id = $1::text::uuid AND kind = 'claimed')",
                    &[&uuid],
                )
                .await
                .unwrap()
                .get::<_, bool>(0)
        }
    };

    let hookd = Hookd::start(&db, "serve", &[]).await;
    let api = Client::new(&hookd);
    let mut receiver = Receiver::ok().await;
    let key = api.create_app().await;
    api.create_endpoint(&key, json!({"url": receiver.url}))
        .await;
    let mut handed = 0;
    for n in 0..3 {
        let accepted = api.publish(&key, "ping", json!({"n": n})).await;
        let id = accepted["deliveries"][0]["id"].as_str().unwrap().to_owned();
        receiver.next().await;
        api.wait_for_state(&key, &id, "succeeded").await;
        assert_eq!(
            api.history_kinds(&key, &id).await,
            ["created", "claimed", "attempt_succeeded"]
        );
        if claimed_at_publish(id).await {
            handed += 1;
        }
    }
    // The first may race the worker's start-up claim; once idle, it takes every one.
    assert!(handed >= 2, "{handed} of 3 were leased at publish");
    let (status, metrics) = api.call(Method::GET, "/metrics", ADMIN_TOKEN, None).await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_owned();
    let counted: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hookd_worker_handed_off_total "))
        .unwrap_or_else(|| panic!("no hand-off counter in {metrics}"))
        .parse()
        .unwrap();
    assert_eq!(counted, f64::from(handed));
    hookd.terminate().await;

    let api_only = Hookd::start(&db, "api", &[]).await;
    let worker = Hookd::start(&db, "worker", &[]).await;
    let api = Client::new(&api_only);
    let accepted = api.publish(&key, "ping", json!({"n": 3})).await;
    let id = accepted["deliveries"][0]["id"].as_str().unwrap().to_owned();
    receiver.next().await;
    api.wait_for_state(&key, &id, "succeeded").await;
    assert!(!claimed_at_publish(id).await, "a worker elsewhere claims");
    worker.terminate().await;
    api_only.terminate().await;
    let report = db.assert_projection_consistent().await;
    assert!(report.contains(" 0 differ"), "{report}");
}
