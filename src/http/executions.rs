//! `/api/v1/executions`: submit, list, get, logs, cancel.

use axum::Json;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::extract::{ApiJson, Caller};
use super::{ApiError, State};
use crate::executions::{ProjectRef, Submission};
use crate::limits::rate::RateScope;
use crate::store::{Execution, Permission};

/// The body of `POST /api/v1/executions` and `POST /webhook/execute`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecuteBody {
    pub project_id: Option<i64>,
    pub project: Option<String>,
    pub prompt: Option<String>,
    /// Where the request came from (`api`, `custom`, …); the endpoint's
    /// default when absent.
    pub source: Option<String>,
    pub idempotency_key: Option<String>,
    /// Enqueue even when a daily budget it counts toward is used up
    /// (otherwise: 402).
    #[serde(default)]
    pub queue_if_over_budget: bool,
    /// Start the project's workflow instead of a single prompt.
    #[serde(default)]
    pub workflow: bool,
    pub context: Option<Value>,
    /// Continue the Claude Code session of this earlier execution of the
    /// same project (docs/claude-cli.md).
    pub resume_from: Option<String>,
}

impl ExecuteBody {
    /// The submission this body asks for, or a 422 naming what is wrong.
    pub fn into_submission(
        self,
        api_key_id: i64,
        default_source: &str,
    ) -> Result<Submission, ApiError> {
        if self.context.is_some() {
            return Err(ApiError::Unprocessable(
                "`context` is for workflow runs (`\"workflow\": true`)".into(),
            ));
        }
        let project = match (self.project_id, self.project) {
            (Some(id), None) => ProjectRef::Id(id),
            (None, Some(name)) => ProjectRef::Name(name),
            (Some(_), Some(_)) => {
                return Err(ApiError::Unprocessable(
                    "give either projectId or project, not both".into(),
                ));
            }
            (None, None) => {
                return Err(ApiError::Unprocessable(
                    "missing field `projectId` (or `project`, a project name)".into(),
                ));
            }
        };
        let prompt = self
            .prompt
            .ok_or_else(|| ApiError::Unprocessable("missing field `prompt`".into()))?;
        Ok(Submission {
            project,
            prompt,
            source: self.source.unwrap_or_else(|| default_source.to_owned()),
            idempotency_key: self.idempotency_key,
            api_key_id: Some(api_key_id),
            queue_if_over_budget: self.queue_if_over_budget,
            resume_from: self.resume_from,
        })
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub execution_id: String,
    pub status_url: String,
    pub status: &'static str,
}

/// Validates, enqueues, answers 202 (also for a repeated idempotency key).
/// With `"workflow": true`, starts a run of the project's workflow instead.
pub async fn submit(
    state: &super::AppState,
    caller: &Caller,
    body: ExecuteBody,
    default_source: &str,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = caller.require(Permission::Execute)?;
    state
        .rate_limits
        .check(RateScope::ApiKey, &key.id.to_string())?;
    if body.workflow {
        if body.resume_from.is_some() {
            return Err(ApiError::Unprocessable(
                "`resumeFrom` is for single executions, not workflow runs".into(),
            ));
        }
        if body.prompt.is_some() {
            return Err(ApiError::Unprocessable(
                "a workflow run takes `context`, not `prompt`".into(),
            ));
        }
        let project = match (body.project_id, body.project) {
            (Some(id), None) => ProjectRef::Id(id),
            (None, Some(name)) => ProjectRef::Name(name),
            _ => {
                return Err(ApiError::Unprocessable(
                    "give exactly one of projectId or project".into(),
                ));
            }
        };
        let source = body.source.unwrap_or_else(|| default_source.to_owned());
        let context = match body.context {
            None => serde_json::Map::new(),
            Some(Value::Object(map)) => map,
            Some(_) => {
                return Err(ApiError::Unprocessable(
                    "`context` must be an object".into(),
                ));
            }
        };
        return super::workflows::start_run(state, caller, project, context, &source).await;
    }
    let submission = body.into_submission(key.id, default_source)?;
    let created = crate::executions::submit(&state.store, submission, state.limits).await?;
    let id = created.value.id;
    let accepted = Accepted {
        status_url: format!("/api/v1/executions/{id}"),
        execution_id: id,
        status: created.value.status.as_str(),
    };
    Ok((StatusCode::ACCEPTED, Json(json!(accepted))))
}

pub async fn create(
    axum::extract::State(state): State,
    caller: Caller,
    ApiJson(body): ApiJson<ExecuteBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    submit(&state, &caller, body, "api").await
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
}

pub async fn list(
    axum::extract::State(state): State,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let executions = state.store.executions(limit).await?;
    let list: Vec<Value> = executions.iter().map(to_json).collect();
    Ok(Json(json!({ "executions": list })))
}

pub async fn get(
    axum::extract::State(state): State,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let execution = find(&state, &id).await?;
    Ok(Json(to_json(&execution)))
}

/// The most log text one `GET …/logs` answers with (one row more when the
/// first row alone is longer); `nextAfter` then says where to go on.
pub const LOG_PAGE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

pub async fn logs(
    axum::extract::State(state): State,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    find(&state, &id).await?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let (logs, cut) = state
        .store
        .log_page(&id, q.after.unwrap_or(0), limit, LOG_PAGE_BYTES)
        .await?;
    let next_after = cut.then(|| logs.last().map(|l| l.seq)).flatten();
    let logs: Vec<Value> = logs
        .iter()
        .map(|l| json!({ "seq": l.seq, "at": rfc3339(l.at), "kind": l.kind, "text": l.text }))
        .collect();
    Ok(Json(json!({ "logs": logs, "nextAfter": next_after })))
}

pub async fn cancel(
    axum::extract::State(state): State,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let execution = cancel_as(&state, &caller, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(to_json(&execution))))
}

/// Cancels an execution for `caller` (execute): the API's and the
/// dashboard's cancel. Returns the state after the call.
pub async fn cancel_as(
    state: &super::AppState,
    caller: &Caller,
    id: &str,
) -> Result<Execution, ApiError> {
    caller.require(Permission::Execute)?;
    find(state, id).await?;
    let execution = state
        .store
        .cancel_execution(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("execution {id} not found")))?;
    state
        .store
        .audit(&caller.0.name, "execution.cancel", id, "")
        .await?;
    Ok(execution)
}

/// `POST /api/v1/executions/{id}/retry` (execute): a new execution of the
/// same project, prompt and source.
pub async fn retry(
    axum::extract::State(state): State,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let created = retry_as(&state, &caller, &id).await?;
    let accepted = Accepted {
        status_url: format!("/api/v1/executions/{}", created.id),
        execution_id: created.id.clone(),
        status: created.status.as_str(),
    };
    Ok((StatusCode::ACCEPTED, Json(json!(accepted))))
}

/// Submits a finished execution's prompt again, as `caller` (execute),
/// through the same admission as a new submission. A workflow step is
/// retried by its run, not alone (409).
pub async fn retry_as(
    state: &super::AppState,
    caller: &Caller,
    id: &str,
) -> Result<Execution, ApiError> {
    let key = caller.require(Permission::Execute)?;
    state
        .rate_limits
        .check(RateScope::ApiKey, &key.id.to_string())?;
    let original = find(state, id).await?;
    if !original.status.is_terminal() {
        return Err(ApiError::Conflict(format!(
            "execution {id} is still {}; cancel it first or wait for it to end",
            original.status.as_str()
        )));
    }
    if original.workflow_id.is_some() {
        return Err(ApiError::Conflict(format!(
            "execution {id} is a workflow step: control its workflow run instead"
        )));
    }
    let submission = Submission {
        project: ProjectRef::Id(original.project_id),
        prompt: original.prompt,
        source: original.source,
        idempotency_key: None,
        api_key_id: Some(key.id),
        queue_if_over_budget: false,
        // A retry starts from where the original started.
        resume_from: original.resume_from,
    };
    let created = crate::executions::submit(&state.store, submission, state.limits).await?;
    state
        .store
        .audit(&caller.0.name, "execution.retry", id, &created.value.id)
        .await?;
    Ok(created.value)
}

pub async fn find(state: &super::AppState, id: &str) -> Result<Execution, ApiError> {
    state
        .store
        .execution(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("execution {id} not found")))
}

/// RFC 3339 UTC from epoch milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The API's view of an execution: field names users script against.
pub fn to_json(e: &Execution) -> Value {
    json!({
        "id": e.id,
        "projectId": e.project_id,
        "workflowId": e.workflow_id,
        "status": e.status.as_str(),
        "prompt": e.prompt,
        "source": e.source,
        "idempotencyKey": e.idempotency_key,
        "result": e.result,
        "costUsd": e.cost_usd,
        "costEstimated": e.cost_estimated,
        "numTurns": e.num_turns,
        "sessionId": e.session_id,
        "exitCode": e.exit_code,
        "durationMs": e.duration_ms,
        "error": e.error,
        "validation": e.validation,
        "baseExecutionId": e.base_execution_id,
        "resumeFrom": e.resume_from,
        "attempts": e.attempts,
        "cancelRequested": e.cancel_requested,
        "createdAt": rfc3339(e.created_at),
        "startedAt": e.started_at.map(rfc3339),
        "finishedAt": e.finished_at.map(rfc3339),
    })
}
