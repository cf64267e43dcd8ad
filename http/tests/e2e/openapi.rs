//! The committed OpenAPI document is the one the server serves.

use reqwest::Method;

use crate::harness::*;

#[tokio::test]
async fn the_committed_spec_matches_what_the_server_serves() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "api", &[]).await;
    let (status, served) = Client::new(&hookd)
        .call(Method::GET, "/openapi.json", "", None)
        .await;
    assert_eq!(status, 200);
    assert!(
        served == committed,
        "docs/openapi.json is stale; regenerate it with \
         `cargo run -q --bin hookd -- openapi > docs/openapi.json`"
    );
    // Every route documents its problem responses.
    for (path, methods) in served["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            if path.starts_with("/v1/") {
                let problem = &operation["responses"]["400"]["content"]["application/problem+json"];
                assert!(
                    problem.is_object(),
                    "{method} {path} documents no problem response"
                );
            }
            // Every request body comes with an example.
            if let Some(content) = operation["requestBody"]["content"].as_object() {
                for media in content.values() {
                    let reference = media["schema"]["$ref"].as_str().unwrap();
                    let name = reference.rsplit('/').next().unwrap();
                    let schema = &served["components"]["schemas"][name];
                    assert!(schema["example"].is_object(), "{method} {path}: no example");
                }
            }
        }
    }
}
