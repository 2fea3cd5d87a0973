//! The API process: webhooks, the JSON API, health and metrics.
//!
//! Handlers are thin: extract and authenticate, call one core function,
//! map the result. Every route is listed in [`router`]. Nothing here runs
//! an agent or keeps state between requests; a `202` means the job is
//! committed to the database.

mod api_keys;
mod budget;
mod error;
mod events;
mod executions;
mod extract;
mod github;
mod health;
mod notifications;
mod projects;
mod queues;
mod webhooks;
mod workflows;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use error::ApiError;

use crate::executions::SubmitLimits;
use crate::limits::rate::RateLimiters;
use crate::store::Store;

/// The API's state, shared by every request.
#[derive(Clone)]
pub struct AppState {
    /// The service's tables (and the queue, through them).
    pub store: Store,
    /// Limits on what a submission may contain.
    pub limits: SubmitLimits,
    /// Ingestion rate limits, counted in this process's memory.
    pub rate_limits: Arc<RateLimiters>,
    /// The secret GitHub signs deliveries with; `None`: `POST
    /// /webhook/github` answers 404.
    pub github_webhook_secret: Option<crate::github::WebhookSecret>,
}

/// Every route of the API.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let webhooks = Router::new()
        .route("/webhook/execute", post(webhooks::execute))
        .route("/webhook/github", post(github::webhook))
        .layer(axum::middleware::from_fn(webhooks::count_requests));
    let api = Router::new()
        .route(
            "/api/v1/projects",
            post(projects::create).get(projects::list),
        )
        .route("/api/v1/projects/{id}", get(projects::get))
        .route(
            "/api/v1/executions",
            post(executions::create).get(executions::list),
        )
        .route("/api/v1/executions/{id}", get(executions::get))
        .route("/api/v1/executions/{id}/logs", get(executions::logs))
        .route("/api/v1/executions/{id}/cancel", post(executions::cancel))
        .route("/api/v1/executions/{id}/events", get(events::execution))
        .route("/api/v1/workflows", post(workflows::create))
        .route("/api/v1/workflows/{id}", get(workflows::get))
        .route("/api/v1/workflows/{id}/events", get(events::workflow))
        .route("/api/v1/workflows/{id}/{action}", post(workflows::control))
        .route("/api/v1/budget", get(budget::get).put(budget::put))
        .route("/api/v1/projects/{id}/budget", post(budget::set_project))
        .route("/api/v1/notifications", get(notifications::list))
        .route("/api/v1/api-keys", post(api_keys::create))
        .route("/api/v1/queues", get(queues::counts));
    Router::new()
        .merge(webhooks)
        .merge(api)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(Arc::new(state))
}

/// Health and metrics only: what a worker process serves.
pub fn health_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(Arc::new(state))
}

type State = axum::extract::State<Arc<AppState>>;
