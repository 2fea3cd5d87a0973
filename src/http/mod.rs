//! The API process: webhooks, the JSON API, health and metrics.
//!
//! Handlers are thin: extract and authenticate, call one core function,
//! map the result. Every route is listed in [`router`]. Nothing here runs
//! an agent or keeps state between requests; a `202` means the job is
//! committed to the database.
//!
//! **One builder.** [`app`] builds the production router and its
//! [`AppState`] from the API's settings ([`ApiArgs`]); `ccs serve`, `ccs up`
//! and the tests' `spawn_app` all serve what it returns, through
//! [`Server::bind`]. A worker serves [`health_router`]: the same health and
//! metrics handlers over the store alone.

mod api_keys;
mod budget;
mod error;
pub(crate) mod events;
pub mod executions;
mod extract;
mod github;
mod health;
mod notifications;
mod projects;
pub(crate) mod queues;
mod webhooks;
pub(crate) mod workflows;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use executions::rfc3339;
pub use extract::Caller;

use crate::executions::SubmitLimits;
use crate::limits::rate::RateLimiters;
use crate::settings::ApiArgs;
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
    /// Where the dashboard is mounted and how its sessions behave.
    pub ui: crate::ui::UiConfig,
    /// What project settings registration refuses (the workers' runner).
    pub runner_policy: crate::projects::RunnerPolicy,
}

impl AppState {
    /// The state of an API process configured by `api`.
    pub fn new(store: Store, api: &ApiArgs) -> Self {
        Self {
            store,
            limits: SubmitLimits {
                max_prompt_bytes: api.max_prompt_bytes,
            },
            rate_limits: Arc::new(api.rate_limits.limiters()),
            github_webhook_secret: api.github_webhook_secret.clone(),
            ui: api.ui.clone(),
            runner_policy: api.runner_policy,
        }
    }
}

/// The health handlers need the store alone, in the API and in a worker.
impl FromRef<Arc<AppState>> for Store {
    fn from_ref(state: &Arc<AppState>) -> Store {
        state.store.clone()
    }
}

/// The production API configured by `api`: every route over its state.
pub fn app(store: Store, api: &ApiArgs) -> Router {
    router(AppState::new(store, api), api.max_body_bytes)
}

/// Every route of the API.
fn router(state: AppState, max_body_bytes: usize) -> Router {
    let ui_prefix = state.ui.prefix.clone();
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
        .route("/api/v1/executions/{id}/retry", post(executions::retry))
        .route("/api/v1/executions/{id}/events", get(events::execution))
        .route("/api/v1/workflows", post(workflows::create))
        .route("/api/v1/workflows/{id}", get(workflows::get))
        .route("/api/v1/workflows/{id}/events", get(events::workflow))
        .route("/api/v1/workflows/{id}/{action}", post(workflows::control))
        .route("/api/v1/budget", get(budget::get).put(budget::put))
        .route("/api/v1/projects/{id}/budget", post(budget::set_project))
        .route("/api/v1/notifications", get(notifications::list))
        .route("/api/v1/api-keys", post(api_keys::create))
        .route("/api/v1/queues", get(queues::counts))
        .route("/api/v1/queues/{queue}/jobs", get(queues::jobs))
        .route(
            "/api/v1/queues/{queue}/jobs/{id}/{action}",
            post(queues::job_action),
        );
    Router::new()
        .merge(webhooks)
        .merge(api)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(crate::ui::mount(&ui_prefix))
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(Arc::new(state))
}

/// Health and metrics only: what a worker process serves.
pub fn health_router(store: Store) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(store)
}

/// An HTTP server, bound and serving until its `stop` token fires.
pub struct Server {
    /// The address it listens on (the real port when asked for port 0).
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `addr` and serves `app` until `stop` fires (graceful: running
    /// requests finish). Fails when the address cannot be bound.
    pub async fn bind(
        addr: SocketAddr,
        app: Router,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        });
        Ok(Self { addr, task })
    }

    /// Waits until the server has stopped; an error if it failed.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task
            .await
            .context("the HTTP server panicked")?
            .context("the HTTP server failed")
    }
}

type State = axum::extract::State<Arc<AppState>>;
