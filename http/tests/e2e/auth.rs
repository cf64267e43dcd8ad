//! Who may call what, over every operation the OpenAPI document lists (a new route is covered
//! the day it is added): no credentials, a forged key and a revoked key are 401; the admin token
//! on an app route and an app's key on an admin route are 403; another app's key reaches none of
//! an app's resources (404, as if they did not exist).

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn every_route_refuses_the_wrong_credentials() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "api", &[]).await;
    let api = Client::new(&hookd);

    // App B owns one resource of every kind; A is the intruder.
    let (status, app_b) = api
        .call(
            Method::POST,
            "/v1/apps",
            ADMIN_TOKEN,
            Some(json!({"name": "b"})),
        )
        .await;
    assert_eq!(status, 201, "{app_b}");
    let key_b = app_b["api_key"].as_str().unwrap().to_owned();
    let (endpoint_b, _) = api
        .create_endpoint(&key_b, json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
    let accepted = api.publish(&key_b, "order.paid", json!({})).await;
    let (_, keys_b) = api.call(Method::GET, "/v1/api-keys", &key_b, None).await;
    // Path parameters are filled by the id prefix their pattern names.
    let ids_of_b = BTreeMap::from([
        ("app", app_b["id"].as_str().unwrap().to_owned()),
        ("ep", endpoint_b),
        ("evt", accepted["id"].as_str().unwrap().to_owned()),
        (
            "dlv",
            accepted["deliveries"][0]["id"].as_str().unwrap().to_owned(),
        ),
        ("key", keys_b["data"][0]["id"].as_str().unwrap().to_owned()),
    ]);

    let key_a = api.create_app().await;
    let (status, revoked) = api
        .call(Method::POST, "/v1/api-keys", &key_a, Some(json!({})))
        .await;
    assert_eq!(status, 201, "{revoked}");
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{}", revoked["id"].as_str().unwrap()),
            &key_a,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let revoked = revoked["api_key"].as_str().unwrap().to_owned();
    let forged = format!("hk_{}", "5a".repeat(32));

    let (_, document) = api.call(Method::GET, "/openapi.json", "", None).await;
    let mut checked = 0;
    for (template, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let Some(scheme) = operation["security"][0]
                .as_object()
                .and_then(|s| s.keys().next())
            else {
                continue; // /health and /ready are open
            };
            let method: Method = method.to_uppercase().parse().unwrap();
            let path = fill_path(template, operation, &ids_of_b);
            let body = example_body(&document, operation);
            let label = format!("{method} {template}");
            let send = |token: Option<String>| {
                let mut request = api
                    .http
                    .request(method.clone(), format!("{}{path}", api.base));
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                if let Some(body) = &body {
                    request = request
                        .header("content-type", "application/json")
                        .body(body.to_string());
                }
                async move {
                    let response = request.send().await.unwrap();
                    let status = response.status().as_u16();
                    let problem: Value = response.json().await.unwrap_or_default();
                    (status, problem)
                }
            };
            let mut expect = async |token: Option<&str>, status: u16, kind: &str, who: &str| {
                let (got, problem) = send(token.map(str::to_owned)).await;
                assert_eq!(got, status, "{label} with {who}: {problem}");
                assert_eq!(
                    problem["type"],
                    format!("urn:hookd:problem:{kind}"),
                    "{label} with {who}"
                );
                checked += 1;
            };
            expect(None, 401, "unauthorized", "no credentials").await;
            expect(Some(&forged), 401, "unauthorized", "a forged key").await;
            expect(Some(&revoked), 401, "unauthorized", "a revoked key").await;
            match scheme.as_str() {
                "AppKey" => {
                    expect(Some(ADMIN_TOKEN), 403, "forbidden", "the admin token").await;
                    if template.contains('{') {
                        expect(Some(&key_a), 404, "not-found", "another app's key").await;
                    }
                }
                "AdminToken" => {
                    expect(Some(&key_a), 403, "forbidden", "an app's key").await;
                    expect(Some("not-the-token"), 401, "unauthorized", "a wrong token").await;
                }
                // The admin token and every app's key are valid here (each sees its own scope).
                "AnyKey" => {
                    expect(Some("not-the-token"), 401, "unauthorized", "a wrong token").await;
                }
                other => panic!("{label}: unknown security scheme {other}"),
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} checks: were the routes found?"
    );

    // None of it touched B.
    let (status, endpoint) = api
        .call(
            Method::GET,
            &format!("/v1/endpoints/{}", ids_of_b["ep"]),
            &key_b,
            None,
        )
        .await;
    assert_eq!((status, endpoint["enabled"].as_bool()), (200, Some(true)));
    let (status, keys) = api.call(Method::GET, "/v1/api-keys", &key_b, None).await;
    assert_eq!(status, 200);
    assert!(keys["data"][0].get("revoked_at").is_none(), "{keys}");
}

/// `template` with every `{param}` replaced by B's id of the kind the parameter's pattern names.
fn fill_path(template: &str, operation: &Value, ids: &BTreeMap<&str, String>) -> String {
    let mut path = template.to_owned();
    for parameter in operation["parameters"].as_array().into_iter().flatten() {
        if parameter["in"] != "path" {
            continue;
        }
        let name = parameter["name"].as_str().unwrap();
        let pattern = parameter["schema"]["pattern"].as_str().unwrap();
        let prefix = pattern.trim_start_matches('^').split('_').next().unwrap();
        let id = ids
            .get(prefix)
            .unwrap_or_else(|| panic!("{template}: no id of kind {prefix}"));
        path = path.replace(&format!("{{{name}}}"), id);
    }
    path
}

/// The example the document gives for the operation's request body, if it takes one.
fn example_body(document: &Value, operation: &Value) -> Option<Value> {
    let media = operation["requestBody"]["content"]
        .as_object()?
        .values()
        .next()?;
    let reference = media["schema"]["$ref"].as_str()?;
    let name = reference.rsplit('/').next()?;
    Some(document["components"]["schemas"][name]["example"].clone())
}
