//! Every client mistake gets a 4xx with a JSON error naming it, and writes
//! nothing. Runs on every backend.

mod common;

use ccs::db::Backend;
use ccs::store::Permission;
use common::{Options, spawn_app};
use serde_json::{Value, json};

/// Sends a request and returns (status, error text); asserts the JSON shape.
async fn call(
    app: &common::TestApp,
    path: &str,
    key: Option<&str>,
    body: reqwest::Body,
    content_type: &str,
) -> (u16, String) {
    let mut req = app
        .client
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body);
    if let Some(key) = key {
        req = req.header("authorization", key);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.expect("error bodies are JSON");
    let error = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field in {body}"))
        .to_owned();
    (status, error)
}

async fn bad_inputs_get_clear_4xx(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    let admin = format!("Bearer {}", app.admin_key);
    let good = json!({ "projectId": app.project_id, "prompt": "hi" }).to_string();
    let json_ct = "application/json";
    let post = |path: &'static str, key: Option<String>, body: String, ct: &'static str| {
        let app = &app;
        async move { call(app, path, key.as_deref(), body.into(), ct).await }
    };

    // 401: no key, wrong key, wrong scheme, expired key.
    let (s, e) = post("/webhook/execute", None, good.clone(), json_ct).await;
    assert_eq!((s, e.contains("Bearer")), (401, true), "{e}");
    let (s, e) = post(
        "/webhook/execute",
        Some("Bearer ccs_nope".into()),
        good.clone(),
        json_ct,
    )
    .await;
    assert_eq!((s, e.as_str()), (401, "invalid API key"));
    let (s, e) = post(
        "/webhook/execute",
        Some(format!("Basic {}", app.admin_key)),
        good.clone(),
        json_ct,
    )
    .await;
    assert_eq!(s, 401, "{e}");
    let expired = ccs::auth::issue_key(&app.store, "old", &[Permission::Execute], Some(1))
        .await
        .unwrap()
        .key;
    let (s, e) = post(
        "/webhook/execute",
        Some(format!("Bearer {expired}")),
        good.clone(),
        json_ct,
    )
    .await;
    assert_eq!((s, e.as_str()), (401, "this API key expired"));

    // 403: a read-only key cannot execute; an execute key cannot administer.
    let read = format!("Bearer {}", app.key(&[Permission::Read]).await);
    let (s, e) = post(
        "/webhook/execute",
        Some(read.clone()),
        good.clone(),
        json_ct,
    )
    .await;
    assert_eq!(s, 403, "{e}");
    assert!(e.contains("execute"), "{e}");
    let exec = format!("Bearer {}", app.key(&[Permission::Execute]).await);
    let (s, _) = post(
        "/api/v1/api-keys",
        Some(exec.clone()),
        json!({"name": "x", "permissions": ["read"]}).to_string(),
        json_ct,
    )
    .await;
    assert_eq!(s, 403);

    // 404: unknown project, by id and by name.
    let (s, e) = post(
        "/webhook/execute",
        Some(admin.clone()),
        json!({"projectId": 999_999, "prompt": "hi"}).to_string(),
        json_ct,
    )
    .await;
    assert_eq!((s, e.as_str()), (404, "project 999999 not found"));
    let (s, e) = post(
        "/webhook/execute",
        Some(admin.clone()),
        json!({"project": "nope", "prompt": "hi"}).to_string(),
        json_ct,
    )
    .await;
    assert_eq!((s, e.as_str()), (404, "project \"nope\" not found"));

    // 400: malformed JSON.
    let (s, e) = post(
        "/webhook/execute",
        Some(admin.clone()),
        "{\"prompt\": ".into(),
        json_ct,
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert!(e.starts_with("malformed JSON"), "{e}");

    // 415: not JSON.
    let (s, _) = post(
        "/webhook/execute",
        Some(admin.clone()),
        good.clone(),
        "text/plain",
    )
    .await;
    assert_eq!(s, 415);

    // 422: empty prompt, missing prompt, wrong type, unknown field.
    for (body, needle) in [
        (
            json!({"projectId": app.project_id, "prompt": "  "}),
            "prompt must not be empty",
        ),
        (
            json!({"projectId": app.project_id}),
            "missing field `prompt`",
        ),
        (json!({"projectId": "one", "prompt": "x"}), "projectId"),
        (
            json!({"projectId": app.project_id, "prompt": "x", "colour": 1}),
            "colour",
        ),
        (
            json!({"projectId": app.project_id, "prompt": "x", "idempotencyKey": "k".repeat(300)}),
            "idempotencyKey",
        ),
    ] {
        let (s, e) = post(
            "/webhook/execute",
            Some(admin.clone()),
            body.to_string(),
            json_ct,
        )
        .await;
        assert_eq!(s, 422, "{body}: {e}");
        assert!(e.contains(needle), "{body}: {e}");
    }

    // 413: a body over the configured limit (64 KiB in tests).
    let big = json!({"projectId": app.project_id, "prompt": "x".repeat(100 * 1024)}).to_string();
    let (s, e) = post("/webhook/execute", Some(admin.clone()), big, json_ct).await;
    assert_eq!(s, 413, "{e}");

    // 422 with file:line: invalid container YAML.
    let dir = tempfile::tempdir().unwrap();
    let (s, e) = post(
        "/api/v1/projects",
        Some(admin.clone()),
        json!({
            "name": "broken",
            "path": dir.path(),
            "containerConfig": "resources:\n  memory: 2Gi\n  timeout: soon\n",
        })
        .to_string(),
        json_ct,
    )
    .await;
    assert_eq!(s, 422, "{e}");
    assert!(e.starts_with(".claude/container.yaml:3:"), "{e}");
    assert!(e.contains("timeout"), "{e}");
    // The same from the project's own directory.
    std::fs::create_dir_all(dir.path().join(".claude")).unwrap();
    std::fs::write(
        dir.path().join(".claude/container.yaml"),
        "tools:\n  allowed: [Read, Teleport]\n",
    )
    .unwrap();
    let (s, e) = post(
        "/api/v1/projects",
        Some(admin.clone()),
        json!({"name": "broken", "path": dir.path()}).to_string(),
        json_ct,
    )
    .await;
    assert_eq!(s, 422, "{e}");
    assert!(e.starts_with(".claude/container.yaml:2:"), "{e}");
    assert!(e.contains("Teleport"), "{e}");
    // A path that does not exist, and a duplicate name (409).
    let (s, _) = post(
        "/api/v1/projects",
        Some(admin.clone()),
        json!({"name": "ghost", "path": "/no/such/dir"}).to_string(),
        json_ct,
    )
    .await;
    assert_eq!(s, 422);
    let (s, _) = post(
        "/api/v1/projects",
        Some(admin.clone()),
        json!({"name": "demo", "path": app.project_dir.path()}).to_string(),
        json_ct,
    )
    .await;
    assert_eq!(s, 409);

    // Unknown routes and ids.
    let (s, body) = app.get("/api/v1/executions/not-an-id").await;
    assert_eq!(s, 404, "{body}");
    let (s, body) = app.get("/api/v1/projects/abc").await;
    assert_eq!(s, 400, "{body}");
    let (s, _) = app.get("/api/v1/nothing-here").await;
    assert_eq!(s, 404);

    // Nothing was written by any of the refused requests.
    assert!(app.store.executions(10).await.unwrap().is_empty());
    // (A worker schedules the retention job when it starts.)
    assert!(
        app.store
            .queue_counts()
            .await
            .unwrap()
            .iter()
            .all(|(q, _, _)| q == <ccs::jobs::retention::RetentionJob as ccs::jobs::Job>::QUEUE)
    );
    assert_eq!(app.store.projects().await.unwrap().len(), 1);
    app.shutdown().await;
}
backend_tests!(bad_inputs_get_clear_4xx, super::bad_inputs_get_clear_4xx);

async fn api_keys_are_shown_once_and_tracked(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    let res = app
        .client
        .post(app.url("/api/v1/api-keys"))
        .bearer_auth(&app.admin_key)
        .json(
            &json!({"name": "ci", "permissions": ["execute"], "expiresAt": "2099-01-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let key = body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("ccs_"));
    // Stored hashed only.
    let record = app
        .store
        .api_key_by_hash(&ccs::auth::hash_key(&key))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(record.key_hash, key);
    assert_eq!(record.use_count, 0);
    for _ in 0..3 {
        let res = app
            .client
            .post(app.url("/api/v1/executions"))
            .bearer_auth(&key)
            .json(&json!({"projectId": app.project_id, "prompt": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    let record = app
        .store
        .api_key_by_hash(&ccs::auth::hash_key(&key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.use_count, 3);
    assert!(record.last_used_at.is_some());
    // An execute key can read.
    let (s, _) = {
        let res = app
            .client
            .get(app.url("/api/v1/executions"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), ())
    };
    assert_eq!(s, 200);
    app.shutdown().await;
}
backend_tests!(
    api_keys_are_shown_once_and_tracked,
    super::api_keys_are_shown_once_and_tracked
);
