//! The dashboard: server-rendered HTML under `/ui` (`--ui-prefix`).
//!
//! Pages are [maud] templates: HTML written as Rust macros, so a typo in a
//! tag, an unknown variable or a wrong type fails `cargo build`, every
//! interpolated value is escaped, and a page component is a plain function
//! (askama would add template files read through a derive, and minijinja
//! checks nothing before run time).
//!
//! Who reads and writes what:
//! * every page reads the same [`Store`](crate::store::Store) the JSON API
//!   reads; every action (cancel, retry, workflow control, queue job
//!   actions) calls the JSON API's own function for it, with the signed-in
//!   key as the caller, so permission checks and audit rows are the API's;
//! * sign-in ([`session`]) writes `ui_sessions`; the API stays stateless, so
//!   any replica accepts a session another one issued;
//! * live parts: `ui.js` (embedded in the binary, [`assets`]) opens an
//!   `EventSource` on the execution and workflow event streams (the same
//!   replay the JSON API's SSE endpoints use, authenticated by the session
//!   cookie here) and re-fetches the server-rendered fragment; a refresh
//!   picker reloads list pages. Without JavaScript every page works and
//!   is simply not live.
//!
//! Nothing here holds state between requests; a crash loses nothing.

mod assets;
mod charts;
mod conversation;
mod executions;
mod layout;
mod overview;
mod queues;
mod session;
mod settings_pages;
mod workflows;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::http::AppState;
pub use session::issue_sign_in_link;

/// How the dashboard is mounted and how long a sign-in lasts (part of
/// [`crate::settings::ApiArgs`]).
#[derive(Debug, Clone, clap::Args)]
pub struct UiConfig {
    /// Where the dashboard is mounted (for a reverse proxy that serves it
    /// under another path).
    #[arg(long = "ui-prefix", env = "CCS_UI_PREFIX", default_value = "/ui", value_parser = parse_prefix)]
    pub prefix: String,

    /// How long a dashboard sign-in lasts.
    #[arg(long = "ui-session-ttl", env = "CCS_UI_SESSION_TTL", default_value = "12h", value_parser = humantime::parse_duration)]
    pub session_ttl: std::time::Duration,

    /// Mark the dashboard's session cookie `Secure` (when clients reach the
    /// API over HTTPS).
    #[arg(
        long = "ui-secure-cookie",
        env = "CCS_UI_SECURE_COOKIE",
        default_value_t = false
    )]
    pub secure_cookie: bool,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            prefix: "/ui".into(),
            session_ttl: std::time::Duration::from_secs(12 * 3600),
            secure_cookie: false,
        }
    }
}

/// A path like `/ui` or `/ccs/dashboard`: starts with `/`, is not the root,
/// no trailing `/`, only URL-safe path characters.
fn parse_prefix(s: &str) -> Result<String, String> {
    let ok = s.len() > 1
        && s.starts_with('/')
        && !s.ends_with('/')
        && !s.contains("//")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a dashboard path: use one like /ui or /ccs/ui (no trailing slash)"
        ))
    }
}

/// The dashboard mounted at `prefix` (the overview answers at `prefix` and
/// `prefix/`).
pub fn mount(prefix: &str) -> Router<Arc<AppState>> {
    Router::new()
        .nest(prefix, router())
        .route(&format!("{prefix}/"), get(overview::page))
}

/// The dashboard's routes, below its prefix.
fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(overview::page))
        .route("/login", get(session::login_page).post(session::login))
        .route("/login/{token}", get(session::link))
        .route("/logout", post(session::logout))
        .route("/assets/ui.js", get(assets::script))
        .route("/assets/ui.css", get(assets::style))
        .route("/executions", get(executions::list))
        .route("/executions/{id}", get(executions::page))
        .route(
            "/executions/{id}/conversation",
            get(executions::conversation_fragment),
        )
        .route("/executions/{id}/events", get(executions::events))
        .route("/executions/{id}/cancel", post(executions::cancel))
        .route("/executions/{id}/retry", post(executions::retry))
        .route("/workflows", get(workflows::list))
        .route("/workflows/{id}", get(workflows::page))
        .route("/workflows/{id}/events", get(workflows::events))
        .route("/workflows/{id}/{action}", post(workflows::control))
        .route("/queues", get(queues::page))
        .route("/queues/{queue}/jobs", post(queues::act))
        .route("/projects", get(settings_pages::projects))
        .route("/api-keys", get(settings_pages::api_keys))
        .route("/notifications", get(settings_pages::notifications))
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixes_must_be_paths() {
        assert_eq!(super::parse_prefix("/ccs/ui").unwrap(), "/ccs/ui");
        for bad in ["", "/", "ui", "/ui/", "//x", "/a b", "/<x>"] {
            assert!(super::parse_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
