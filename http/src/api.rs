//! The REST API: translates HTTP to engine calls and back, nothing more.

use std::sync::Arc;

use hookd_engine::endpoint_url::check_endpoint_url;
use hookd_engine::ids::{AppId, DeliveryId};
use hookd_engine::secret::{ApiKey, SigningSecret};
use hookd_engine::store::{Store, deliveries, ingest, migrate, tenants};
use poem_openapi::auth::Bearer;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, SecurityScheme, Tags};
use sha2::{Digest, Sha256};

use crate::models::*;
use crate::problem::{ApiError, ProblemKind};

/// What every handler shares.
#[derive(Debug)]
pub struct ApiState {
    pub store: Store,
    pub admin_token: String,
    /// Whether endpoints may point at loopback and private addresses.
    pub allow_private_targets: bool,
}

#[derive(Debug)]
pub struct Api {
    pub state: Arc<ApiState>,
}

#[derive(Tags)]
enum Tag {
    /// Tenants (admin token).
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

#[derive(ApiResponse)]
enum AppCreatedResponse {
    /// The app and its API key (shown once).
    #[oai(status = 201)]
    Created(Json<AppCreated>),
}

#[derive(ApiResponse)]
enum EndpointCreatedResponse {
    /// The endpoint and its signing secret (shown once).
    #[oai(status = 201)]
    Created(Json<EndpointCreated>),
}

#[derive(ApiResponse)]
enum EventAcceptedResponse {
    /// The event and its deliveries are committed.
    #[oai(status = 202)]
    Accepted(Json<EventAccepted>),
}

#[derive(ApiResponse)]
enum RedriveResponse {
    /// The delivery is scheduled now.
    #[oai(status = 202)]
    Accepted(Json<Accepted>),
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// The database answers and its schema is current.
    #[oai(status = 200)]
    Ready(Json<Health>),
    /// The database is unreachable or not migrated.
    #[oai(status = 503)]
    NotReady(Json<Health>),
}

type ApiResult<T> = Result<T, ApiError>;

impl Api {
    async fn app_of(&self, key: &AppKey) -> ApiResult<AppId> {
        let presented = ApiKey::presented(&key.0.token);
        tenants::api_key_find_app(&self.state.store, &presented)
            .await?
            .ok_or_else(|| ApiError::new(ProblemKind::Unauthorized, "unknown or revoked API key"))
    }

    fn check_admin(&self, token: &AdminToken) -> ApiResult<()> {
        let presented = Sha256::digest(token.0.token.as_bytes());
        let expected = Sha256::digest(self.state.admin_token.as_bytes());
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

fn delivery_id(text: &str) -> ApiResult<DeliveryId> {
    DeliveryId::parse(text).map_err(|e| ApiError::new(ProblemKind::InvalidId, e.to_string()))
}

#[OpenApi]
impl Api {
    /// Create an app (admin)
    ///
    /// Returns the app's API key, once.
    #[oai(path = "/v1/apps", method = "post", tag = "Tag::Apps")]
    async fn create_app(
        &self,
        auth: AdminToken,
        body: Json<CreateApp>,
    ) -> ApiResult<AppCreatedResponse> {
        self.check_admin(&auth)?;
        let (app, key) = tenants::app_create(&self.state.store, &body.name).await?;
        Ok(AppCreatedResponse::Created(Json(AppCreated {
            id: app.id.to_string(),
            name: app.name,
            api_key: key.expose().to_owned(),
            created_at: app.created_at,
        })))
    }

    /// Create an endpoint
    ///
    /// Without `event_types` it receives every event type. Without `secret` one is generated.
    #[oai(path = "/v1/endpoints", method = "post", tag = "Tag::Endpoints")]
    async fn create_endpoint(
        &self,
        auth: AppKey,
        body: Json<CreateEndpoint>,
    ) -> ApiResult<EndpointCreatedResponse> {
        let app_id = self.app_of(&auth).await?;
        let body = body.0;
        let url = check_endpoint_url(&body.url, self.state.allow_private_targets)
            .await
            .map_err(|e| ApiError::invalid(format!("url: {e}")))?;
        let secret = match &body.secret {
            Some(text) => {
                SigningSecret::parse(text).map_err(|e| ApiError::invalid(format!("secret: {e}")))?
            }
            None => SigningSecret::generate(),
        };
        if let Some(types) = &body.event_types
            && let Some(bad) = types.iter().find(|t| t.is_empty() || t.len() > 256)
        {
            return Err(ApiError::invalid(format!(
                "event_types: `{bad}` must be 1 to 256 characters"
            )));
        }
        if let (Some(base), Some(cap)) = (body.retry_base_ms, body.retry_cap_ms)
            && cap < base
        {
            return Err(ApiError::invalid(
                "retry_cap_ms: must not be smaller than retry_base_ms",
            ));
        }
        let endpoint = tenants::endpoint_insert(
            &self.state.store,
            &tenants::NewEndpoint {
                app_id,
                url,
                description: body.description.map(String::from).unwrap_or_default(),
                event_types: body
                    .event_types
                    .map(|types| types.into_iter().map(String::from).collect()),
                secret: secret.clone(),
                max_attempts: body.max_attempts,
                retry_base_ms: body.retry_base_ms,
                retry_cap_ms: body.retry_cap_ms,
                timeout_ms: body.timeout_ms,
            },
        )
        .await?;
        Ok(EndpointCreatedResponse::Created(Json(EndpointCreated {
            id: endpoint.id.to_string(),
            url: endpoint.url,
            description: endpoint.description,
            event_types: endpoint.event_types,
            secret: secret.expose(),
            enabled: endpoint.enabled,
            max_attempts: endpoint.max_attempts,
            retry_base_ms: endpoint.retry_base_ms,
            retry_cap_ms: endpoint.retry_cap_ms,
            timeout_ms: endpoint.timeout_ms,
            created_at: endpoint.created_at,
        })))
    }

    /// Publish an event
    ///
    /// Answered 202 once the event and its deliveries are committed. With an `Idempotency-Key`,
    /// repeating the same request returns the original answer; reusing the key with another
    /// body is refused with 409. Keys are kept at least 24 hours.
    #[oai(path = "/v1/events", method = "post", tag = "Tag::Events")]
    async fn publish_event(
        &self,
        auth: AppKey,
        /// Makes retries of this request safe: scoped to the app, kept at least 24 hours.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))]
        idempotency_key: Header<Option<String>>,
        body: Json<PublishEvent>,
    ) -> ApiResult<EventAcceptedResponse> {
        let app_id = self.app_of(&auth).await?;
        let payload = serde_json::to_string(&body.payload)
            .map_err(|e| ApiError::invalid(format!("payload: {e}")))?;
        let request_hash: [u8; 32] = {
            let mut hasher = Sha256::new();
            hasher.update(body.event_type.as_bytes());
            hasher.update([0]);
            hasher.update(payload.as_bytes());
            hasher.finalize().into()
        };
        let idempotency = idempotency_key
            .0
            .as_deref()
            .map(|key| ingest::IdempotencyKey { key, request_hash });
        let outcome = ingest::event_publish(
            &self.state.store,
            &ingest::NewEvent {
                app_id,
                event_type: &body.event_type,
                payload: &payload,
                idempotency,
            },
        )
        .await?;
        let published = match outcome {
            ingest::PublishOutcome::Created(p) | ingest::PublishOutcome::Replayed(p) => p,
            ingest::PublishOutcome::KeyConflict => {
                return Err(ApiError::new(
                    ProblemKind::IdempotencyConflict,
                    "Idempotency-Key: this key was used with a different request body",
                ));
            }
        };
        Ok(EventAcceptedResponse::Accepted(Json(EventAccepted {
            id: published.event_id.to_string(),
            deliveries: published
                .deliveries
                .into_iter()
                .map(|(id, endpoint_id)| DeliveryRef {
                    id: id.to_string(),
                    endpoint_id: endpoint_id.to_string(),
                })
                .collect(),
        })))
    }

    /// Get a delivery
    #[oai(path = "/v1/deliveries/:id", method = "get", tag = "Tag::Deliveries")]
    async fn get_delivery(&self, auth: AppKey, id: Path<String>) -> ApiResult<Json<DeliveryOut>> {
        let app_id = self.app_of(&auth).await?;
        let id = delivery_id(&id)?;
        let delivery = deliveries::delivery_get(&self.state.store, app_id, id)
            .await?
            .ok_or_else(|| ApiError::not_found("delivery"))?;
        Ok(Json(delivery.into()))
    }

    /// A delivery's history
    ///
    /// Every state change, oldest first: claims, attempts with status, latency, error and
    /// response excerpt, scheduled retries, dead-lettering, redrives.
    #[oai(
        path = "/v1/deliveries/:id/history",
        method = "get",
        tag = "Tag::Deliveries"
    )]
    async fn delivery_history(&self, auth: AppKey, id: Path<String>) -> ApiResult<Json<History>> {
        let app_id = self.app_of(&auth).await?;
        let id = delivery_id(&id)?;
        let entries = deliveries::delivery_history(&self.state.store, app_id, id)
            .await?
            .ok_or_else(|| ApiError::not_found("delivery"))?;
        Ok(Json(History {
            data: entries.into_iter().map(HistoryEntry::from).collect(),
        }))
    }

    /// Redrive a delivery
    ///
    /// A dead-lettered or delivered delivery is scheduled again now, with a fresh retry budget.
    #[oai(
        path = "/v1/deliveries/:id/redrive",
        method = "post",
        tag = "Tag::Deliveries"
    )]
    async fn redrive_delivery(&self, auth: AppKey, id: Path<String>) -> ApiResult<RedriveResponse> {
        let app_id = self.app_of(&auth).await?;
        let id = delivery_id(&id)?;
        match deliveries::delivery_redrive(&self.state.store, app_id, id).await? {
            deliveries::RedriveOutcome::Redriven => Ok(RedriveResponse::Accepted(Json(Accepted {
                id: id.to_string(),
                state: DeliveryStateOut::Pending,
            }))),
            deliveries::RedriveOutcome::NotRedrivable => Err(ApiError::new(
                ProblemKind::NotRedrivable,
                "only a dead-lettered or succeeded delivery can be redriven",
            )),
            deliveries::RedriveOutcome::NotFound => Err(ApiError::not_found("delivery")),
        }
    }

    /// Liveness: the process is up
    #[oai(path = "/health", method = "get", tag = "Tag::Health")]
    async fn health(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
        })
    }

    /// Readiness: the database answers and its migrations are current
    #[oai(path = "/ready", method = "get", tag = "Tag::Health")]
    async fn ready(&self) -> ReadyResponse {
        let status = match migrate::migration_current_version(&self.state.store).await {
            Ok(Some(v)) if v == migrate::latest_version() => {
                return ReadyResponse::Ready(Json(Health {
                    status: "ready".into(),
                }));
            }
            Ok(Some(v)) => format!(
                "database at migration {v}, expected {}",
                migrate::latest_version()
            ),
            Ok(None) => "database not migrated".to_owned(),
            Err(e) => format!("database unavailable: {e}"),
        };
        ReadyResponse::NotReady(Json(Health { status }))
    }
}
