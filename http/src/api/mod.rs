//! The REST API: translates HTTP to engine calls and back, nothing more. One module per
//! resource, each with its routes and JSON shapes; [`page`] holds cursor pagination.
//!
//! Response fields without a value are left out rather than sent as `null`
//! (`skip_serializing_if_is_none`): poem-openapi writes OpenAPI 3.0, where an optional field of
//! type `string` may be absent but not `null`, and the document must describe what is sent.

mod apps;
mod deliveries;
mod endpoints;
mod events;
mod health;
mod page;
pub mod stats;

use std::collections::BTreeSet;
use std::sync::Arc;

use hookd_engine::ids::AppId;
use hookd_engine::key_cache::KeyCache;
use hookd_engine::publisher::Publisher;
use hookd_engine::secret::ApiKey;
use hookd_engine::store::{Store, apps as app_store};
use poem_openapi::auth::Bearer;
use poem_openapi::{OpenApiService, SecurityScheme, Tags};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::problem::{ApiError, ProblemKind};

/// What every handler shares.
#[derive(Debug)]
pub struct ApiState {
    pub store: Store,
    /// Publishes events with group commit: concurrent publish requests share a transaction.
    pub publisher: Publisher,
    pub admin_token: String,
    /// Whether endpoints may point at loopback and private addresses.
    pub allow_private_targets: bool,
    /// Live figures, shared between the dashboards that ask at the same moment.
    pub readings: stats::Readings,
    /// Apps of the API keys seen in the last second: a busy client would otherwise cost a
    /// query per request.
    pub keys: KeyCache,
}

pub type ApiResult<T> = Result<T, ApiError>;

#[derive(Tags)]
enum Tag {
    /// Tenants and their API keys.
    Apps,
    /// Where webhooks go.
    Endpoints,
    /// What producers publish.
    Events,
    /// One event on its way to one endpoint.
    Deliveries,
    /// Liveness and readiness.
    Health,
    /// Live figures for dashboards.
    Stats,
}

/// The admin token from `HOOKD_ADMIN_TOKEN`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct AdminToken(Bearer);

/// An app's API key.
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct AppKey(Bearer);

impl ApiState {
    /// The app whose key this is. A key that is unknown, revoked or of a deleted app is refused
    /// with 401; the admin token, valid but not an app's, with 403. A key revoked (or an app
    /// deleted) through another process may still pass for up to
    /// [`hookd_engine::key_cache::KEY_CACHE_TTL`].
    async fn app_of(&self, key: &AppKey) -> ApiResult<AppId> {
        let key = ApiKey::presented(&key.0.token);
        let app = self.keys.app_of(&self.store, &key).await?;
        self.app_or_refusal(app, &key)
    }

    /// [`Self::app_of`] from the database, for the routes that manage keys: a key revoked
    /// through another process must not mint a lasting key in its last second.
    async fn app_of_uncached(&self, key: &AppKey) -> ApiResult<AppId> {
        let key = ApiKey::presented(&key.0.token);
        let app = app_store::api_key_find_app(&self.store, &key).await?;
        self.app_or_refusal(app, &key)
    }

    fn app_or_refusal(&self, app: Option<AppId>, key: &ApiKey) -> ApiResult<AppId> {
        let presented = key.expose();
        match app {
            Some(app) => Ok(app),
            None if self.is_admin_token(presented) => Err(ApiError::new(
                ProblemKind::Forbidden,
                "the admin token cannot act for an app; use one of the app's API keys",
            )),
            None => Err(ApiError::new(
                ProblemKind::Unauthorized,
                "unknown or revoked API key",
            )),
        }
    }

    /// Admin routes take the admin token only: an app's API key is refused with 403, anything
    /// else with 401.
    async fn check_admin(&self, token: &AdminToken) -> ApiResult<()> {
        let presented = &token.0.token;
        if self.is_admin_token(presented) {
            return Ok(());
        }
        // Only a failed admin call pays for this lookup.
        if app_store::api_key_find_app(&self.store, &ApiKey::presented(presented))
            .await?
            .is_some()
        {
            return Err(ApiError::new(
                ProblemKind::Forbidden,
                "an app's API key cannot use admin routes; use the admin token",
            ));
        }
        Err(ApiError::new(
            ProblemKind::Unauthorized,
            "invalid admin token",
        ))
    }

    fn is_admin_token(&self, presented: &str) -> bool {
        let presented = Sha256::digest(presented.as_bytes());
        let expected = Sha256::digest(self.admin_token.as_bytes());
        // Fixed-length digests compared without early exit: timing reveals nothing of the token.
        let differ = presented
            .iter()
            .zip(expected.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        differ == 0
    }
}

/// The OpenAPI document hookd serves and `hookd openapi` prints: poem-openapi's, plus
/// `additionalProperties: false` on every object a request body can contain. Those objects refuse
/// unknown fields (`deny_unknown_fields`), which the derive does not write into the document.
pub fn document(spec: &str) -> String {
    let Ok(mut doc) = serde_json::from_str::<Value>(spec) else {
        return spec.to_owned();
    };
    let mut pending: Vec<&Value> = doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(Value::as_object)
        .flat_map(|operations| operations.values())
        .map(|operation| &operation["requestBody"])
        .collect();
    let mut request_objects = BTreeSet::new();
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(map) => {
                if let Some(name) = map
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    && request_objects.insert(name.to_owned())
                {
                    pending.push(&doc["components"]["schemas"][name]);
                }
                pending.extend(map.values());
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    for name in request_objects {
        if let Some(schema) = doc["components"]["schemas"][&name].as_object_mut()
            && schema.contains_key("properties")
            && !schema.contains_key("additionalProperties")
        {
            schema.insert("additionalProperties".to_owned(), Value::Bool(false));
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| spec.to_owned())
}

/// Every route, described by one OpenAPI document.
pub fn service(
    state: Arc<ApiState>,
) -> OpenApiService<
    (
        apps::AppsApi,
        endpoints::EndpointsApi,
        events::EventsApi,
        deliveries::DeliveriesApi,
        stats::StatsApi,
        health::HealthApi,
    ),
    (),
> {
    OpenApiService::new(
        (
            apps::AppsApi(state.clone()),
            endpoints::EndpointsApi(state.clone()),
            events::EventsApi(state.clone()),
            deliveries::DeliveriesApi(state.clone()),
            stats::StatsApi(state.clone()),
            health::HealthApi(state),
        ),
        "hookd",
        env!("CARGO_PKG_VERSION"),
    )
    .description("Webhook delivery engine: signed, at-least-once, event-sourced on PostgreSQL.")
}
