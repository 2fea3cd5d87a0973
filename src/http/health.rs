//! `/healthz` (the process lives), `/readyz` (the database answers) and
//! `/metrics` (Prometheus text format).

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::store::Store;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(store): State<Store>) -> impl IntoResponse {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

pub async fn metrics(State(store): State<Store>) -> impl IntoResponse {
    crate::telemetry::refresh_queue_depth(&store).await;
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::render(),
    )
}
