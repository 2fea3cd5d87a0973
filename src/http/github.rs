//! `POST /webhook/github`: a GitHub webhook delivery. Authenticated by its
//! `X-Hub-Signature-256`, not by an API key. The core is
//! [`crate::github::ingest`]; this maps its answer to HTTP.
//!
//! | answer | when |
//! |---|---|
//! | `202 {"deliveryId", "status": "queued"}` | recorded, its job enqueued |
//! | `202 {"deliveryId", "status": "ignored", "reason"}` | an event ccs does not act on, recorded |
//! | `200 {"deliveryId", "status": "duplicate"}` | a redelivery: nothing written |
//! | `400` / `401` / `404` / `413` / `415` / `429` | see [`IngestError`] |

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::{ApiError, State};
use crate::github::ingest::{self, IngestError, Ingested};

pub async fn webhook(
    axum::extract::State(state): State,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })?;
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let request = ingest::Request {
        signature: h("x-hub-signature-256"),
        event: h("x-github-event"),
        delivery_id: h("x-github-delivery"),
        content_type: h(header::CONTENT_TYPE.as_str()),
        body: &body,
    };
    let ingested = ingest::ingest(
        &state.store,
        state.github_webhook_secret.as_ref(),
        &state.rate_limits,
        request,
    )
    .await?;
    metrics::counter!("ccs_github_deliveries_total", "outcome" => ingested.as_str()).increment(1);
    Ok(match ingested {
        Ingested::Queued { delivery_id } => (
            StatusCode::ACCEPTED,
            Json(json!({ "deliveryId": delivery_id, "status": "queued" })),
        ),
        Ingested::Ignored {
            delivery_id,
            reason,
        } => (
            StatusCode::ACCEPTED,
            Json(json!({ "deliveryId": delivery_id, "status": "ignored", "reason": reason })),
        ),
        Ingested::Duplicate { delivery_id } => (
            StatusCode::OK,
            Json(json!({ "deliveryId": delivery_id, "status": "duplicate" })),
        ),
    })
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::NotConfigured => Self::NotFound(e.to_string()),
            IngestError::Signature(s) => Self::Unauthorized(s.to_string()),
            IngestError::BadRequest(m) => Self::BadRequest(m),
            IngestError::NotJson => Self::UnsupportedMediaType(e.to_string()),
            IngestError::RateLimited(r) => r.into(),
            IngestError::Store(s) => s.into(),
        }
    }
}
