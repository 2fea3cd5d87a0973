//! `/healthz` (the process lives), `/readyz` (the database answers) and
//! `/metrics` (Prometheus text format).

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::State;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(axum::extract::State(state): State) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

pub async fn metrics(axum::extract::State(state): State) -> impl IntoResponse {
    crate::telemetry::refresh_queue_depth(&state.store).await;
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::prometheus().render(),
    )
}
