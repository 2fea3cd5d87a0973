//! The overview: jobs per queue and state, throughput and enqueue→start
//! latency over the last hour (SVG), workers and what each runs, today's
//! spend against each budget, and the last failures.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::layout::{self, when};
use super::session::Viewer;
use crate::http::AppState;
use crate::http::queues::JOB_STATES;
use crate::store::now_ms;

/// Minutes the charts cover.
const WINDOW_MINUTES: i64 = 60;

/// `GET /` (below the prefix).
pub async fn page(State(state): State<Arc<AppState>>, viewer: Viewer) -> Response {
    let store = &state.store;
    let now = now_ms();
    let since = (now / 60_000 - WINDOW_MINUTES + 1) * 60_000;
    let loaded = tokio::try_join!(
        store.queue_counts(),
        store.finished_per_minute(since),
        store.start_latency_per_minute(since),
        store.workers(),
        store.running_executions(),
        crate::limits::budget::report(store),
        store.last_failures(10),
    );
    let (counts, finished, latency, workers, running, budget, failures) = match loaded {
        Ok(v) => v,
        Err(e) => return layout::store_error(e),
    };
    let mut queues: BTreeMap<String, HashMap<String, i64>> = BTreeMap::new();
    for q in crate::jobs::queues() {
        queues.entry(q.to_owned()).or_default();
    }
    for (queue, status, n) in counts {
        queues.entry(queue).or_default().insert(status, n);
    }
    let mut by_worker: HashMap<&str, Vec<&crate::store::Execution>> = HashMap::new();
    for e in &running {
        by_worker
            .entry(e.worker_id.as_deref().unwrap_or(""))
            .or_default()
            .push(e);
    }
    let last_minute = now / 60_000;
    let throughput = super::charts::per_minute(
        &finished,
        last_minute,
        WINDOW_MINUTES,
        "executions finished per minute, last hour",
        false,
        |n| n.to_string(),
    );
    let latency_chart = super::charts::per_minute(
        &latency,
        last_minute,
        WINDOW_MINUTES,
        "enqueue to start latency per minute (bar: mean, tick: worst), last hour",
        true,
        |ms| {
            if ms >= 1000 {
                format!("{:.1}s", ms as f64 / 1000.0)
            } else {
                format!("{ms}ms")
            }
        },
    );
    let body = html! {
        section {
            h2 { "Queues" }
            table.list #queues {
                thead { tr { th { "queue" } @for s in JOB_STATES { th.num { (s) } } } }
                tbody {
                    @for (queue, states) in &queues {
                        tr {
                            td { a href={ (viewer.link("/queues")) "?queue=" (queue) } { code { (queue) } } }
                            @for s in JOB_STATES {
                                td.num { a href={ (viewer.link("/queues")) "?queue=" (queue) "&status=" (s) } { (states.get(*s).copied().unwrap_or(0)) } }
                            }
                        }
                    }
                }
            }
        }
        div.charts {
            figure { figcaption { "Finished per minute" } (layout::svg(throughput)) }
            figure { figcaption { "Enqueue → start (mean, worst)" } (layout::svg(latency_chart)) }
        }
        section {
            h2 { "Workers" }
            table.list #workers {
                thead { tr { th { "worker" } th { "queue" } th { "started" } th { "last heartbeat" } th { "running" } } }
                tbody {
                    @for w in &workers {
                        tr {
                            td { code { (w.id) } }
                            td { code { (w.worker_type) } }
                            td { (when(w.started_ms)) }
                            td { (when(w.last_seen_ms)) }
                            td {
                                @for e in by_worker.get(w.id.as_str()).map(Vec::as_slice).unwrap_or_default() {
                                    a href=(viewer.link(&format!("/executions/{}", e.id))) { (layout::clip(&e.prompt, 40)) } " "
                                }
                            }
                        }
                    }
                    @if workers.is_empty() { tr { td colspan="5" .muted { "No worker has registered." } } }
                }
            }
            @if !running.is_empty() {
                p.muted { (running.len()) " running now." }
            }
        }
        section {
            h2 { "Spend today (" (budget.day) ", UTC)" }
            table.list #budgets {
                thead { tr { th { "scope" } th.num { "spent" } th.num { "reserved" } th.num { "limit" } th { "" } } }
                tbody {
                    @for row in &budget.rows {
                        tr {
                            td { code { (row.scope) } }
                            td.num { (layout::money(Some(row.spent_usd))) }
                            td.num { (layout::money(Some(row.reserved_usd))) }
                            td.num { (layout::money(row.limit_usd)) }
                            td {
                                @if let Some(limit) = row.limit_usd.filter(|l| *l > 0.0) {
                                    meter min="0" max=(limit) value=(row.spent_usd + row.reserved_usd) {}
                                }
                            }
                        }
                    }
                    @if budget.rows.is_empty() { tr { td colspan="5" .muted { "Nothing spent or reserved today." } } }
                }
            }
        }
        section {
            h2 { "Last failures" }
            table.list #failures {
                thead { tr { th { "id" } th { "status" } th { "finished" } th { "error" } } }
                tbody {
                    @for e in &failures {
                        tr {
                            td { a href=(viewer.link(&format!("/executions/{}", e.id))) { (layout::short_id(&e.id)) } }
                            td { (layout::status(e.status.as_str())) }
                            td { (when(e.finished_at)) }
                            td { (layout::clip(e.error.as_deref().unwrap_or(""), 160)) }
                        }
                    }
                    @if failures.is_empty() { tr { td colspan="4" .muted { "No failures." } } }
                }
            }
        }
    };
    layout::page(&viewer, "Overview", "/", true, body).into_response()
}
