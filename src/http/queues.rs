//! `GET /api/v1/queues`: jobs per queue and state.

use axum::Json;
use serde_json::{Value, json};

use super::extract::Caller;
use super::{ApiError, State};
use crate::store::Permission;

pub async fn counts(
    axum::extract::State(state): State,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let mut queues = serde_json::Map::new();
    for (queue, status, n) in state.store.queue_counts().await? {
        let entry = queues
            .entry(queue)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|m| m.insert(status.to_lowercase(), json!(n)));
        let _ = entry;
    }
    Ok(Json(json!({ "queues": queues })))
}

/// apalis's job states, as stored.
pub const JOB_STATES: &[&str] = &["Pending", "Queued", "Running", "Done", "Failed", "Killed"];

/// One of ccs's queues ([`crate::jobs::KINDS`]), or 404.
pub fn known_queue(queue: &str) -> Result<&'static str, ApiError> {
    crate::jobs::queues()
        .into_iter()
        .find(|q| *q == queue)
        .ok_or_else(|| ApiError::NotFound(format!("no queue named {queue:?}")))
}

#[derive(Debug, serde::Deserialize)]
pub struct JobsQuery {
    status: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/queues/{queue}/jobs?status=Failed&limit=N` (read).
pub async fn jobs(
    axum::extract::State(state): State,
    caller: Caller,
    axum::extract::Path(queue): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<JobsQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let queue = known_queue(&queue)?;
    let status = q.status.as_deref().unwrap_or("Pending");
    if !JOB_STATES.contains(&status) {
        return Err(ApiError::BadRequest(format!(
            "unknown job status {status:?}: use one of {}",
            JOB_STATES.join(", ")
        )));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let jobs = state.store.jobs(queue, status, limit).await?;
    let list: Vec<Value> = jobs
        .iter()
        .map(|j| {
            json!({
                "id": j.id,
                "queue": j.queue,
                "status": j.status,
                "attempts": j.attempts,
                "maxAttempts": j.max_attempts,
                "runAt": j.run_at_ms.map(super::executions::rfc3339),
                "lastResult": j.last_result,
                "lockedBy": j.lock_by,
                "doneAt": j.done_at_ms.map(super::executions::rfc3339),
                "args": serde_json::from_str::<Value>(&j.args).unwrap_or(Value::String(j.args.clone())),
            })
        })
        .collect();
    Ok(Json(json!({ "jobs": list })))
}

/// `POST /api/v1/queues/{queue}/jobs/{id}/{retry|kill|delete}` (admin).
pub async fn job_action(
    axum::extract::State(state): State,
    caller: Caller,
    axum::extract::Path((queue, id, action)): axum::extract::Path<(String, String, String)>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    job_action_as(&state, &caller, &queue, &id, &action).await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(json!({ "id": id, "action": action })),
    ))
}

/// Retries, kills or deletes one job as `caller` (admin): the API's and
/// the dashboard's. 409 when the job is not in a state the action applies
/// to (a running job is never touched: cancel its execution instead).
pub async fn job_action_as(
    state: &super::AppState,
    caller: &Caller,
    queue: &str,
    id: &str,
    action: &str,
) -> Result<(), ApiError> {
    caller.require(Permission::Admin)?;
    let queue = known_queue(queue)?;
    let action = crate::store::ui::JobAction::parse(action).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no job action {action:?}: use retry, kill or delete"
        ))
    })?;
    if !state.store.job_action(queue, id, action).await? {
        return Err(ApiError::Conflict(format!(
            "cannot {} job {id}: it does not exist in {queue}, or its state does not allow it \
             (retry: Failed or Killed; kill: Pending; delete: not held by a worker)",
            action.as_str()
        )));
    }
    state
        .store
        .audit(
            &caller.0.name,
            &format!("job.{}", action.as_str()),
            id,
            queue,
        )
        .await?;
    Ok(())
}
