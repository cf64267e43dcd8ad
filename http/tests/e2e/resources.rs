//! Apps, keys and endpoints as resources: CRUD, pagination, revocation and tenant isolation.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn endpoints_can_be_listed_updated_disabled_and_deleted() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "serve", &[]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let mut receiver = Receiver::ok().await;
    let (id, _) = api
        .create_endpoint(
            &key,
            json!({"url": receiver.url, "description": "orders",
                   "headers": {"X-Tenant": "acme"}, "metadata": {"team": "billing"}}),
        )
        .await;
    api.create_endpoint(&key, json!({"url": receiver.url, "event_types": ["none"]}))
        .await;
    api.create_endpoint(&key, json!({"url": receiver.url, "event_types": ["none"]}))
        .await;

    // Custom headers reach the receiver.
    api.publish(&key, "order.paid", json!({})).await;
    assert_eq!(receiver.next().await.headers["x-tenant"], "acme");

    // Pages of two, newest first, then the last page with no cursor.
    let (status, first) = api
        .call(Method::GET, "/v1/endpoints?limit=2", &key, None)
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = api
        .call(
            Method::GET,
            &format!("/v1/endpoints?limit=2&cursor={cursor}"),
            &key,
            None,
        )
        .await;
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        second["data"][0]["id"],
        id.as_str(),
        "the oldest comes last"
    );
    assert!(second["next_cursor"].is_null());
    assert!(
        first["data"][0].get("secret").is_none(),
        "lists never show secrets"
    );

    // PATCH: omitted fields stay, null resets.
    let path = format!("/v1/endpoints/{id}");
    let (status, patched) = api
        .call(
            Method::PATCH,
            &path,
            &key,
            Some(json!({"event_types": ["order.paid"], "max_attempts": 3})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["description"], "orders");
    assert_eq!(patched["event_types"], json!(["order.paid"]));
    assert_eq!(patched["max_attempts"], 3);
    let (_, patched) = api
        .call(
            Method::PATCH,
            &path,
            &key,
            Some(json!({"max_attempts": null})),
        )
        .await;
    assert!(patched["max_attempts"].is_null());
    assert_eq!(patched["event_types"], json!(["order.paid"]));
    let (status, _) = api
        .call(
            Method::PATCH,
            &path,
            &key,
            Some(json!({"headers": {"Host": "x"}})),
        )
        .await;
    assert_eq!(status, 400);

    // Disabled: no delivery. Enabled again: deliveries resume.
    let (_, disabled) = api
        .call(Method::POST, &format!("{path}/disable"), &key, None)
        .await;
    assert_eq!(disabled["enabled"], false);
    let accepted = api.publish(&key, "order.paid", json!({})).await;
    assert!(accepted["deliveries"].as_array().unwrap().is_empty());
    let (_, enabled) = api
        .call(Method::POST, &format!("{path}/enable"), &key, None)
        .await;
    assert_eq!(enabled["enabled"], true);
    assert!(enabled["disabled_reason"].is_null());
    let accepted = api.publish(&key, "order.paid", json!({})).await;
    assert_eq!(accepted["deliveries"].as_array().unwrap().len(), 1);
    receiver.next().await;

    // Deleted: gone from the API; its pending deliveries are cancelled, history kept.
    receiver.set_behavior(Arc::new(|_| (500, Duration::ZERO)));
    let (status, _) = api
        .call(
            Method::PATCH,
            &path,
            &key,
            Some(json!({"retry_base_ms": 3600000, "retry_cap_ms": 3600000})),
        )
        .await;
    assert_eq!(status, 200);
    let accepted = api.publish(&key, "order.paid", json!({})).await;
    let delivery = accepted["deliveries"][0]["id"].as_str().unwrap().to_owned();
    receiver.next().await;
    api.wait_for_state(&key, &delivery, "pending").await;
    let (status, _) = api.call(Method::DELETE, &path, &key, None).await;
    assert_eq!(status, 204);
    let (status, _) = api.call(Method::GET, &path, &key, None).await;
    assert_eq!(status, 404);
    let (status, _) = api.call(Method::DELETE, &path, &key, None).await;
    assert_eq!(status, 404);
    let cancelled = api.delivery(&key, &delivery).await;
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancelled["last_error"], "the endpoint was deleted");
    assert_eq!(
        api.history_kinds(&key, &delivery).await.last().unwrap(),
        "cancelled"
    );
    db.assert_projection_consistent().await;
}

#[tokio::test]
async fn one_app_cannot_reach_another_apps_resources() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "serve", &[]).await;
    let api = Client::new(&hookd);
    let key_a = api.create_app().await;
    let key_b = api.create_app().await;
    let mut receiver = Receiver::ok().await;
    let (endpoint_b, _) = api
        .create_endpoint(&key_b, json!({"url": receiver.url}))
        .await;
    let accepted = api.publish(&key_b, "x", json!({})).await;
    let delivery_b = accepted["deliveries"][0]["id"].as_str().unwrap().to_owned();
    let event_b = accepted["id"].as_str().unwrap().to_owned();
    receiver.next().await;
    api.wait_for_state(&key_b, &delivery_b, "succeeded").await;
    let (_, keys_b) = api.call(Method::GET, "/v1/api-keys", &key_b, None).await;
    let key_id_b = keys_b["data"][0]["id"].as_str().unwrap().to_owned();

    let routes = [
        (Method::GET, format!("/v1/endpoints/{endpoint_b}"), None),
        (
            Method::PATCH,
            format!("/v1/endpoints/{endpoint_b}"),
            Some(json!({"description": "x"})),
        ),
        (
            Method::POST,
            format!("/v1/endpoints/{endpoint_b}/disable"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/endpoints/{endpoint_b}/enable"),
            None,
        ),
        (Method::DELETE, format!("/v1/endpoints/{endpoint_b}"), None),
        (Method::GET, format!("/v1/deliveries/{delivery_b}"), None),
        (
            Method::GET,
            format!("/v1/deliveries/{delivery_b}/history"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/deliveries/{delivery_b}/redrive"),
            None,
        ),
        (Method::DELETE, format!("/v1/api-keys/{key_id_b}"), None),
        (
            Method::GET,
            format!("/v1/endpoints/{endpoint_b}/stats"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/endpoints/{endpoint_b}/recover"),
            Some(json!({"since": "2020-01-01T00:00:00Z"})),
        ),
        (
            Method::POST,
            format!("/v1/endpoints/{endpoint_b}/secret/rotate"),
            Some(json!({})),
        ),
        (Method::GET, format!("/v1/events/{event_b}"), None),
        (
            Method::POST,
            format!("/v1/deliveries/{delivery_b}/cancel"),
            None,
        ),
    ];
    for (method, path, body) in routes {
        let (status, problem) = api.call(method.clone(), &path, &key_a, body).await;
        assert_eq!(
            status, 404,
            "{method} {path} with another app's key: {problem}"
        );
        assert_eq!(problem["type"], "urn:hookd:problem:not-found");
    }
    // B's resources are untouched.
    let (status, endpoint) = api
        .call(
            Method::GET,
            &format!("/v1/endpoints/{endpoint_b}"),
            &key_b,
            None,
        )
        .await;
    assert_eq!((status, endpoint["enabled"].as_bool()), (200, Some(true)));
    for list in ["/v1/endpoints", "/v1/events", "/v1/deliveries"] {
        let (_, list_a) = api.call(Method::GET, list, &key_a, None).await;
        assert!(
            list_a["data"].as_array().unwrap().is_empty(),
            "{list}: {list_a}"
        );
    }
}

/// Each process remembers a found key for a second (engine/src/key_cache.rs): a key revoked
/// through one API process fails on another once that second is up, not only after a restart.
#[tokio::test]
async fn a_key_revoked_through_another_process_fails_there_within_moments() {
    let db = TestDb::create().await;
    let first = Hookd::start(&db, "api", &[]).await;
    let second = Hookd::start(&db, "api", &[]).await;
    let (api, other) = (Client::new(&first), Client::new(&second));
    let key = api.create_app().await;
    let (status, created) = api
        .call(Method::POST, "/v1/api-keys", &key, Some(json!({})))
        .await;
    assert_eq!(status, 201, "{created}");
    let doomed = created["api_key"].as_str().unwrap().to_owned();
    let (status, _) = other
        .call(Method::GET, "/v1/endpoints", &doomed, None)
        .await;
    assert_eq!(status, 200, "the other process knows the key");

    let id = created["id"].as_str().unwrap();
    let revoking = std::time::Instant::now();
    let (status, _) = api
        .call(Method::DELETE, &format!("/v1/api-keys/{id}"), &key, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = other
        .call(Method::POST, "/v1/api-keys", &doomed, Some(json!({})))
        .await;
    assert_eq!(
        status, 401,
        "a revoked key cannot mint another, even where it is remembered"
    );
    // Nothing announces the end of the other process's second: ask until it refuses.
    loop {
        let (status, _) = other
            .call(Method::GET, "/v1/endpoints", &doomed, None)
            .await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoking.elapsed() < 5 * hookd_engine::key_cache::KEY_CACHE_TTL,
            "the other process still accepts the revoked key"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = other.call(Method::GET, "/v1/endpoints", &key, None).await;
    assert_eq!(status, 200, "the app's other key still works there");
}

#[tokio::test]
async fn revoked_keys_and_deleted_apps_fail_on_their_next_request() {
    let db = TestDb::create().await;
    let hookd = Hookd::start(&db, "api", &[]).await;
    let api = Client::new(&hookd);
    let key = api.create_app().await;
    let (status, created) = api
        .call(
            Method::POST,
            "/v1/api-keys",
            &key,
            Some(json!({"name": "ci"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let second = created["api_key"].as_str().unwrap().to_owned();
    let second_id = created["id"].as_str().unwrap().to_owned();
    let (_, keys) = api.call(Method::GET, "/v1/api-keys", &second, None).await;
    let keys = keys["data"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.get("api_key").is_none()));
    assert_eq!(keys[0]["hint"], &second[second.len() - 4..]);

    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{second_id}"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = api.call(Method::GET, "/v1/endpoints", &second, None).await;
    assert_eq!(status, 401, "a revoked key fails at once");
    let (status, _) = api.call(Method::GET, "/v1/endpoints", &key, None).await;
    assert_eq!(status, 200, "the other key still works");

    // The admin sees the app and can hand it a new key, e.g. when it lost its own.
    let (_, apps) = api.call(Method::GET, "/v1/apps", ADMIN_TOKEN, None).await;
    let app_id = apps["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, issued) = api
        .call(
            Method::POST,
            &format!("/v1/apps/{app_id}/api-keys"),
            ADMIN_TOKEN,
            Some(json!({"name": "recovery"})),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let recovery = issued["api_key"].as_str().unwrap().to_owned();
    let (status, _) = api
        .call(Method::GET, "/v1/endpoints", &recovery, None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/apps/app_0123456789abcdef0123456789abcdef/api-keys",
            ADMIN_TOKEN,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 404);
    // Deleting the app kills every key it has.
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/apps/{app_id}"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 204);
    for dead_key in [&key, &recovery] {
        let (status, _) = api.call(Method::GET, "/v1/endpoints", dead_key, None).await;
        assert_eq!(status, 401);
    }
    let (status, _) = api
        .call(
            Method::GET,
            &format!("/v1/apps/{app_id}"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/apps/{app_id}"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (_, apps) = api.call(Method::GET, "/v1/apps", ADMIN_TOKEN, None).await;
    assert!(apps["data"].as_array().unwrap().is_empty());
}
