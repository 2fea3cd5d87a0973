//! Projects (as registered, with their budget limits), API keys (admin:
//! names, permissions, use; never a secret) and notifications.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::layout::{self, when};
use super::session::Viewer;
use crate::http::{ApiError, AppState};
use crate::store::Permission;

/// `GET /projects`.
pub async fn projects(State(state): State<Arc<AppState>>, viewer: Viewer) -> Response {
    let (projects, overrides) =
        match tokio::try_join!(state.store.projects(), state.store.budget_overrides()) {
            Ok(v) => v,
            Err(e) => return layout::store_error(e),
        };
    let body = html! {
        @for p in &projects {
            section.project id={ "project-" (p.id) } {
                h2 { (p.name) " " span.muted { "#" (p.id) } }
                @if let Some(d) = &p.description { p { (d) } }
                dl.facts {
                    dt { "path" } dd { code { (p.path) } }
                    dt { "registered" } dd { (when(Some(p.created_at))) }
                    dt { "executions" } dd { a href={ (viewer.link("/executions")) "?project=" (p.id) } { "list" } }
                    @for o in overrides.iter().filter(|o| o.scope == format!("project:{}", p.id)) {
                        dt { "daily limit" } dd { (layout::money(o.daily_limit_usd)) }
                        dt { "per execution" } dd { (layout::money(o.per_execution_usd)) }
                    }
                }
                @if let Some(yaml) = &p.container_yaml { details { summary { "container.yaml" } pre { (yaml) } } }
                @if let Some(yaml) = &p.workflow_yaml { details { summary { "workflow.yaml" } pre { (yaml) } } }
            }
        }
        @if projects.is_empty() { p.muted { "No project is registered: " code { "ccs project add --name NAME --path DIR" } } }
    };
    layout::page(&viewer, "Projects", "/projects", false, body).into_response()
}

/// `GET /api-keys` (admin).
pub async fn api_keys(State(state): State<Arc<AppState>>, viewer: Viewer) -> Response {
    if !viewer.can(Permission::Admin) {
        return layout::api_error(ApiError::Forbidden("admin"));
    }
    let keys = match state.store.api_keys_for_ui().await {
        Ok(k) => k,
        Err(e) => return layout::store_error(e),
    };
    let body = html! {
        table.list #api-keys {
            thead { tr { th { "name" } th { "key" } th { "permissions" } th { "created" } th { "expires" } th { "last used" } th.num { "uses" } th { "state" } } }
            tbody {
                @for k in &keys {
                    tr {
                        td { (k.name) }
                        td { code { (k.key_prefix) "…" } }
                        td { (k.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")) }
                        td { (when(Some(k.created_at))) }
                        td { (k.expires_at.map(layout::time).unwrap_or_else(|| "never".into())) }
                        td { (when(k.last_used_at)) }
                        td.num { (k.use_count) }
                        td {
                            @if k.revoked_at.is_some() { (layout::status("revoked")) }
                            @else if crate::auth::check_record(k).is_err() { (layout::status("expired")) }
                            @else { (layout::status("active")) }
                        }
                    }
                }
            }
        }
        p.muted { "Create keys with " code { "ccs api-key create" } " or " code { "POST /api/v1/api-keys" } "." }
    };
    layout::page(&viewer, "API keys", "/api-keys", false, body).into_response()
}

/// `GET /notifications`.
pub async fn notifications(State(state): State<Arc<AppState>>, viewer: Viewer) -> Response {
    let list = match state.store.notifications(200).await {
        Ok(l) => l,
        Err(e) => return layout::store_error(e),
    };
    let body = html! {
        table.list #notifications {
            thead { tr { th { "at" } th { "kind" } th { "project" } th { "title" } th { "message" } } }
            tbody {
                @for n in &list {
                    tr {
                        td { (when(Some(n.created_at))) }
                        td { code { (n.kind) } }
                        td { (n.project_id.map(|p| p.to_string()).unwrap_or_else(|| "—".into())) }
                        td { (n.title) }
                        td { (layout::clip(&n.body, 300)) }
                    }
                }
                @if list.is_empty() { tr { td colspan="5" .muted { "No notifications." } } }
            }
        }
    };
    layout::page(&viewer, "Notifications", "/notifications", true, body).into_response()
}
