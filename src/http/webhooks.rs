//! Webhooks: verify, validate, enqueue, answer `202`.
//!
//! `POST /webhook/execute` takes the same body as `POST /api/v1/executions`
//! with a Bearer API key. Every webhook request is counted in
//! `ccs_webhook_requests_total{endpoint,status}`.

use axum::Json;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use super::executions::ExecuteBody;
use super::extract::{ApiJson, Caller};
use super::{ApiError, State};

pub async fn execute(
    axum::extract::State(state): State,
    caller: Caller,
    ApiJson(body): ApiJson<ExecuteBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    super::executions::submit(&state, &caller, body, "webhook").await
}

/// Counts webhook requests by endpoint and status.
pub async fn count_requests(req: Request, next: Next) -> Response {
    let endpoint = req.uri().path().to_owned();
    let response = next.run(req).await;
    metrics::counter!(
        "ccs_webhook_requests_total",
        "endpoint" => endpoint,
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    response
}
