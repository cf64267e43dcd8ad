//! Signing secrets: sealed at rest, rotated with a day of overlap, resealed under a new master
//! key.

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn a_rotated_secret_and_its_predecessor_both_sign_for_a_day() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "serve", &[]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let mut receiver = Receiver::ok().await;
    let (endpoint, old_secret) = api
        .create_endpoint(&key, json!({"url": receiver.url}))
        .await;

    // At rest the secret is sealed: the database never holds it in the clear.
    let stored: String = db
        .client()
        .await
        .query_one("SELECT secret FROM endpoints", &[])
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("hk1:"), "{stored}");
    assert!(!stored.contains(&old_secret[6..]));

    let (status, rotated) = api
        .call(
            Method::POST,
            &format!("/v1/endpoints/{endpoint}/secret/rotate"),
            &key,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    let until: chrono::DateTime<chrono::Utc> = rotated["previous_valid_until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let overlap = until - chrono::Utc::now();
    assert!(overlap > chrono::TimeDelta::hours(23) && overlap <= chrono::TimeDelta::hours(24));

    let (status, problem) = api
        .call(
            Method::POST,
            &format!("/v1/endpoints/{endpoint}/secret/rotate"),
            &key,
            Some(json!({"secret": "not-a-secret"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(problem["detail"].as_str().unwrap().starts_with("secret:"));

    api.publish(&key, "x", json!({"after": "rotation"})).await;
    let got = receiver.next().await;
    assert_eq!(got.headers["webhook-signature"].split(' ').count(), 2);
    // Receivers holding either secret accept the webhook.
    verify_independently(&old_secret, &got).await;
    verify_independently(&new_secret, &got).await;
    let (_, shown) = api
        .call(
            Method::GET,
            &format!("/v1/endpoints/{endpoint}"),
            &key,
            None,
        )
        .await;
    assert!(
        !shown.to_string().contains("whsec_"),
        "secrets never show after creation"
    );
}

#[tokio::test]
async fn secrets_are_resealed_under_a_new_master_key() {
    let db = TestDb::create().await;
    let first = Hookd::start(&db, "api", &[]).await;
    let api = Client::new(&first);
    let key = api.create_app().await;
    let mut receiver = Receiver::ok().await;
    let (_, secret) = api
        .create_endpoint(&key, json!({"url": receiver.url}))
        .await;
    first.terminate().await;

    let new_key = String::from_utf8(db.hookd_command(&["keygen"]).await.stdout).unwrap();
    let new_key = new_key.trim();
    // Without the old key the secret cannot be opened: a reseal refuses and changes nothing.
    let refused = db
        .hookd_command_with(&["secrets", "reseal"], &[("HOOKD_MASTER_KEY", new_key)])
        .await;
    assert!(!refused.status.success());
    let resealed = db
        .hookd_command_with(
            &["secrets", "reseal"],
            &[
                ("HOOKD_MASTER_KEY", new_key),
                ("HOOKD_PREVIOUS_MASTER_KEYS", MASTER_KEY),
            ],
        )
        .await;
    let report = String::from_utf8_lossy(&resealed.stdout).into_owned();
    assert!(resealed.status.success(), "{report}");
    assert!(
        report.contains("resealed the secrets of 1 of 1 endpoints"),
        "{report}"
    );

    // Only the new key is needed from now on.
    let second = Hookd::start(&db, "serve", &[("HOOKD_MASTER_KEY", new_key)]).await;
    Client::new(&second).publish(&key, "x", json!({})).await;
    let got = receiver.next().await;
    verify_independently(&secret, &got).await;
}
