//! SSRF protection at registration and at delivery time, and inputs that must never produce a
//! 500.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

const PRIVATE_OFF: (&str, &str) = ("HOOKD_ALLOW_PRIVATE_TARGETS", "false");

#[tokio::test]
async fn endpoints_on_internal_addresses_are_refused_at_registration() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "api", &[PRIVATE_OFF]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let refused = [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook", // a name that resolves to loopback
        "http://[::1]/hook",
        "http://0.0.0.0/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/hook",
        "http://224.0.0.1/hook",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:169.254.169.254]/hook",
        "http://2130706433/hook", // 127.0.0.1 as one decimal number
        "http://0x7f000001/hook", // … as one hex number
        "http://0177.0.0.1/hook", // … in octal
        "http://127.1/hook",      // … in short form
        "http://0.1.2.3/hook",
        "http://255.255.255.255/hook",
        "http://240.0.0.1/hook",
        "http://192.0.0.8/hook",
        "http://192.0.2.1/hook",
        "http://198.18.0.1/hook",
        "http://198.51.100.7/hook",
        "http://203.0.113.9/hook",
        "http://[::]/hook",
        "http://[ff02::1]/hook",
        "http://[fec0::1]/hook",
        "http://[2001:db8::1]/hook",
        "http://[64:ff9b::a9fe:a9fe]/hook", // NAT64 of the metadata address
        "http://[2002:7f00:1::1]/hook",     // 6to4 of loopback
        "http://[2001::5efe:7f00:1]/hook",  // Teredo
        "http://[::127.0.0.1]/hook",        // IPv4-compatible loopback
        "http://localhost./hook",           // the same name, fully qualified
    ];
    for url in refused {
        let (status, problem) = api
            .call(
                Method::POST,
                "/v1/endpoints",
                &key,
                Some(json!({"url": url})),
            )
            .await;
        assert_eq!(status, 400, "{url} was accepted: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().starts_with("url:"),
            "{problem}"
        );
    }
    // A public address is fine, and an update cannot move it inside.
    let (id, _) = api
        .create_endpoint(&key, json!({"url": "http://93.184.216.34/hook"}))
        .await;
    let (status, _) = api
        .call(
            Method::PATCH,
            &format!("/v1/endpoints/{id}"),
            &key,
            Some(json!({"url": "http://127.0.0.1/hook"})),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_worker_checks_addresses_again_at_delivery_time() {
    let db = TestDb::create().await;
    // The API lets the endpoint in; the worker, configured strictly, must still refuse to send.
    let api_process = Hookd::start(&db, "api", &[]).await;
    let _worker = Hookd::start(&db, "worker", &[PRIVATE_OFF]).await;
    let api = Client::new(&api_process);
    let key = api.create_app().await;
    let mut receiver = Receiver::ok().await;
    api.create_endpoint(&key, json!({"url": receiver.url}))
        .await;
    let accepted = api.publish(&key, "x", json!({})).await;
    let id = accepted["deliveries"][0]["id"].as_str().unwrap();
    let dead = api.wait_for_state(&key, id, "dead").await;
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap()
            .contains("not a public address"),
        "{dead}"
    );
    let (_, history) = api
        .call(
            Method::GET,
            &format!("/v1/deliveries/{id}/history"),
            &key,
            None,
        )
        .await;
    let failed = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "attempt_failed")
        .unwrap();
    assert_eq!(failed["error_class"], "forbidden_address");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), receiver.rx.recv())
            .await
            .is_err(),
        "nothing may reach the internal address"
    );
}

#[tokio::test]
async fn malformed_input_is_a_client_error_never_a_500() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "api", &[]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let url = |path: &str| format!("{}{path}", api.base);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let nested_payload = format!(
        r#"{{"type":"a","payload":{}1{}}}"#,
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (
            api.http
                .post(url("/v1/events"))
                .header("content-type", "application/json")
                .body(vec![b'{', 0xff, 0xfe, b'}']),
            400,
        ),
        (
            api.http
                .post(url("/v1/events"))
                .header("content-type", "application/json")
                .body(deep),
            400,
        ),
        (
            api.http
                .post(url("/v1/events"))
                .header("content-type", "application/json")
                .body(nested_payload),
            400,
        ),
        (
            api.http
                .post(url("/v1/events"))
                .header("content-type", "text/plain")
                .body(r#"{"type":"a","payload":{}}"#),
            415,
        ),
        (api.http.put(url("/v1/events")), 405),
        (
            api.http
                .post(url("/v1/endpoints"))
                .header("content-type", "application/json")
                .body(
                    json!({"url": "http://example.com/",
                           "headers": {"X-A": "ok\r\nX-Injected: 1"}})
                    .to_string(),
                ),
            400,
        ),
        (
            api.http
                .post(url("/v1/endpoints"))
                .header("content-type", "application/json")
                .body(json!({"url": "http://example.com/", "max_attempts": 0}).to_string()),
            400,
        ),
        // PostgreSQL cannot store NUL in text or jsonb: refused up front, not a failed statement.
        (
            api.http
                .post(url("/v1/events"))
                .header("content-type", "application/json")
                .body(r#"{"type":"a\u0000b","payload":{}}"#),
            400,
        ),
        (
            api.http
                .post(url("/v1/endpoints"))
                .header("content-type", "application/json")
                .body(r#"{"url":"http://example.com/","metadata":{"k\u0000":"v"}}"#),
            400,
        ),
        (api.http.get(url("/v1/events?type=%00")), 400),
        (api.http.get(url("/v1/deliveries?limit=-1")), 400),
        (api.http.get(url("/v1/deliveries?limit=201")), 400),
        (api.http.get(url("/v1/deliveries?cursor=not-a-cursor")), 400),
        (
            api.http
                .patch(url("/v1/endpoints/ep_0193a0a1b2c37d8e9f0a1b2c3d4e5f60"))
                .header("content-type", "application/json")
                .body(r#"{"colour":"blue"}"#),
            400,
        ),
        (api.http.get(url("/v1/events/evt_123")), 400),
    ];
    for (request, expected) in cases {
        let request = request.bearer_auth(&key).build().unwrap();
        let label = format!("{} {}", request.method(), request.url());
        let response = api.http.execute(request).await.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.text().await.unwrap();
        assert_eq!(status, expected, "{label}: {body}");
        assert!(
            content_type.starts_with("application/problem+json"),
            "{label}"
        );
    }
    // A 405 names what the resource does take (RFC 9110).
    let response = api
        .http
        .put(url("/v1/events"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let mut allowed: Vec<&str> = response.headers()["allow"]
        .to_str()
        .unwrap()
        .split(", ")
        .collect();
    allowed.sort_unstable();
    assert_eq!(allowed, ["GET", "POST"]);
}
