//! Every error the API answers, as RFC 9457 `application/problem+json`, mapped in one place.

use hookd_engine::store::StoreError;
use poem::Response;
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem detail.
#[derive(Debug, Clone, Object)]
pub struct Problem {
    /// A stable, machine-readable URI naming the kind of error (`urn:hookd:problem:<kind>`).
    #[oai(rename = "type")]
    pub kind: String,
    /// A short human summary of the kind.
    pub title: String,
    pub status: u16,
    /// What was wrong with this request, naming the field where one is at fault.
    pub detail: String,
}

/// The kinds of problem hookd reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    IdempotencyConflict,
    NotRedrivable,
    NotCancellable,
    PayloadTooLarge,
    MethodNotAllowed,
    UnsupportedMediaType,
    Unavailable,
    Internal,
}

impl ProblemKind {
    fn slug_title_status(self) -> (&'static str, &'static str, StatusCode) {
        use StatusCode as S;
        match self {
            Self::InvalidRequest => ("invalid-request", "Invalid request", S::BAD_REQUEST),
            Self::Unauthorized => (
                "unauthorized",
                "Missing or invalid credentials",
                S::UNAUTHORIZED,
            ),
            Self::Forbidden => (
                "forbidden",
                "Credentials of the wrong kind for this route",
                S::FORBIDDEN,
            ),
            Self::NotFound => ("not-found", "Not found", S::NOT_FOUND),
            Self::IdempotencyConflict => (
                "idempotency-conflict",
                "Idempotency key reused with a different request",
                S::CONFLICT,
            ),
            Self::NotRedrivable => ("not-redrivable", "Delivery cannot be redriven", S::CONFLICT),
            Self::NotCancellable => (
                "not-cancellable",
                "Delivery cannot be cancelled",
                S::CONFLICT,
            ),
            Self::PayloadTooLarge => (
                "payload-too-large",
                "Request body too large",
                S::PAYLOAD_TOO_LARGE,
            ),
            Self::MethodNotAllowed => (
                "method-not-allowed",
                "Method not allowed",
                S::METHOD_NOT_ALLOWED,
            ),
            Self::UnsupportedMediaType => (
                "unsupported-media-type",
                "Unsupported media type",
                S::UNSUPPORTED_MEDIA_TYPE,
            ),
            Self::Unavailable => ("unavailable", "Service unavailable", S::SERVICE_UNAVAILABLE),
            Self::Internal => ("internal", "Internal error", S::INTERNAL_SERVER_ERROR),
        }
    }
}

/// An error response of any route.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed: bad JSON, a missing or invalid field, a bad id.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// Credentials are missing or wrong.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// Valid credentials of the other kind: the admin token on an app route, or an app's API key
    /// on an admin route.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// No such resource for these credentials.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The request conflicts with the resource's state.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// The route does not take this method.
    #[oai(status = 405, content_type = "application/problem+json")]
    MethodNotAllowed(Json<Problem>),
    /// The body exceeds the configured limit.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// The body is not JSON (`content-type: application/json` expected).
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    /// The database is unreachable; retry later.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
    /// A bug: the server could not handle a valid request.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
}

impl ApiError {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        let problem = problem(kind, detail.into());
        match kind {
            ProblemKind::InvalidRequest => Self::BadRequest(Json(problem)),
            ProblemKind::Unauthorized => Self::Unauthorized(Json(problem)),
            ProblemKind::Forbidden => Self::Forbidden(Json(problem)),
            ProblemKind::NotFound => Self::NotFound(Json(problem)),
            ProblemKind::IdempotencyConflict
            | ProblemKind::NotRedrivable
            | ProblemKind::NotCancellable => Self::Conflict(Json(problem)),
            ProblemKind::PayloadTooLarge => Self::PayloadTooLarge(Json(problem)),
            ProblemKind::MethodNotAllowed => Self::MethodNotAllowed(Json(problem)),
            ProblemKind::UnsupportedMediaType => Self::UnsupportedMediaType(Json(problem)),
            ProblemKind::Unavailable => Self::Unavailable(Json(problem)),
            ProblemKind::Internal => Self::Internal(Json(problem)),
        }
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::InvalidRequest, detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ProblemKind::NotFound, format!("no such {what}"))
    }

    /// The problem detail this error answers with.
    pub fn problem(&self) -> &Problem {
        match self {
            Self::BadRequest(p)
            | Self::Unauthorized(p)
            | Self::Forbidden(p)
            | Self::NotFound(p)
            | Self::Conflict(p)
            | Self::MethodNotAllowed(p)
            | Self::PayloadTooLarge(p)
            | Self::UnsupportedMediaType(p)
            | Self::Unavailable(p)
            | Self::Internal(p) => &p.0,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            Self::new(
                ProblemKind::Unavailable,
                "the database is unavailable; retry later",
            )
        } else {
            tracing::error!(error = %e, "store error");
            Self::new(
                ProblemKind::Internal,
                "an internal error occurred; it has been logged",
            )
        }
    }
}

fn problem(kind: ProblemKind, detail: String) -> Problem {
    let (slug, title, status) = kind.slug_title_status();
    Problem {
        kind: format!("urn:hookd:problem:{slug}"),
        title: title.to_owned(),
        status: status.as_u16(),
        detail,
    }
}

/// Turns any error that reached the top of the stack (poem-openapi's parse and auth errors,
/// unknown routes, size limits, and our own [`ApiError`]s) into a problem response.
pub async fn problem_response(err: poem::Error) -> Response {
    let status = err.status();
    let response = err.into_response();
    let is_problem = response
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_CONTENT_TYPE));
    if is_problem {
        return response;
    }
    let text = response.into_body().into_string().await.unwrap_or_default();
    let kind = match status {
        StatusCode::UNAUTHORIZED => ProblemKind::Unauthorized,
        StatusCode::FORBIDDEN => ProblemKind::Forbidden,
        StatusCode::NOT_FOUND => ProblemKind::NotFound,
        StatusCode::PAYLOAD_TOO_LARGE => ProblemKind::PayloadTooLarge,
        StatusCode::METHOD_NOT_ALLOWED => ProblemKind::MethodNotAllowed,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ProblemKind::UnsupportedMediaType,
        s if s.is_client_error() => ProblemKind::InvalidRequest,
        StatusCode::SERVICE_UNAVAILABLE => ProblemKind::Unavailable,
        _ => ProblemKind::Internal,
    };
    let detail = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut body = problem(kind, detail);
    body.status = status.as_u16();
    Response::builder()
        .status(status)
        .content_type(PROBLEM_CONTENT_TYPE)
        .body(serde_json::json!({
            "type": body.kind, "title": body.title, "status": body.status, "detail": body.detail,
        }).to_string())
}
