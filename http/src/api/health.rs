//! Liveness and readiness.

use std::sync::Arc;

use hookd_engine::store::migrate;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{ApiState, Tag};

#[derive(Debug, Object)]
pub struct Health {
    pub status: String,
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

pub struct HealthApi(pub Arc<ApiState>);

#[OpenApi]
impl HealthApi {
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
        let expected = migrate::latest_version();
        let status = match migrate::migration_current_version(&self.0.store).await {
            Ok(Some(v)) if v == expected => {
                return ReadyResponse::Ready(Json(Health {
                    status: "ready".into(),
                }));
            }
            Ok(Some(v)) => format!("database at migration {v}, expected {expected}"),
            Ok(None) => "database not migrated".to_owned(),
            Err(e) => format!("database unavailable: {e}"),
        };
        ReadyResponse::NotReady(Json(Health { status }))
    }
}
