//! Workflow runs: the list, and one run with its steps (agent, iteration,
//! attempt, cost, output), its routing decisions (the run's events), and
//! approve / reject / pause / resume / cancel through the JSON API's own
//! control function. A running run's page reloads on each new event.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{self, when};
use super::session::{Viewer, check_post};
use crate::http::AppState;
use crate::store::{Permission, run_status};

/// `GET /workflows`.
pub async fn list(State(state): State<Arc<AppState>>, viewer: Viewer) -> Response {
    let (runs, projects) =
        match tokio::try_join!(state.store.workflow_runs(200), state.store.projects()) {
            Ok(v) => v,
            Err(e) => return layout::store_error(e),
        };
    let names: HashMap<i64, &str> = projects.iter().map(|p| (p.id, p.name.as_str())).collect();
    let body = html! {
        table.list #workflows {
            thead { tr { th { "run" } th { "status" } th { "project" } th { "agent" } th.num { "iteration" } th.num { "steps" } th.num { "cost" } th { "created" } } }
            tbody {
                @for r in &runs {
                    tr {
                        td { a href=(viewer.link(&format!("/workflows/{}", r.id))) { (layout::short_id(&r.id)) } }
                        td { (layout::status(&r.status)) }
                        td { (names.get(&r.project_id).copied().unwrap_or("?")) }
                        td { (r.current_agent.as_deref().unwrap_or("—")) }
                        td.num { (r.iteration) }
                        td.num { (r.steps_run) }
                        td.num { (layout::money(Some(r.cost_usd))) }
                        td { (when(Some(r.created_at))) }
                    }
                }
                @if runs.is_empty() { tr { td colspan="8" .muted { "No workflow runs yet." } } }
            }
        }
    };
    layout::page(&viewer, "Workflow runs", "/workflows", true, body).into_response()
}

/// The actions a run in `status` accepts.
fn actions_for(status: &str) -> &'static [&'static str] {
    match status {
        run_status::AWAITING_APPROVAL => &["approve", "reject", "cancel"],
        run_status::RUNNING | run_status::QUEUED => &["pause", "cancel"],
        run_status::PAUSED | run_status::BUDGET_EXCEEDED => &["resume", "cancel"],
        _ => &[],
    }
}

/// `GET /workflows/{id}`.
pub async fn page(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    let store = &state.store;
    let run = match store.workflow(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return layout::message(StatusCode::NOT_FOUND, &format!("workflow {id} not found"));
        }
        Err(e) => return layout::store_error(e),
    };
    let (steps, events, project) = match tokio::try_join!(
        store.workflow_steps(&id),
        store.workflow_events(&id, 0),
        store.project(run.project_id)
    ) {
        Ok(v) => v,
        Err(e) => return layout::store_error(e),
    };
    let live = !run_status::is_terminal(&run.status);
    let base = viewer.link(&format!("/workflows/{}", run.id));
    let context: serde_json::Value = serde_json::from_str(&run.context).unwrap_or_default();
    let mut cost_by_agent: Vec<(&str, f64)> = Vec::new();
    for s in &steps {
        match cost_by_agent.iter_mut().find(|(a, _)| *a == s.agent) {
            Some((_, c)) => *c += s.cost_usd,
            None => cost_by_agent.push((&s.agent, s.cost_usd)),
        }
    }
    let body = html! {
        div.toolbar data-reload-on=[live.then(|| format!("{base}/events"))] {
            (layout::status(&run.status))
            @if viewer.can(Permission::Execute) {
                @for action in actions_for(&run.status) {
                    (layout::action(&viewer, &format!("{base}/{action}"), action,
                        (*action == "cancel" || *action == "reject").then_some("Are you sure?")))
                }
            }
        }
        dl.facts {
            dt { "id" } dd { code { (run.id) } }
            dt { "project" } dd { (project.as_ref().map_or("?", |p| p.name.as_str())) }
            dt { "source" } dd { (run.source) }
            dt { "current agent" } dd { (run.current_agent.as_deref().unwrap_or("—")) }
            dt { "iteration" } dd { (run.iteration) }
            dt { "steps run" } dd { (run.steps_run) }
            dt { "cost" } dd { (layout::money(Some(run.cost_usd))) }
            dt { "created" } dd { (when(Some(run.created_at))) }
            dt { "finished" } dd { (when(run.finished_at)) }
        }
        @if let Some(err) = &run.error { section { h2 { "Error" } pre.error { (err) } } }
        section {
            h2 { "Steps" }
            ol.steps #steps {
                @for s in &steps {
                    li.step {
                        div.step-head {
                            span.agent { (s.agent) }
                            " " (layout::status(&s.status))
                            span.muted { " iteration " (s.iteration) " · attempt " (s.attempt) " · " (layout::money(Some(s.cost_usd))) }
                            " " a href=(viewer.link(&format!("/executions/{}", s.execution_id))) { "execution" }
                        }
                        @if let Some(out) = &s.output { pre.output { (layout::clip(out, 2000)) } }
                    }
                }
                @if steps.is_empty() { li.muted { "No step has started." } }
            }
        }
        section {
            h2 { "Cost per agent" }
            table.list { tbody { @for (agent, cost) in &cost_by_agent { tr { td { (agent) } td.num { (layout::money(Some(*cost))) } } } } }
        }
        section {
            h2 { "Routing and events" }
            table.list #events {
                thead { tr { th.num { "#" } th { "at" } th { "event" } th { "data" } } }
                tbody {
                    @for ev in &events {
                        tr { td.num { (ev.seq) } td { (when(Some(ev.at))) } td { code { (ev.kind) } } td { code { (layout::clip(&ev.data.to_string(), 300)) } } }
                    }
                }
            }
        }
        section { h2 { "Context" } pre { (serde_json::to_string_pretty(&context).unwrap_or_default()) } }
    };
    let title = format!("Workflow run {}", layout::clip(&run.id, 40));
    layout::page(&viewer, &title, "/workflows", false, body).into_response()
}

/// `GET /workflows/{id}/events`: the JSON API's event stream.
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
    match crate::http::events::workflow_stream(&state, &viewer.caller(), id, after).await {
        Ok(sse) => sse.into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `POST /workflows/{id}/{action}`: the JSON API's control.
pub async fn control(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Err(res) = check_post(&viewer, &headers, &form.csrf) {
        return res.into_response();
    }
    match crate::http::workflows::control_as(&state, &viewer.caller(), &id, &action).await {
        Ok(_) => Redirect::to(&viewer.link(&format!("/workflows/{id}"))).into_response(),
        Err(e) => layout::api_error(e),
    }
}
