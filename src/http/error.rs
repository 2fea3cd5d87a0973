//! The one error type of the API: each variant's doc names its status.
//! Bodies are always `{"error": "<for a person>"}`; internal details are
//! logged here, once, and never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::AuthError;
use crate::executions::SubmitError;
use crate::limits::rate::RetryAfter;
use crate::projects::ProjectError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not valid JSON, or a parameter is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no key, or a key that is unknown, expired or revoked.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: a valid key without the needed permission.
    #[error("this API key lacks the {0:?} permission")]
    Forbidden(&'static str),
    /// 404: no such resource.
    #[error("{0}")]
    NotFound(String),
    /// 409: the resource already exists.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is over the configured limit (`--max-body-bytes`).
    #[error("request body too large for this server's limit")]
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed JSON whose content is invalid.
    #[error("{0}")]
    Unprocessable(String),
    /// 402: a daily budget the request counts toward is used up.
    #[error("{0}")]
    BudgetExhausted(String),
    /// 429: over an ingestion rate limit; `Retry-After` (seconds) says when
    /// to try again.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// 503: the database does not answer; retry later.
    #[error("the database is unavailable; try again shortly")]
    Unavailable,
    /// 500: a fault of ours; details are in the server log.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BudgetExhausted(_) => StatusCode::PAYMENT_REQUIRED,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let status = self.status();
        let mut response = (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let Self::TooManyRequests {
            retry_after_secs, ..
        } = &self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            StoreError::Conflict { .. } => Self::Conflict(e.to_string()),
            StoreError::Unavailable(_) => Self::Unavailable,
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Store(s) => s.into(),
            other => Self::Unauthorized(other.to_string()),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::ProjectNotFound(_) => Self::NotFound(e.to_string()),
            SubmitError::Invalid(m) => Self::Unprocessable(m),
            SubmitError::BudgetExhausted(m) => Self::BudgetExhausted(m),
            SubmitError::Store(s) => s.into(),
        }
    }
}

impl From<RetryAfter> for ApiError {
    fn from(e: RetryAfter) -> Self {
        Self::TooManyRequests {
            message: e.to_string(),
            retry_after_secs: e.retry_after_secs(),
        }
    }
}

impl From<ProjectError> for ApiError {
    fn from(e: ProjectError) -> Self {
        match e {
            ProjectError::Invalid(m) => Self::Unprocessable(m),
            ProjectError::Exists(_) => Self::Conflict(e.to_string()),
            ProjectError::Store(s) => s.into(),
        }
    }
}

/// Unknown routes answer 404 with the JSON body too.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}
