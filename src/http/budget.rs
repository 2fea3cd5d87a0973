//! `/api/v1/budget`: today's spend, reservations and limits; changing a
//! limit (`PUT /api/v1/budget`, `POST /api/v1/projects/{id}/budget`).
//!
//! Limits set here win over the project's files and the workers' settings
//! and take effect at the next admission (see [`crate::limits::budget`]).

use axum::Json;
use axum::extract::Path;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{ApiJson, Caller};
use super::{ApiError, State};
use crate::limits::budget::{self, BudgetReport};
use crate::store::Permission;
use crate::store::limits::{BudgetRow, GLOBAL_SCOPE, key_scope, project_scope};

/// `GET /api/v1/budget` (read).
pub async fn get(
    axum::extract::State(state): State,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let report = budget::report(&state.store).await?;
    let projects = state.store.projects().await?;
    Ok(Json(to_json(&report, &projects)))
}

/// The body of `PUT /api/v1/budget`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutBody {
    /// `global`, `project` or `apiKey`.
    scope: String,
    project_id: Option<i64>,
    api_key_id: Option<i64>,
    /// USD per UTC day; `null` or absent: no limit set here.
    daily_limit_usd: Option<f64>,
    /// USD per run (`global`: the service's default; `project`: that
    /// project's); `null` or absent: none set here.
    max_cost_per_execution_usd: Option<f64>,
}

/// `PUT /api/v1/budget` (admin): sets the limits of one scope.
pub async fn put(
    axum::extract::State(state): State,
    caller: Caller,
    ApiJson(body): ApiJson<PutBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Admin)?;
    let scope = match (body.scope.as_str(), body.project_id, body.api_key_id) {
        ("global", None, None) => GLOBAL_SCOPE.to_owned(),
        ("project", Some(id), None) => {
            find_project(&state, id).await?;
            project_scope(id)
        }
        ("apiKey", None, Some(id)) => {
            if body.max_cost_per_execution_usd.is_some() {
                return Err(ApiError::Unprocessable(
                    "maxCostPerExecutionUsd is set per project or globally, not per API key".into(),
                ));
            }
            key_scope(id)
        }
        ("global" | "project" | "apiKey", _, _) => {
            return Err(ApiError::Unprocessable(
                "scope `global` takes no id, `project` takes projectId, `apiKey` takes apiKeyId"
                    .into(),
            ));
        }
        (other, _, _) => {
            return Err(ApiError::Unprocessable(format!(
                "scope must be `global`, `project` or `apiKey`, not {other:?}"
            )));
        }
    };
    set(
        &state,
        &caller,
        &scope,
        body.daily_limit_usd,
        body.max_cost_per_execution_usd,
    )
    .await
}

/// The body of `POST /api/v1/projects/{id}/budget`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectBody {
    daily_limit_usd: Option<f64>,
    max_cost_per_execution_usd: Option<f64>,
}

/// `POST /api/v1/projects/{id}/budget` (admin): sets a project's limits.
pub async fn set_project(
    axum::extract::State(state): State,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProjectBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Admin)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("project id must be a number, got {id:?}")))?;
    find_project(&state, id).await?;
    set(
        &state,
        &caller,
        &project_scope(id),
        body.daily_limit_usd,
        body.max_cost_per_execution_usd,
    )
    .await
}

async fn set(
    state: &super::AppState,
    caller: &Caller,
    scope: &str,
    daily: Option<f64>,
    per_execution: Option<f64>,
) -> Result<Json<Value>, ApiError> {
    for (name, v) in [
        ("dailyLimitUsd", daily),
        ("maxCostPerExecutionUsd", per_execution),
    ] {
        if let Some(v) = v
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(ApiError::Unprocessable(format!(
                "{name} must be a non-negative number of US dollars"
            )));
        }
    }
    budget::set_limits(&state.store, scope, daily, per_execution).await?;
    let detail = json!({ "dailyLimitUsd": daily, "maxCostPerExecutionUsd": per_execution });
    state
        .store
        .audit(&caller.0.name, "budget.set", scope, &detail.to_string())
        .await?;
    Ok(Json(json!({
        "scope": scope,
        "dailyLimitUsd": daily,
        "maxCostPerExecutionUsd": per_execution,
    })))
}

async fn find_project(state: &super::AppState, id: i64) -> Result<(), ApiError> {
    state
        .store
        .project(id)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::NotFound(format!("project {id} not found")))
}

/// The API's view of today's budgets: overall, per project (every
/// project, spent or not), per API key (those with spend or a limit).
fn to_json(report: &BudgetReport, projects: &[crate::store::Project]) -> Value {
    let row = |scope: &str| report.rows.iter().find(|r| r.scope == scope);
    let per_execution = |scope: &str| {
        report
            .overrides
            .iter()
            .find(|o| o.scope == scope)
            .and_then(|o| o.per_execution_usd)
    };
    let amounts = |r: Option<&BudgetRow>| {
        let (limit, spent, reserved) = r.map_or((None, 0.0, 0.0), |r| {
            (r.limit_usd, r.spent_usd, r.reserved_usd)
        });
        json!({
            "limitUsd": limit,
            "spentUsd": spent,
            "reservedUsd": reserved,
            "remainingUsd": limit.map(|l| (l - spent - reserved).max(0.0)),
        })
    };
    let merge = |mut base: Value, extra: Value| {
        if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
            b.extend(e);
        }
        base
    };
    let projects: Vec<Value> = projects
        .iter()
        .map(|p| {
            let scope = project_scope(p.id);
            merge(
                json!({
                    "projectId": p.id,
                    "name": p.name,
                    "maxCostPerExecutionUsd": per_execution(&scope),
                }),
                amounts(row(&scope)),
            )
        })
        .collect();
    let keys: Vec<Value> = report
        .rows
        .iter()
        .filter_map(|r| {
            let id: i64 = r.scope.strip_prefix("key:")?.parse().ok()?;
            Some(merge(json!({ "apiKeyId": id }), amounts(Some(r))))
        })
        .collect();
    let resets_at = chrono::NaiveDate::parse_from_str(&report.day, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.succ_opt())
        .map(|d| format!("{d}T00:00:00Z"));
    json!({
        "day": report.day,
        "resetsAt": resets_at,
        "overall": merge(
            json!({ "maxCostPerExecutionUsd": per_execution(GLOBAL_SCOPE) }),
            amounts(row(GLOBAL_SCOPE)),
        ),
        "projects": projects,
        "apiKeys": keys,
        "overrides": report.overrides,
    })
}
