//! The database goes away and comes back (MariaDB and PostgreSQL): the API
//! answers 503 promptly instead of hanging, and once the database is back
//! work resumes with nothing lost.

mod common;

use std::time::{Duration, Instant};

use ccs::db::Backend;
use common::{Options, spawn_app};
use serde_json::json;

async fn database_outage_gives_503_then_recovers(backend: Backend) {
    let Some(app) = spawn_app(
        backend,
        Options {
            via_proxy: true,
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let proxy = app.proxy.as_ref().unwrap();
    let before = app.submit("before the outage @sleep=1 @cost=0.01").await;

    proxy.cut();
    let t = Instant::now();
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "readyz took {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let res = app
        .client
        .post(app.url("/webhook/execute"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"projectId": app.project_id, "prompt": "during"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("unavailable"),
        "{body}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "webhook took {:?}",
        t.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    proxy.restore();
    let t = Instant::now();
    loop {
        let res = app.client.get(app.url("/readyz")).send().await.unwrap();
        if res.status() == 200 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "never ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = app.submit("after the outage @cost=0.02").await;
    for id in [&before, &after] {
        let e = app.wait_terminal(id, Duration::from_secs(90)).await;
        assert_eq!(e["status"], "succeeded", "{e}");
    }
    // The request refused with 503 left nothing behind.
    assert_eq!(app.store.executions(10).await.unwrap().len(), 2);
    app.shutdown().await;
}
// Servers only: an embedded SQLite file cannot go away on its own.
server_backend_tests!(
    database_outage_gives_503_then_recovers,
    super::database_outage_gives_503_then_recovers
);
