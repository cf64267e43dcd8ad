//! The REST API: translates HTTP to engine calls and back, nothing more. One module per
//! resource, each with its routes and JSON shapes; [`page`] holds cursor pagination.

mod apps;
mod deliveries;
mod endpoints;
mod events;
mod health;
mod page;

use std::sync::Arc;

use hookd_engine::ids::{AppId, IdParseError};
use hookd_engine::secret::ApiKey;
use hookd_engine::store::{Store, apps as app_store};
use poem_openapi::auth::Bearer;
use poem_openapi::{OpenApiService, SecurityScheme, Tags};
use sha2::{Digest, Sha256};

use crate::problem::{ApiError, ProblemKind};

/// What every handler shares.
#[derive(Debug)]
pub struct ApiState {
    pub store: Store,
    pub admin_token: String,
    /// Whether endpoints may point at loopback and private addresses.
    pub allow_private_targets: bool,
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
    /// The app whose key this is; 401 for an unknown or revoked key.
    async fn app_of(&self, key: &AppKey) -> ApiResult<AppId> {
        app_store::api_key_find_app(&self.store, &ApiKey::presented(&key.0.token))
            .await?
            .ok_or_else(|| ApiError::new(ProblemKind::Unauthorized, "unknown or revoked API key"))
    }

    fn check_admin(&self, token: &AdminToken) -> ApiResult<()> {
        let presented = Sha256::digest(token.0.token.as_bytes());
        let expected = Sha256::digest(self.admin_token.as_bytes());
        // Fixed-length digests compared without early exit: timing reveals nothing of the token.
        let differ = presented
            .iter()
            .zip(expected.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differ == 0 {
            Ok(())
        } else {
            Err(ApiError::new(
                ProblemKind::Unauthorized,
                "invalid admin token",
            ))
        }
    }
}

/// Parses a path id, naming the parameter in the error.
fn parse_id<T>(parse: fn(&str) -> Result<T, IdParseError>, text: &str) -> ApiResult<T> {
    parse(text).map_err(|e| ApiError::new(ProblemKind::InvalidId, e.to_string()))
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
            health::HealthApi(state),
        ),
        "hookd",
        env!("CARGO_PKG_VERSION"),
    )
    .description("Webhook delivery engine: signed, at-least-once, event-sourced on PostgreSQL.")
}
