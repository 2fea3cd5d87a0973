//! `GET /api/v1/notifications`: budget alerts and the like, newest first.

use axum::Json;
use axum::extract::Query;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::Caller;
use super::{ApiError, State};
use crate::store::Permission;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
}

/// `GET /api/v1/notifications?limit=N` (read).
pub async fn list(
    axum::extract::State(state): State,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let list: Vec<Value> = state
        .store
        .notifications(limit)
        .await?
        .iter()
        .map(|n| {
            json!({
                "id": n.id,
                "projectId": n.project_id,
                "kind": n.kind,
                "title": n.title,
                "body": n.body,
                "dedupKey": n.dedup_key,
                "readAt": n.read_at.map(super::executions::rfc3339),
                "createdAt": super::executions::rfc3339(n.created_at),
            })
        })
        .collect();
    Ok(Json(json!({ "notifications": list })))
}
