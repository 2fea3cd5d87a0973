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
