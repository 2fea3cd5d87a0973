//! `/api/v1/workflows`: start a run, see it, control it.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{ApiJson, Caller};
use super::{ApiError, AppState, State};
use crate::executions::{ProjectRef, resolve_project};
use crate::store::{Control, Permission, WorkflowRun};
use crate::workflows::WorkflowError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartBody {
    pub project_id: Option<i64>,
    pub project: Option<String>,
    #[serde(default)]
    pub context: serde_json::Map<String, Value>,
    pub source: Option<String>,
}

impl From<WorkflowError> for ApiError {
    fn from(e: WorkflowError) -> Self {
        match e {
            WorkflowError::Invalid(m) => ApiError::Unprocessable(m),
            WorkflowError::Store(s) => s.into(),
        }
    }
}

/// Starts a run; shared by this API and `POST /webhook/execute`.
pub async fn start_run(
    state: &AppState,
    caller: &Caller,
    project: ProjectRef,
    context: serde_json::Map<String, Value>,
    source: &str,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Permission::Execute)?;
    let project = resolve_project(&state.store, &project).await?;
    let run = crate::workflows::start(&state.store, &project, &context, source).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "workflowId": run.id,
            "status": run.status,
            "statusUrl": format!("/api/v1/workflows/{}", run.id),
        })),
    ))
}

pub async fn create(
    axum::extract::State(state): State,
    caller: Caller,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let project = match (body.project_id, body.project) {
        (Some(id), None) => ProjectRef::Id(id),
        (None, Some(name)) => ProjectRef::Name(name),
        _ => {
            return Err(ApiError::Unprocessable(
                "give exactly one of projectId or project".into(),
            ));
        }
    };
    let source = body.source.unwrap_or_else(|| "api".into());
    start_run(&state, &caller, project, body.context, &source).await
}

pub async fn get(
    axum::extract::State(state): State,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let run = find(&state, &id).await?;
    let steps = state.store.workflow_steps(&id).await?;
    let context: Value = serde_json::from_str(&run.context).unwrap_or(Value::Null);
    Ok(Json(json!({
        "id": run.id,
        "projectId": run.project_id,
        "status": run.status,
        "currentAgent": run.current_agent,
        "iteration": run.iteration,
        "costUsd": run.cost_usd,
        "context": context,
        "source": run.source,
        "error": run.error,
        "createdAt": super::executions::rfc3339(run.created_at),
        "finishedAt": run.finished_at.map(super::executions::rfc3339),
        "steps": steps.iter().map(|s| json!({
            "step": s.step,
            "agent": s.agent,
            "iteration": s.iteration,
            "attempt": s.attempt,
            "status": s.status,
            "executionId": s.execution_id,
            "costUsd": s.cost_usd,
            "output": s.output,
        })).collect::<Vec<_>>(),
    })))
}

/// `POST /api/v1/workflows/{id}/{pause|resume|cancel|approve|reject}`.
pub async fn control(
    axum::extract::State(state): State,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let run = control_as(&state, &caller, &id, &action).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "status": run.status })),
    ))
}

/// Applies a control action to a run as `caller` (execute): the API's and
/// the dashboard's. Returns the run after it.
pub async fn control_as(
    state: &AppState,
    caller: &Caller,
    id: &str,
    action: &str,
) -> Result<WorkflowRun, ApiError> {
    caller.require(Permission::Execute)?;
    find(state, id).await?;
    let store = &state.store;
    let result = match action {
        "pause" => store.pause_workflow(id).await?,
        "resume" => store.resume_workflow(id).await?,
        "cancel" => store.cancel_workflow(id).await?,
        "approve" => store.approve_workflow(id).await?,
        "reject" => store.reject_workflow(id).await?,
        other => {
            return Err(ApiError::NotFound(format!(
                "no workflow action {other:?}: use pause, resume, cancel, approve or reject"
            )));
        }
    };
    match result {
        Control::Done => {
            store
                .audit(&caller.0.name, &format!("workflow.{action}"), id, "")
                .await?;
            find(state, id).await
        }
        Control::NotAllowed(status) => Err(ApiError::Conflict(format!(
            "cannot {action} a workflow run that is {status}"
        ))),
    }
}

async fn find(state: &AppState, id: &str) -> Result<WorkflowRun, ApiError> {
    state
        .store
        .workflow(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("workflow {id} not found")))
}
