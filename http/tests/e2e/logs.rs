//! Structured logs: with `HOOKD_LOG_FORMAT=json` every line is a JSON object, attempts carry the
//! ids an operator searches by, and no secret ever appears.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

const SECRET: &str = "whsec_bG9ncy1tdXN0LW5ldmVyLXNob3ctdGhpcy1zZWNyZXQ=";

#[tokio::test]
async fn json_logs_carry_the_ids_and_never_a_secret() {
    let db = TestDb::create().await;
    let logs = Arc::new(Mutex::new(Vec::new()));
    let hookd = Hookd::start_logged(
        &db,
        "serve",
        &[
            ("HOOKD_LOG_FORMAT", "json"),
            ("HOOKD_LOG", "info,hookd_engine=debug"),
        ],
        logs.clone(),
    )
    .await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let failing = Receiver::start(Arc::new(|_| (500, Duration::ZERO))).await;
    let (endpoint, _) = api
        .create_endpoint(
            &key,
            json!({"url": failing.url, "secret": SECRET, "max_attempts": 2}),
        )
        .await;
    let accepted = api.publish(&key, "order.paid", json!({"n": 1})).await;
    let event = accepted["id"].as_str().unwrap().to_owned();
    let delivery = accepted["deliveries"][0]["id"].as_str().unwrap().to_owned();
    api.wait_for_state(&key, &delivery, "dead").await;
    hookd.terminate().await;

    let lines = logs.lock().unwrap().clone();
    assert!(!lines.is_empty());
    let entries: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let failures: Vec<&Value> = entries
        .iter()
        .filter(|e| e["message"] == "attempt failed" && e["delivery_id"] == delivery.as_str())
        .collect();
    assert_eq!(failures.len(), 2, "one line per attempt: {lines:#?}");
    for (n, failure) in failures.iter().enumerate() {
        assert_eq!(failure["level"], "INFO");
        assert_eq!(failure["event_id"], event.as_str());
        assert_eq!(failure["endpoint_id"], endpoint.as_str());
        assert_eq!(failure["attempt"], n + 1);
        assert_eq!(failure["error_class"], "http_status");
    }
    let secret_body = SECRET.trim_start_matches("whsec_");
    for line in &lines {
        for secret in [secret_body, key.as_str(), ADMIN_TOKEN, MASTER_KEY] {
            assert!(!line.contains(secret), "a secret was logged: {line}");
        }
    }
}
