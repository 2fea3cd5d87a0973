//! `/api/v1/projects`: register, list, get.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{ApiJson, Caller};
use super::{ApiError, State};
use crate::projects::{ConfigSource, NewProjectRequest};
use crate::store::{Permission, Project};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBody {
    name: String,
    path: String,
    description: Option<String>,
    /// The container configuration: YAML text, or the same as a JSON object.
    container_config: Option<Value>,
    /// The workflow configuration: YAML text, or the same as a JSON object.
    workflow_config: Option<Value>,
    /// The GitHub repository it answers for, `owner/name`.
    repository: Option<String>,
    /// GitHub trigger settings (docs/github.md).
    github: Option<crate::github::triggers::TriggerConfig>,
}

pub async fn create(
    axum::extract::State(state): State,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Permission::Admin)?;
    let request = NewProjectRequest {
        name: body.name,
        path: body.path.into(),
        description: body.description,
        container: body.container_config.map(ConfigSource::from_json),
        workflow: body.workflow_config.map(ConfigSource::from_json),
        repository: body.repository,
        github: body.github,
    };
    let project =
        crate::projects::register_with(&state.store, state.runner_policy, request).await?;
    state
        .store
        .audit(&caller.0.name, "project.create", &project.name, "")
        .await?;
    Ok((StatusCode::CREATED, Json(to_json(&project))))
}

pub async fn list(
    axum::extract::State(state): State,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let projects: Vec<Value> = state.store.projects().await?.iter().map(to_json).collect();
    Ok(Json(json!({ "projects": projects })))
}

pub async fn get(
    axum::extract::State(state): State,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("project id must be a number, got {id:?}")))?;
    let project = state
        .store
        .project(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("project {id} not found")))?;
    Ok(Json(to_json(&project)))
}

fn to_json(p: &Project) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "path": p.path,
        "description": p.description,
        "containerConfig": p.container_yaml,
        "workflowConfig": p.workflow_yaml,
        "repository": p.repository,
        "github": crate::github::triggers::TriggerConfig::of_project(p),
        "createdAt": super::executions::rfc3339(p.created_at),
        "updatedAt": super::executions::rfc3339(p.updated_at),
    })
}
