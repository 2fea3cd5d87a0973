//! The job pipeline end to end, on every backend: webhook → 202 → job →
//! worker → test agent → recorded outcome, cost and logs.

mod common;

use std::time::Duration;

use ccs::db::Backend;
use common::{Options, WorkerProcess, eventually, spawn_app};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

async fn succeeds_end_to_end(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let id = app
        .submit("explain the flow\n@cost=0.25 @turns=3 @result=all good")
        .await;
    let e = app.wait_terminal(&id, WAIT).await;
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["result"], "all good");
    assert_eq!(e["costUsd"], 0.25);
    assert_eq!(e["costEstimated"], false);
    assert_eq!(e["numTurns"], 3);
    assert_eq!(e["attempts"], 1);
    assert!(
        e["sessionId"].as_str().is_some_and(|s| s.len() == 36),
        "{e}"
    );
    let (status, logs) = app.get(&format!("/api/v1/executions/{id}/logs")).await;
    assert_eq!(status, 200);
    let logs = logs["logs"].as_array().unwrap();
    let kinds: Vec<&str> = logs.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"system"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "assistant").count(), 5);
    assert!(kinds.contains(&"result"), "{kinds:?}");
    let seqs: Vec<i64> = logs.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    // The project directory itself is never written by a run.
    let id = app.submit("@write=created.txt").await;
    assert_eq!(app.wait_terminal(&id, WAIT).await["status"], "succeeded");
    assert!(!app.project_dir.path().join("created.txt").exists());
    app.shutdown().await;
}
backend_tests!(succeeds_end_to_end, super::succeeds_end_to_end);

async fn separate_worker_process_runs_the_job(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    let id = app.submit("hello @cost=0.05").await;
    // No worker yet: the job waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, e) = app.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(e["status"], "queued");
    let mut worker = WorkerProcess::spawn(&app, 2);
    let e = app.wait_terminal(&id, WAIT).await;
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["costUsd"], 0.05);
    worker.term();
    let status = tokio::time::timeout(Duration::from_secs(20), worker.child.wait())
        .await
        .expect("worker exits on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    app.shutdown().await;
}
backend_tests!(
    separate_worker_process_runs_the_job,
    super::separate_worker_process_runs_the_job
);

async fn failures_end_in_their_status(backend: Backend) {
    let yaml = "resources:\n  timeout: 2s\n";
    let Some(app) = spawn_app(
        backend,
        Options {
            container_yaml: Some(yaml.into()),
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let fail = app.submit("@fail @cost=0.02").await;
    let crash = app.submit("@crash @turns=2").await;
    let hang = app.submit("@hang").await;
    let e = app.wait_terminal(&fail, WAIT).await;
    assert_eq!(e["status"], "failed", "{e}");
    assert_eq!(e["costUsd"], 0.02);
    assert!(e["error"].as_str().unwrap().contains("execution"), "{e}");
    let e = app.wait_terminal(&crash, WAIT).await;
    assert_eq!(e["status"], "failed", "{e}");
    assert_eq!(
        e["error"],
        "the agent exited with code 137 without a result line"
    );
    assert_eq!(e["costEstimated"], true);
    assert!(e["costUsd"].as_f64().unwrap() > 0.0, "{e}");
    let e = app.wait_terminal(&hang, WAIT).await;
    assert_eq!(e["status"], "timed_out", "{e}");
    assert_eq!(e["error"], "timed out after 2s");
    assert!(
        !common::process_alive(&hang),
        "the hung agent is still running"
    );
    app.shutdown().await;
}
backend_tests!(
    failures_end_in_their_status,
    super::failures_end_in_their_status
);

async fn cancel_stops_a_running_agent(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let id = app.submit("@hang").await;
    // Wait until it runs.
    eventually("the agent to start", || async {
        common::process_alive(&id).then_some(())
    })
    .await;
    assert_eq!(
        app.post_empty(&format!("/api/v1/executions/{id}/cancel"))
            .await,
        202
    );
    let e = app.wait_terminal(&id, WAIT).await;
    assert_eq!(e["status"], "cancelled", "{e}");
    assert!(!common::process_alive(&id));
    app.shutdown().await;
}
backend_tests!(
    cancel_stops_a_running_agent,
    super::cancel_stops_a_running_agent
);

async fn cancel_before_start_never_runs(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    let id = app.submit("@cost=1").await;
    assert_eq!(
        app.post_empty(&format!("/api/v1/executions/{id}/cancel"))
            .await,
        202
    );
    let mut worker = WorkerProcess::spawn(&app, 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, e) = app.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(e["status"], "cancelled", "{e}");
    assert_eq!(e["attempts"], 0, "{e}");
    worker.kill9();
    app.shutdown().await;
}
backend_tests!(
    cancel_before_start_never_runs,
    super::cancel_before_start_never_runs
);

async fn idempotency_key_gives_one_execution(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    let body = json!({
        "projectId": app.project_id,
        "prompt": "once",
        "source": "custom",
        "idempotencyKey": "delivery-42",
    });
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = app.client.clone();
        let url = app.url("/webhook/execute");
        let key = app.admin_key.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 202);
            let v: Value = res.json().await.unwrap();
            v["executionId"].as_str().unwrap().to_owned()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let jobs: i64 = app
        .store
        .queue_counts()
        .await
        .unwrap()
        .iter()
        .filter(|(q, _, _)| q == <ccs::jobs::execute::ExecuteJob as ccs::jobs::Job>::QUEUE)
        .map(|(_, _, n)| n)
        .sum();
    assert_eq!(jobs, 1, "exactly one job enqueued");
    app.shutdown().await;
}
backend_tests!(
    idempotency_key_gives_one_execution,
    super::idempotency_key_gives_one_execution
);

async fn killed_worker_hands_its_job_back(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    let id = app.submit("@sleep=4 @cost=0.03 @result=done").await;
    let mut first = WorkerProcess::spawn(&app, 1);
    eventually("the agent to start", || async {
        common::process_alive(&id).then_some(())
    })
    .await;
    first.kill9();
    let _ = first.child.wait().await;
    // The agent dies with its worker.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!common::process_alive(&id), "agent outlived its worker");
    let (_, e) = app.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(e["status"], "running");
    let mut second = WorkerProcess::spawn(&app, 1);
    let e = app.wait_terminal(&id, WAIT).await;
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["result"], "done");
    assert_eq!(e["attempts"], 2, "{e}");
    second.kill9();
    app.shutdown().await;
}
backend_tests!(
    killed_worker_hands_its_job_back,
    super::killed_worker_hands_its_job_back
);

async fn two_workers_run_each_job_once(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    let record = app.work_dir.path().join("record.jsonl");
    let mut ids = Vec::new();
    for i in 0..200 {
        ids.push(app.submit(&format!("job {i} @cost=0.001")).await);
    }
    let mut workers = [
        WorkerProcess::spawn_recording(&app, 4, &record),
        WorkerProcess::spawn_recording(&app, 4, &record),
    ];
    for id in &ids {
        let e = app.wait_terminal(id, Duration::from_secs(180)).await;
        assert_eq!(e["status"], "succeeded", "{e}");
        assert_eq!(e["attempts"], 1, "{e}");
    }
    let text = std::fs::read_to_string(&record).unwrap();
    let mut prompts: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["prompt"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(prompts.len(), 200, "every job ran exactly once");
    prompts.sort();
    prompts.dedup();
    assert_eq!(prompts.len(), 200);
    let workers_used: std::collections::BTreeSet<String> = {
        let mut set = std::collections::BTreeSet::new();
        for e in app.store.executions(500).await.unwrap() {
            set.insert(e.worker_id.unwrap_or_default());
        }
        set
    };
    assert_eq!(
        workers_used.len(),
        2,
        "both workers took jobs: {workers_used:?}"
    );
    for w in &mut workers {
        w.kill9();
    }
    app.shutdown().await;
}
// Servers only: SQLite has a single writer.
server_backend_tests!(
    two_workers_run_each_job_once,
    super::two_workers_run_each_job_once
);
