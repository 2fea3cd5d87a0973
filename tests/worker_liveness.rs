//! `Store::live_worker_ids` on every backend: a running worker is listed
//! while it heartbeats and drops out once its heartbeat is older than the
//! window. The Docker runner's orphan sweep relies on it to tell dead
//! workers' containers from live ones.

mod common;

use std::time::Duration;

use ccs::db::Backend;
use common::{Options, eventually, spawn_app};

async fn live_workers_are_the_heartbeating_ones(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    // The in-process worker registers with apalis and heartbeats every 1s;
    // its id is the one it writes on the executions it claims.
    let id = app.submit("@result=ok").await;
    app.wait_terminal(&id, Duration::from_secs(60)).await;
    let worker = app
        .store
        .execution(&id)
        .await
        .unwrap()
        .unwrap()
        .worker_id
        .unwrap();
    eventually("the worker to heartbeat", || async {
        let live = app.store.live_worker_ids(5).await.unwrap();
        live.contains(&worker).then_some(())
    })
    .await;
    // Stopped, it no longer heartbeats: dead once the window has passed.
    app.stop.cancel();
    eventually("the stopped worker to count as dead", || async {
        let live = app.store.live_worker_ids(2).await.unwrap();
        (!live.contains(&worker)).then_some(())
    })
    .await;
    app.shutdown().await;
}
backend_tests!(
    live_workers_are_the_heartbeating_ones,
    super::live_workers_are_the_heartbeating_ones
);
