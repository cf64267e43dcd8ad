//! The whole API fuzzed against its own OpenAPI document by schemathesis (PyPI; `scripts/test`
//! installs it): property-based requests, valid and not, with valid credentials. Every check is on
//! unless the config turns it off: every response must be documented and match its schema, none
//! may be a 5xx. What the run checks and why a
//! few checks are off: `schemathesis.toml` beside this file.

use std::path::Path;

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn the_api_keeps_to_its_openapi_document_under_fuzzing() {
    let db = TestDb::create().await;
    // API only: nothing the fuzzer registers is ever delivered to.
    let hookd = Hookd::start(&db, "api", &[]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    // Real rows, so list and get responses are validated with content, not only empty pages.
    let (endpoint, _) = api
        .create_endpoint(
            &key,
            json!({"url": "http://127.0.0.1:9/hook", "description": "fuzz",
                   "metadata": {"team": "billing"}, "max_attempts": 3}),
        )
        .await;
    for n in 0..3 {
        api.publish(&key, "order.paid", json!({"n": n})).await;
    }
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/v1/endpoints/{endpoint}/disable"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 200);

    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/schemathesis.toml");
    // Hypothesis keeps its example database in the working directory.
    let workdir = std::env::temp_dir().join(format!("hookd-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&workdir).unwrap();
    let output = tokio::process::Command::new("python3")
        .args(["-m", "schemathesis.cli", "--no-color", "--config-file"])
        .arg(&config)
        .args(["run", &format!("{}/openapi.json", api.base)])
        .env("HOOKD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HOOKD_API_KEY", &key)
        .current_dir(&workdir)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("python3 runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !report.contains("No module named schemathesis"),
        "schemathesis is missing: `python3 -m pip install schemathesis` (scripts/test does)"
    );
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}"
    );
    // A run that skipped operations would also exit 0: every selected one must have been tested.
    let count_after = |label: &str| -> usize {
        report
            .lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .and_then(|rest| rest.trim().split('/').next()?.parse().ok())
            .unwrap_or(0)
    };
    let selected = count_after("Selected:");
    assert!(selected >= 20, "{report}");
    assert_eq!(count_after("Tested:"), selected, "{report}");
    let _ = std::fs::remove_dir_all(&workdir);
}
