//! Server-Sent Events: `GET /api/v1/workflows/{id}/events` and
//! `GET /api/v1/executions/{id}/events`.
//!
//! Both replay durable rows — a run's `workflow_events`, an execution's
//! `logs` — by sequence number, so the stream works whichever process wrote
//! them (the API never runs agents) and is **resumable**: each event's `id`
//! is its sequence number, and a client reconnecting with `Last-Event-ID`
//! (or `?after=N`) gets everything after it. The API polls the database
//! every [`POLL`] while a client is connected, and ends the stream after the
//! run or execution reached a terminal state and everything was sent.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;

use super::extract::Caller;
use super::{ApiError, State};
use crate::store::{Permission, Store, run_status};

/// How often a connected stream looks for new rows.
pub const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Deserialize)]
pub struct After {
    pub after: Option<i64>,
}

pub fn start_seq(headers: &HeaderMap, q: &After) -> Result<i64, ApiError> {
    if let Some(v) = headers.get("last-event-id") {
        return v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| ApiError::BadRequest("Last-Event-ID must be a number".into()));
    }
    Ok(q.after.unwrap_or(0))
}

/// What one poll of the durable rows found.
enum Batch {
    /// New events; the last one's sequence number is where to go on from.
    Events(Vec<Event>, i64),
    /// Nothing new, and nothing more will come: send these, then end.
    End(Vec<Event>),
    /// Nothing new yet.
    Wait,
}

/// The SSE stream shared by both endpoints: polls `fetch(after)` every
/// [`POLL`] until it answers [`Batch::End`].
fn replay<F, Fut>(after: i64, fetch: F) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    F: Fn(i64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Batch> + Send,
{
    let stream = futures::stream::unfold((after, false), move |(mut after, done)| {
        let fetch = fetch.clone();
        async move {
            if done {
                return None;
            }
            loop {
                match fetch(after).await {
                    Batch::Events(events, last) => {
                        after = last;
                        let events = events.into_iter().map(Ok::<_, Infallible>);
                        return Some((
                            futures::stream::iter(events.collect::<Vec<_>>()),
                            (after, false),
                        ));
                    }
                    Batch::End(events) => {
                        let events = events.into_iter().map(Ok::<_, Infallible>);
                        return Some((
                            futures::stream::iter(events.collect::<Vec<_>>()),
                            (after, true),
                        ));
                    }
                    Batch::Wait => tokio::time::sleep(POLL).await,
                }
            }
        }
    });
    Sse::new(futures::StreamExt::flatten(stream)).keep_alive(KeepAlive::default())
}

pub async fn workflow(
    axum::extract::State(state): State,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<After>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let after = start_seq(&headers, &q)?;
    workflow_stream(&state, &caller, id, after).await
}

/// A run's event stream after `after`, for `caller` (read): the API's and
/// the dashboard's.
pub async fn workflow_stream(
    state: &super::AppState,
    caller: &Caller,
    id: String,
    after: i64,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, ApiError> {
    caller.require(Permission::Read)?;
    state
        .store
        .workflow(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("workflow {id} not found")))?;
    let store = state.store.clone();
    Ok(replay(after, move |after| {
        let (store, id) = (store.clone(), id.clone());
        async move { workflow_batch(&store, &id, after).await }
    }))
}

/// A run's events after `after`; the end once the run is over and sent.
async fn workflow_batch(store: &Store, id: &str, after: i64) -> Batch {
    let finished = matches!(
        store.workflow(id).await,
        Ok(Some(run)) if run_status::is_terminal(&run.status)
    );
    match store.workflow_events(id, after).await {
        Ok(events) if !events.is_empty() => {
            let last = events.last().map_or(after, |e| e.seq);
            let events = events
                .iter()
                .map(|e| {
                    Event::default()
                        .id(e.seq.to_string())
                        .event(e.kind.clone())
                        .data(serde_json::json!({"seq": e.seq, "at": super::executions::rfc3339(e.at), "kind": e.kind, "data": e.data}).to_string())
                })
                .collect();
            Batch::Events(events, last)
        }
        Ok(_) if finished => Batch::End(Vec::new()),
        _ => Batch::Wait,
    }
}

pub async fn execution(
    axum::extract::State(state): State,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<After>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let after = start_seq(&headers, &q)?;
    execution_stream(&state, &caller, id, after).await
}

/// An execution's log stream after `after`, for `caller` (read): the API's
/// and the dashboard's.
pub async fn execution_stream(
    state: &super::AppState,
    caller: &Caller,
    id: String,
    after: i64,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, ApiError> {
    caller.require(Permission::Read)?;
    state
        .store
        .execution(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("execution {id} not found")))?;
    let store = state.store.clone();
    Ok(replay(after, move |after| {
        let (store, id) = (store.clone(), id.clone());
        async move { execution_batch(&store, &id, after).await }
    }))
}

/// An execution's log lines after `after`; an `end` event with its status
/// once it is over and every line was sent.
async fn execution_batch(store: &Store, id: &str, after: i64) -> Batch {
    let status = store.execution(id).await.ok().flatten().map(|e| e.status);
    match store.logs(id, after, 500).await {
        Ok(lines) if !lines.is_empty() => {
            let last = lines.last().map_or(after, |l| l.seq);
            let events = lines
                .iter()
                .map(|l| {
                    Event::default()
                        .id(l.seq.to_string())
                        .event("log")
                        .data(serde_json::json!({"seq": l.seq, "at": super::executions::rfc3339(l.at), "kind": l.kind, "text": l.text}).to_string())
                })
                .collect();
            Batch::Events(events, last)
        }
        Ok(_) if status.is_some_and(|s| s.is_terminal()) => {
            Batch::End(vec![Event::default().event("end").data(
                serde_json::json!({"status": status.map(|s| s.as_str())}).to_string(),
            )])
        }
        _ => Batch::Wait,
    }
}
