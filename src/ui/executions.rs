//! The executions list (filters as GET parameters, counts per state, a
//! cursor for the next page) and one execution's page (prompt, the
//! conversation, live while it runs, outcome, validation report, changed
//! files; cancel and retry).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::conversation::{self, Item};
use super::layout::{self, when};
use super::session::{Viewer, check_post};
use crate::http::AppState;
use crate::store::ui::{Cursor, ExecutionFilter};
use crate::store::{Execution, ExecutionStatus, Permission};

/// Rows per page of the list.
pub const PAGE: i64 = 50;

/// Log lines read for one conversation.
const MAX_LINES: i64 = 10_000;

/// The list's query string; every field optional, empty means unset.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    status: Option<String>,
    project: Option<String>,
    source: Option<String>,
    /// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM` (UTC).
    from: Option<String>,
    to: Option<String>,
    /// Text in the prompt.
    q: Option<String>,
    /// The cursor: `<created_at>_<id>` of the last row of the previous page.
    before: Option<String>,
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Epoch ms of a `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS]` (UTC).
fn parse_time(s: &str) -> Option<i64> {
    use chrono::NaiveDateTime;
    let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        })
        .ok()?;
    Some(t.and_utc().timestamp_millis())
}

impl ListParams {
    /// The store's filter, or what is wrong with the parameters.
    fn filter(&self) -> Result<(ExecutionFilter, Option<Cursor>), String> {
        let status = match set(&self.status) {
            None => None,
            Some(s) => Some(
                ExecutionStatus::parse(s)
                    .ok_or_else(|| format!("unknown status {s:?}"))?
                    .as_str()
                    .to_owned(),
            ),
        };
        let project_id = match set(&self.project) {
            None => None,
            Some(p) => Some(
                p.parse::<i64>()
                    .map_err(|_| format!("project must be a project id, not {p:?}"))?,
            ),
        };
        let time = |v: &Option<String>, name: &str| match set(v) {
            None => Ok(None),
            Some(t) => parse_time(t)
                .map(Some)
                .ok_or_else(|| format!("{name} must be YYYY-MM-DD or YYYY-MM-DDTHH:MM, not {t:?}")),
        };
        let before = match set(&self.before) {
            None => None,
            Some(c) => Some(Cursor::parse(c).ok_or_else(|| format!("bad page cursor {c:?}"))?),
        };
        let q = set(&self.q).map(|q| q.chars().take(200).collect::<String>());
        Ok((
            ExecutionFilter {
                status,
                project_id,
                source: set(&self.source).map(str::to_owned),
                from_ms: time(&self.from, "from")?,
                to_ms: time(&self.to, "to")?,
                prompt: q,
            },
            before,
        ))
    }

    /// The query string of these filters with `status` replaced (for the
    /// count links) and without the cursor.
    fn with_status(&self, status: Option<&str>) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = status {
            pairs.push(("status", s));
        }
        for (name, value) in [
            ("project", &self.project),
            ("source", &self.source),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
        ] {
            if let Some(v) = set(value) {
                pairs.push((name, v));
            }
        }
        query_string(&pairs)
    }
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        for b in v.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    s.push(b as char)
                }
                _ => s.push_str(&format!("%{b:02X}")),
            }
        }
    }
    s
}

/// `GET /executions`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(params): Query<ListParams>,
) -> Response {
    let (filter, before) = match params.filter() {
        Ok(f) => f,
        Err(e) => return layout::message(StatusCode::BAD_REQUEST, &e),
    };
    let store = &state.store;
    let rows = match store
        .execution_page(&filter, before.as_ref(), PAGE + 1)
        .await
    {
        Ok(rows) => rows,
        Err(e) => return layout::store_error(e),
    };
    let (counts, projects, sources) = match tokio::try_join!(
        store.execution_page_counts(&filter),
        store.projects(),
        store.execution_sources()
    ) {
        Ok(v) => v,
        Err(e) => return layout::store_error(e),
    };
    let has_more = rows.len() as i64 > PAGE;
    let rows = &rows[..rows.len().min(PAGE as usize)];
    let next = has_more.then(|| rows.last()).flatten().map(|e| Cursor {
        created_at: e.created_at,
        id: e.id.clone(),
    });
    let names: HashMap<i64, String> = projects.iter().map(|p| (p.id, p.name.clone())).collect();
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let count_of = |s: &str| counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
    let base = viewer.link("/executions");
    let body = html! {
        form.filters method="get" action=(base) {
            label { "status "
                select name="status" {
                    option value="" { "any" }
                    @for s in ExecutionStatus::ALL {
                        option value=(s.as_str()) selected[filter.status.as_deref() == Some(s.as_str())] { (s.as_str()) }
                    }
                }
            }
            label { "project "
                select name="project" {
                    option value="" { "any" }
                    @for p in &projects {
                        option value=(p.id) selected[filter.project_id == Some(p.id)] { (p.name) }
                    }
                }
            }
            label { "source "
                select name="source" {
                    option value="" { "any" }
                    @for s in &sources {
                        option value=(s) selected[filter.source.as_deref() == Some(s.as_str())] { (s) }
                    }
                }
            }
            label { "from " input type="datetime-local" name="from" value=[set(&params.from)]; }
            label { "to " input type="datetime-local" name="to" value=[set(&params.to)]; }
            label { "prompt " input type="search" name="q" value=[set(&params.q)] placeholder="text in the prompt"; }
            button type="submit" { "filter" }
            a href=(base) { "clear" }
        }
        nav.counts aria-label="counts per state" {
            a href={ (base) (params.with_status(None)) } class=[filter.status.is_none().then_some("active")] {
                "all " span.n { (total) }
            }
            @for s in ExecutionStatus::ALL {
                a href={ (base) (params.with_status(Some(s.as_str()))) }
                  class=[(filter.status.as_deref() == Some(s.as_str())).then_some("active")] {
                    (layout::status(s.as_str())) " " span.n { (count_of(s.as_str())) }
                }
            }
        }
        table.list #executions {
            thead { tr { th { "id" } th { "status" } th { "project" } th { "source" } th { "prompt" } th { "created" } th { "duration" } th.num { "cost" } } }
            tbody {
                @for e in rows {
                    tr {
                        td { a href=(viewer.link(&format!("/executions/{}", e.id))) { (layout::short_id(&e.id)) } }
                        td { (layout::status(e.status.as_str())) }
                        td { (names.get(&e.project_id).map_or("?", String::as_str)) }
                        td { (e.source) }
                        td.prompt { (layout::clip(&e.prompt, 100)) }
                        td { (when(Some(e.created_at))) }
                        td { (e.duration_ms.map(layout::duration).unwrap_or_default()) }
                        td.num { (layout::money(e.cost_usd)) }
                    }
                }
                @if rows.is_empty() { tr { td colspan="8" .muted { "No executions match." } } }
            }
        }
        nav.pager {
            @if before.is_some() { a href={ (base) (params.with_status(filter.status.as_deref())) } { "« newest" } }
            @if let Some(next) = next {
                @let q = params.with_status(filter.status.as_deref());
                a rel="next" href={ (base) (q) (if q.is_empty() { "?" } else { "&" }) "before=" (next.encode()) } { "older »" }
            }
        }
    };
    layout::page(&viewer, "Executions", "/executions", true, body).into_response()
}

/// The conversation, as a fragment (also what the live page re-fetches).
fn conversation_markup(items: &[Item]) -> Markup {
    html! {
        @for item in items {
            @match item {
                Item::Start { model, tools } => div.turn.note { "session started · " (model) " · " (tools) " tools" },
                Item::Text(text) => div.turn.assistant { div.who { "assistant" } pre.text { (text) } },
                Item::Tool { name, input, result, .. } => div.turn.tool {
                    details open[result.is_none()] {
                        summary {
                            span.tool-name { (name) }
                            @match result {
                                None => span.pending { " running…" },
                                Some(r) if r.is_error => span.status.s-failed { "error" },
                                Some(_) => span.status.s-succeeded { "ok" },
                            }
                        }
                        div.label { "input" } pre { (input) }
                        @if let Some(r) = result { div.label { "result" } pre class=[r.is_error.then_some("error")] { (r.text) } }
                    }
                },
                Item::Usage { input_tokens, output_tokens, cost_usd } => div.turn.usage {
                    (input_tokens) " tokens in · " (output_tokens) " out · ≈" (layout::money(Some(*cost_usd)))
                },
                Item::Result { subtype, is_error, text, cost_usd, turns } => div.turn.result class=[is_error.then_some("error")] {
                    div.who { "result · " (subtype) @if let Some(t) = turns { " · " (t) " turns" } " · " (layout::money(*cost_usd)) }
                    @if let Some(text) = text { pre.text { (text) } }
                },
                Item::Note { kind, text } => div.turn.note { span.kind { (kind) } " " (text) },
            }
        }
        @if items.is_empty() { p.muted { "Nothing yet." } }
    }
}

async fn load(state: &AppState, id: &str) -> Result<Execution, Response> {
    match state.store.execution(id).await {
        Ok(Some(e)) => Ok(e),
        Ok(None) => Err(layout::message(
            StatusCode::NOT_FOUND,
            &format!("execution {id} not found"),
        )),
        Err(e) => Err(layout::store_error(e)),
    }
}

/// `GET /executions/{id}/conversation`: the fragment.
pub async fn conversation_fragment(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    if !viewer.can(Permission::Read) {
        return layout::api_error(crate::http::ApiError::Forbidden("read"));
    }
    let execution = match load(&state, &id).await {
        Ok(e) => e,
        Err(res) => return res,
    };
    match state.store.logs(&id, 0, MAX_LINES).await {
        Ok(lines) => {
            let items = conversation::build(&lines);
            let mut res = conversation_markup(&items).into_response();
            res.headers_mut().insert(
                "x-execution-status",
                axum::http::HeaderValue::from_static(execution.status.as_str()),
            );
            res
        }
        Err(e) => layout::store_error(e),
    }
}

/// `GET /executions/{id}/events`: the JSON API's log stream, for the
/// session's key.
pub async fn events(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<crate::http::events::After>,
    headers: HeaderMap,
) -> Response {
    let after = match crate::http::events::start_seq(&headers, &q) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    match crate::http::events::execution_stream(&state, &viewer.caller(), id, after).await {
        Ok(sse) => sse.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /executions/{id}`.
pub async fn page(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    let e = match load(&state, &id).await {
        Ok(e) => e,
        Err(res) => return res,
    };
    let (lines, project) = match tokio::try_join!(
        state.store.logs(&id, 0, MAX_LINES),
        state.store.project(e.project_id)
    ) {
        Ok(v) => v,
        Err(err) => return layout::store_error(err),
    };
    let items = conversation::build(&lines);
    let changed: Vec<&str> = lines
        .iter()
        .filter(|l| l.kind == "ccs")
        .filter_map(|l| l.text.strip_prefix("changed files: "))
        .flat_map(|list| list.split(", "))
        .collect();
    let live = !e.status.is_terminal();
    let can_act = viewer.can(Permission::Execute);
    let base = viewer.link(&format!("/executions/{}", e.id));
    let body = html! {
        div.toolbar {
            (layout::status(e.status.as_str()))
            @if e.cancel_requested && live { span.muted { " cancel requested" } }
            @if can_act {
                @if live { (layout::action(&viewer, &format!("{base}/cancel"), "cancel", Some("Cancel this execution?"))) }
                @if !live && e.workflow_id.is_none() { (layout::action(&viewer, &format!("{base}/retry"), "retry", None)) }
            }
        }
        dl.facts {
            dt { "id" } dd { code { (e.id) } }
            dt { "project" } dd { (project.as_ref().map_or("?", |p| p.name.as_str())) }
            dt { "source" } dd { (e.source) }
            @if let Some(w) = &e.workflow_id { dt { "workflow run" } dd { a href=(viewer.link(&format!("/workflows/{w}"))) { (layout::short_id(w)) } } }
            @if let Some(b) = &e.base_execution_id { dt { "started from" } dd { a href=(viewer.link(&format!("/executions/{b}"))) { (layout::short_id(b)) } } }
            dt { "created" } dd { (when(Some(e.created_at))) }
            dt { "started" } dd { (when(e.started_at)) }
            dt { "finished" } dd { (when(e.finished_at)) }
            @if let (Some(s), true) = (e.started_at, true) { dt { "waited" } dd { (layout::duration(s - e.created_at)) } }
            dt { "duration" } dd { (e.duration_ms.map(layout::duration).unwrap_or_else(|| "—".into())) }
            dt { "cost" } dd { (layout::money(e.cost_usd)) @if e.cost_estimated { " (estimated)" } }
            dt { "turns" } dd { (e.num_turns.map(|n| n.to_string()).unwrap_or_else(|| "—".into())) }
            dt { "attempts" } dd { (e.attempts) }
            dt { "worker" } dd { (e.worker_id.as_deref().unwrap_or("—")) }
            @if let Some(t) = e.timeout_ms { dt { "timeout" } dd { (layout::duration(t)) } }
            @if let Some(s) = &e.session_id { dt { "session" } dd { code { (s) } } }
            @if let Some(c) = e.exit_code { dt { "exit code" } dd { (c) } }
        }
        @if let Some(err) = &e.error { section { h2 { "Error" } pre.error { (err) } } }
        section { h2 { "Prompt" } pre.text { (e.prompt) } }
        section {
            h2 { "Conversation" @if live { " " span.live-dot title="live" {} } }
            div #conversation
                data-fragment=[live.then(|| format!("{base}/conversation"))]
                data-events=[live.then(|| format!("{base}/events"))] {
                (conversation_markup(&items))
            }
        }
        @if let Some(result) = &e.result { section { h2 { "Result" } pre.text { (result) } } }
        @if !changed.is_empty() {
            section { h2 { "Changed files" } ul.files { @for f in &changed { li { code { (f) } } } } }
        }
        @if let Some(v) = &e.validation {
            section { h2 { "Validation report" } pre { (serde_json::to_string_pretty(v).unwrap_or_default()) } }
        }
    };
    let title = format!("Execution {}", layout::clip(&e.id, 40));
    layout::page(&viewer, &title, "/executions", false, body).into_response()
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `POST /executions/{id}/cancel`: the JSON API's cancel.
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Err(res) = check_post(&viewer, &headers, &form.csrf) {
        return res.into_response();
    }
    match crate::http::executions::cancel_as(&state, &viewer.caller(), &id).await {
        Ok(_) => Redirect::to(&viewer.link(&format!("/executions/{id}"))).into_response(),
        Err(e) => layout::api_error(e),
    }
}

/// `POST /executions/{id}/retry`: the JSON API's retry; shows the new one.
pub async fn retry(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Err(res) = check_post(&viewer, &headers, &form.csrf) {
        return res.into_response();
    }
    match crate::http::executions::retry_as(&state, &viewer.caller(), &id).await {
        Ok(new) => Redirect::to(&viewer.link(&format!("/executions/{}", new.id))).into_response(),
        Err(e) => layout::api_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_name_what_is_wrong() {
        let p = ListParams {
            status: Some("failed".into()),
            project: Some("2".into()),
            from: Some("2026-11-29".into()),
            to: Some("2026-11-29T19:30".into()),
            q: Some(" fix ".into()),
            ..Default::default()
        };
        let (f, before) = p.filter().unwrap();
        assert_eq!(f.status.as_deref(), Some("failed"));
        assert_eq!(f.project_id, Some(2));
        assert_eq!(f.prompt.as_deref(), Some("fix"));
        assert_eq!(
            f.to_ms.unwrap() - f.from_ms.unwrap(),
            (19 * 60 + 30) * 60_000
        );
        assert!(before.is_none());
        let bad = ListParams {
            status: Some("exploded".into()),
            ..Default::default()
        };
        assert!(bad.filter().unwrap_err().contains("exploded"));
        let empty = ListParams {
            status: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(empty.filter().unwrap().0, ExecutionFilter::default());
    }

    #[test]
    fn status_links_keep_the_other_filters() {
        let p = ListParams {
            status: Some("failed".into()),
            q: Some("a b&c".into()),
            before: Some("1_x".into()),
            ..Default::default()
        };
        assert_eq!(
            p.with_status(Some("running")),
            "?status=running&q=a%20b%26c"
        );
        assert_eq!(p.with_status(None), "?q=a%20b%26c");
    }
}
