//! `/api/v1/api-keys`: create (the key is in this answer only).

use axum::Json;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{ApiJson, Caller};
use super::{ApiError, State};
use crate::store::Permission;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBody {
    name: String,
    permissions: Vec<String>,
    /// RFC 3339 time after which the key stops working.
    expires_at: Option<String>,
}

pub async fn create(
    axum::extract::State(state): State,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Permission::Admin)?;
    if body.name.trim().is_empty() || body.name.len() > 200 {
        return Err(ApiError::Unprocessable(
            "name must be 1 to 200 characters".into(),
        ));
    }
    let permissions =
        crate::auth::parse_permissions(&body.permissions).map_err(ApiError::Unprocessable)?;
    let expires_at = match &body.expires_at {
        Some(text) => Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|e| {
                    ApiError::Unprocessable(format!("expiresAt must be an RFC 3339 time: {e}"))
                })?
                .timestamp_millis(),
        ),
        None => None,
    };
    let issued = crate::auth::issue_key(&state.store, &body.name, &permissions, expires_at).await?;
    state
        .store
        .audit(
            &caller.0.name,
            "api_key.create",
            &body.name,
            &issued.record.key_prefix,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": issued.record.id,
            "key": issued.key,
            "name": issued.record.name,
            "permissions": issued.record.permissions,
            "expiresAt": issued.record.expires_at.map(super::executions::rfc3339),
        })),
    ))
}
