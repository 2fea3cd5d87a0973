//! The queues page: one apalis queue's jobs in one state, with their
//! arguments, attempts, last result, `run_at` and the worker holding them;
//! retry, kill or delete the selected jobs or all that match, each through
//! the JSON API's own job action (admin).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{self, when};
use super::session::{Viewer, check_post};
use crate::http::AppState;
use crate::http::queues::JOB_STATES;
use crate::store::Permission;

/// Most jobs shown, and most an "all matching" action touches at once.
const MAX_JOBS: i64 = 500;

#[derive(Debug, Deserialize)]
pub struct PageParams {
    queue: Option<String>,
    status: Option<String>,
    done: Option<u32>,
    refused: Option<u32>,
}

/// `GET /queues?queue=…&status=…`.
pub async fn page(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(p): Query<PageParams>,
) -> Response {
    let queues = crate::jobs::queues();
    let queue = match p.queue.as_deref() {
        None => queues[0],
        Some(q) => match crate::http::queues::known_queue(q) {
            Ok(q) => q,
            Err(e) => return layout::api_error(e),
        },
    };
    let status = p.status.as_deref().unwrap_or("Pending");
    let Some(status) = JOB_STATES.iter().copied().find(|s| *s == status) else {
        return layout::message(
            StatusCode::BAD_REQUEST,
            &format!("unknown job status {status:?}"),
        );
    };
    let (jobs, counts) = match tokio::try_join!(
        state.store.jobs(queue, status, MAX_JOBS),
        state.store.queue_counts()
    ) {
        Ok(v) => v,
        Err(e) => return layout::store_error(e),
    };
    let count = |q: &str, s: &str| {
        counts
            .iter()
            .find(|(cq, cs, _)| cq == q && cs == s)
            .map_or(0, |(_, _, n)| *n)
    };
    let base = viewer.link("/queues");
    let admin = viewer.can(Permission::Admin);
    let action_url = viewer.link(&format!("/queues/{queue}/jobs"));
    let body = html! {
        @if let (Some(done), Some(refused)) = (p.done, p.refused) {
            p.notice role="status" { (done) " job(s) changed" @if refused > 0 { ", " (refused) " refused (their state did not allow it)" } "." }
        }
        nav.tabs aria-label="queues" {
            @for q in &queues {
                a href={ (base) "?queue=" (q) "&status=" (status) } class=[(*q == queue).then_some("active")] { code { (q) } }
            }
        }
        nav.counts aria-label="states" {
            @for s in JOB_STATES {
                a href={ (base) "?queue=" (queue) "&status=" (s) } class=[(*s == status).then_some("active")] {
                    (s) " " span.n { (count(queue, s)) }
                }
            }
        }
        form #jobs-form method="post" action=(action_url) {
            (layout::csrf(&viewer))
            input type="hidden" name="status" value=(status);
            @if admin && !jobs.is_empty() {
                div.toolbar {
                    span.muted { "selected: " }
                    button type="submit" name="action" value="retry" { "retry" }
                    button type="submit" name="action" value="kill" { "kill" }
                    button type="submit" name="action" value="delete" data-confirm="Delete the selected jobs?" { "delete" }
                    span.muted { " · all " (jobs.len()) " " (status) ": " }
                    button type="submit" name="action" value="retry-all" data-confirm={ "Retry all " (jobs.len()) " " (status) " jobs?" } { "retry all" }
                    button type="submit" name="action" value="kill-all" data-confirm={ "Kill all " (jobs.len()) " " (status) " jobs?" } { "kill all" }
                    button type="submit" name="action" value="delete-all" data-confirm={ "Delete all " (jobs.len()) " " (status) " jobs?" } { "delete all" }
                }
            }
            table.list #jobs {
                thead { tr {
                    @if admin { th { "" } }
                    th { "job" } th { "arguments" } th.num { "attempts" } th { "run at" } th { "worker" } th { "done" } th { "last result" }
                } }
                tbody {
                    @for j in &jobs {
                        tr data-job=(j.id) {
                            @if admin { td { input type="checkbox" name="id" value=(j.id) aria-label={ "select " (j.id) }; } }
                            td { code { (j.id) } }
                            td { code.args { (layout::clip(&j.args, 200)) } }
                            td.num { (j.attempts) "/" (j.max_attempts) }
                            td { (when(j.run_at_ms)) }
                            td { code { (j.lock_by.as_deref().unwrap_or("—")) } }
                            td { (when(j.done_at_ms)) }
                            td { code { (layout::clip(j.last_result.as_deref().unwrap_or(""), 200)) } }
                        }
                    }
                    @if jobs.is_empty() { tr { td colspan="8" .muted { "No " (status) " jobs in this queue." } } }
                }
            }
        }
    };
    layout::page(&viewer, "Queues", "/queues", true, body).into_response()
}

/// `POST /queues/{queue}/jobs`: `action` = retry|kill|delete (the `id`s
/// selected) or retry-all|kill-all|delete-all (every job of `status`).
pub async fn act(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(queue): Path<String>,
    body: Bytes,
) -> Response {
    let fields: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Err(res) = check_post(&viewer, &headers, field("csrf").unwrap_or_default()) {
        return res.into_response();
    }
    let action = field("action").unwrap_or_default();
    let status = field("status").unwrap_or("Pending");
    let Some(status) = JOB_STATES.iter().copied().find(|s| *s == status) else {
        return layout::message(StatusCode::BAD_REQUEST, "unknown job status");
    };
    let (verb, all) = match action.strip_suffix("-all") {
        Some(verb) => (verb, true),
        None => (action, false),
    };
    let ids: Vec<String> = if all {
        match state.store.jobs(&queue, status, MAX_JOBS).await {
            Ok(jobs) => jobs.into_iter().map(|j| j.id).collect(),
            Err(e) => return layout::store_error(e),
        }
    } else {
        fields
            .iter()
            .filter(|(k, _)| k == "id")
            .map(|(_, v)| v.clone())
            .collect()
    };
    if ids.is_empty() {
        return layout::message(StatusCode::BAD_REQUEST, "Select at least one job.");
    }
    let caller = viewer.caller();
    let (mut done, mut refused) = (0u32, 0u32);
    for id in &ids {
        match crate::http::queues::job_action_as(&state, &caller, &queue, id, verb).await {
            Ok(()) => done += 1,
            Err(crate::http::ApiError::Conflict(_)) => refused += 1,
            Err(e) => return layout::api_error(e),
        }
    }
    let back = format!(
        "{}?queue={queue}&status={status}&done={done}&refused={refused}",
        viewer.link("/queues")
    );
    Redirect::to(&back).into_response()
}
