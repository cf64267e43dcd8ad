//! Apps (admin token) and an app's own API keys (app key).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hookd_engine::ids::{ApiKeyId, AppId};
use hookd_engine::store::apps as store;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{AdminToken, ApiResult, ApiState, AppKey, Tag, page};
use crate::id::Id;
use crate::problem::ApiError;
use crate::text::Text;

#[derive(Debug, Object)]
#[oai(deny_unknown_fields, example)]
pub struct CreateApp {
    /// A name for people; need not be unique.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Text,
}

impl Example for CreateApp {
    fn example() -> Self {
        Self {
            name: Text("shop".into()),
        }
    }
}

#[derive(Debug, Object)]
pub struct AppOut {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
pub struct AppCreated {
    pub id: String,
    pub name: String,
    /// The app's first API key. Shown once: only its hash is stored.
    pub api_key: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AppList {
    pub data: Vec<AppOut>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields, example)]
pub struct CreateApiKey {
    /// A name for people, e.g. where the key is used.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Option<Text>,
}

impl Example for CreateApiKey {
    fn example() -> Self {
        Self {
            name: Some(Text("billing-service".into())),
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ApiKeyOut {
    pub id: String,
    pub name: Option<String>,
    /// The key's last four characters.
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ApiKeyCreated {
    pub id: String,
    pub name: Option<String>,
    /// The key. Shown once: only its hash is stored.
    pub api_key: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
pub struct ApiKeyList {
    pub data: Vec<ApiKeyOut>,
}

#[derive(ApiResponse)]
enum AppCreatedResponse {
    /// The app and its API key (shown once).
    #[oai(status = 201)]
    Created(Json<AppCreated>),
}

#[derive(ApiResponse)]
enum KeyCreatedResponse {
    /// The key (shown once).
    #[oai(status = 201)]
    Created(Json<ApiKeyCreated>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

fn app_out(app: store::App) -> AppOut {
    AppOut {
        id: app.id.to_string(),
        name: app.name,
        created_at: app.created_at,
    }
}

fn key_created(info: store::ApiKeyInfo, key: &hookd_engine::secret::ApiKey) -> ApiKeyCreated {
    ApiKeyCreated {
        id: info.id.to_string(),
        name: info.name,
        api_key: key.expose().to_owned(),
        created_at: info.created_at,
    }
}

pub struct AppsApi(pub Arc<ApiState>);

#[OpenApi]
impl AppsApi {
    /// Create an app (admin)
    ///
    /// Returns the app's first API key, once.
    #[oai(path = "/v1/apps", method = "post", tag = "Tag::Apps")]
    async fn create_app(
        &self,
        auth: AdminToken,
        body: Json<CreateApp>,
    ) -> ApiResult<AppCreatedResponse> {
        self.0.check_admin(&auth).await?;
        let (app, key) = store::app_create(&self.0.store, &body.name).await?;
        Ok(AppCreatedResponse::Created(Json(AppCreated {
            id: app.id.to_string(),
            name: app.name,
            api_key: key.expose().to_owned(),
            created_at: app.created_at,
        })))
    }

    /// List apps (admin)
    #[oai(path = "/v1/apps", method = "get", tag = "Tag::Apps")]
    async fn list_apps(
        &self,
        auth: AdminToken,
        /// Items per page (1–200, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        #[oai(validator(pattern = r"^[A-Za-z0-9_-]{22}$"))]
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<AppList>> {
        self.0.check_admin(&auth).await?;
        let (limit, after) = page::params(limit.0, cursor.0.as_deref())?;
        let apps = store::apps_list(&self.0.store, after, limit).await?;
        let next_cursor = page::next_cursor(&apps, limit, |a| a.id.0);
        Ok(Json(AppList {
            data: apps.into_iter().map(app_out).collect(),
            next_cursor,
        }))
    }

    /// Get an app (admin)
    #[oai(path = "/v1/apps/:id", method = "get", tag = "Tag::Apps")]
    async fn get_app(&self, auth: AdminToken, id: Path<Id<AppId>>) -> ApiResult<Json<AppOut>> {
        self.0.check_admin(&auth).await?;
        let Path(Id(id)) = id;
        let app = store::app_get(&self.0.store, id)
            .await?
            .ok_or_else(|| ApiError::not_found("app"))?;
        Ok(Json(app_out(app)))
    }

    /// Delete an app (admin)
    ///
    /// Its keys stop working at once (on other hookd processes sharing the database, within a
    /// second); its endpoints are deleted and their pending deliveries cancelled.
    #[oai(path = "/v1/apps/:id", method = "delete", tag = "Tag::Apps")]
    async fn delete_app(&self, auth: AdminToken, id: Path<Id<AppId>>) -> ApiResult<Deleted> {
        self.0.check_admin(&auth).await?;
        let Path(Id(id)) = id;
        let _forget = self.0.keys.forget_app_after(id);
        if store::app_delete(&self.0.store, id).await? {
            Ok(Deleted::NoContent)
        } else {
            Err(ApiError::not_found("app"))
        }
    }

    /// Create an API key for an app (admin)
    ///
    /// For an app that lost its keys. Returns the key, once.
    #[oai(path = "/v1/apps/:id/api-keys", method = "post", tag = "Tag::Apps")]
    async fn create_app_key(
        &self,
        auth: AdminToken,
        id: Path<Id<AppId>>,
        body: Json<CreateApiKey>,
    ) -> ApiResult<KeyCreatedResponse> {
        self.0.check_admin(&auth).await?;
        let Path(Id(id)) = id;
        store::app_get(&self.0.store, id)
            .await?
            .ok_or_else(|| ApiError::not_found("app"))?;
        let (info, key) = store::api_key_create(&self.0.store, id, body.name.as_deref()).await?;
        Ok(KeyCreatedResponse::Created(Json(key_created(info, &key))))
    }

    /// Create an API key
    ///
    /// Another key for the calling app. Returns the key, once.
    #[oai(path = "/v1/api-keys", method = "post", tag = "Tag::Apps")]
    async fn create_key(
        &self,
        auth: AppKey,
        body: Json<CreateApiKey>,
    ) -> ApiResult<KeyCreatedResponse> {
        let app_id = self.0.app_of_uncached(&auth).await?;
        let (info, key) =
            store::api_key_create(&self.0.store, app_id, body.name.as_deref()).await?;
        Ok(KeyCreatedResponse::Created(Json(key_created(info, &key))))
    }

    /// List API keys
    ///
    /// The calling app's keys, revoked ones included, never the keys themselves.
    #[oai(path = "/v1/api-keys", method = "get", tag = "Tag::Apps")]
    async fn list_keys(&self, auth: AppKey) -> ApiResult<Json<ApiKeyList>> {
        let app_id = self.0.app_of(&auth).await?;
        let keys = store::api_keys_list(&self.0.store, app_id).await?;
        Ok(Json(ApiKeyList {
            data: keys
                .into_iter()
                .map(|k| ApiKeyOut {
                    id: k.id.to_string(),
                    name: k.name,
                    hint: k.hint,
                    created_at: k.created_at,
                    revoked_at: k.revoked_at,
                })
                .collect(),
        }))
    }

    /// Revoke an API key
    ///
    /// The key fails from its next request on (the calling key may revoke itself); on other
    /// hookd processes sharing the database, within a second.
    #[oai(path = "/v1/api-keys/:id", method = "delete", tag = "Tag::Apps")]
    async fn revoke_key(&self, auth: AppKey, id: Path<Id<ApiKeyId>>) -> ApiResult<Deleted> {
        let app_id = self.0.app_of_uncached(&auth).await?;
        let Path(Id(id)) = id;
        let _forget = self.0.keys.forget_app_after(app_id);
        if store::api_key_revoke(&self.0.store, app_id, id).await? {
            Ok(Deleted::NoContent)
        } else {
            Err(ApiError::not_found("API key"))
        }
    }
}
