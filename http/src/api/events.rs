//! Publishing events.

use std::sync::Arc;

use hookd_engine::store::ingest;
use poem_openapi::param::Header;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sha2::{Digest, Sha256};

use super::{ApiResult, ApiState, AppKey, Tag};
use crate::problem::{ApiError, ProblemKind};
use crate::text::Text;

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct PublishEvent {
    /// The event type, matched against endpoints' `event_types`.
    #[oai(rename = "type", validator(min_length = 1, max_length = 256))]
    pub event_type: Text,
    /// Any JSON value; delivered as the webhook body's `data`.
    pub payload: serde_json::Value,
}

#[derive(Debug, Object)]
pub struct DeliveryRef {
    pub id: String,
    pub endpoint_id: String,
}

#[derive(Debug, Object)]
pub struct EventAccepted {
    /// The event id; receivers see it as `webhook-id`.
    pub id: String,
    /// One delivery per subscribed endpoint.
    pub deliveries: Vec<DeliveryRef>,
}

#[derive(ApiResponse)]
enum EventAcceptedResponse {
    /// The event and its deliveries are committed.
    #[oai(status = 202)]
    Accepted(Json<EventAccepted>),
}

pub struct EventsApi(pub Arc<ApiState>);

#[OpenApi]
impl EventsApi {
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
        let app_id = self.0.app_of(&auth).await?;
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
            &self.0.store,
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
}
