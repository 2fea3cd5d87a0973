//! Rate limits and cost budgets end to end, on every backend (the tests
//! with several worker processes on MariaDB and PostgreSQL, and on SQLite
//! too where one database file serves them): budgets that hold across
//! workers, the per-execution ceiling stopping a spending agent,
//! fleet-wide concurrency and start rate, ingestion rate limits and
//! budget refusals, alerts written once, reservations reused after a crash.

mod common;

use std::time::{Duration, Instant};

use ccs::db::Backend;
use ccs::limits::budget::today;
use ccs::projects::{ConfigSource, NewProjectRequest};
use ccs::store::limits::BudgetRow;
use common::{Options, TestApp, WorkerProcess, spawn_app};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);

/// A second project of the app's, with its own configuration files.
async fn project(app: &TestApp, name: &str, container: &str, budget: Option<&str>) -> i64 {
    let workflow = budget.map(|b| {
        ConfigSource::Yaml(format!(
            "name: {name}\nagents:\n  - name: a\n    prompt: p\nworkflow:\n  budget:\n{b}"
        ))
    });
    ccs::projects::register(
        &app.store,
        NewProjectRequest {
            name: name.to_owned(),
            path: app.project_dir.path().to_path_buf(),
            description: None,
            container: Some(ConfigSource::Yaml(container.to_owned())),
            workflow,
            repository: None,
            github: None,
        },
    )
    .await
    .expect("project")
    .id
}

/// `POST /webhook/execute` for a project; the status and body.
async fn submit(app: &TestApp, key: &str, body: Value) -> (u16, Value, Option<String>) {
    let res = app
        .client
        .post(app.url("/webhook/execute"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, res.json().await.unwrap_or(Value::Null), retry_after)
}

async fn submit_ok(app: &TestApp, project_id: i64, prompt: &str) -> String {
    let (status, body, _) = submit(
        app,
        &app.admin_key,
        json!({ "projectId": project_id, "prompt": prompt }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    body["executionId"].as_str().unwrap().to_owned()
}

async fn budget_row(app: &TestApp, project_id: i64) -> BudgetRow {
    app.store
        .budget_row(&format!("project:{project_id}"), &today())
        .await
        .unwrap()
        .expect("a budget row for today")
}

/// Waits until every execution is terminal; returns them.
async fn wait_all(app: &TestApp, ids: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for id in ids {
        out.push(app.wait_terminal(id, WAIT).await);
    }
    out
}

// ----- budgets across workers -------------------------------------------------

/// 40 runs at once on two worker processes, each reporting a random cost
/// under its $1 ceiling, against a $12 daily budget that fits about half:
/// the day's spend never passes the budget (sampled throughout), every run
/// ends (succeeded, or refused as `budget_exceeded`), and the settled
/// spend is exactly the sum of the reported costs.
async fn budget_holds_across_workers(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    let limit = 12.0;
    let id = project(
        &app,
        "budgeted",
        "limits: {whenOverBudget: refuse}\n",
        Some("    maxCostPerExecution: $1.00\n    dailyMaxCost: $12.00\n"),
    )
    .await;
    let workers = [WorkerProcess::spawn(&app, 4), WorkerProcess::spawn(&app, 4)];
    let mut ids = Vec::new();
    for i in 0..40 {
        let cost = f64::from(rand::random_range(5..95u32)) / 100.0;
        ids.push(submit_ok(&app, id, &format!("run {i}\n@cost={cost} @sleep=1")).await);
    }
    let start = Instant::now();
    // Samples taken while reservations were held: the invariant was
    // checked mid-flight, not only before and after.
    let mut busy_samples = 0;
    loop {
        if let Some(row) = app
            .store
            .budget_row(&format!("project:{id}"), &today())
            .await
            .unwrap()
        {
            busy_samples += usize::from(row.reserved_usd > 0.0);
            assert!(row.spent_usd <= limit + 1e-9, "{row:?}");
            assert!(row.spent_usd + row.reserved_usd <= limit + 1e-6, "{row:?}");
        }
        let executions = app.store.executions(100).await.unwrap();
        if executions
            .iter()
            .filter(|e| e.project_id == id)
            .all(|e| e.status.is_terminal())
        {
            break;
        }
        assert!(start.elapsed() < WAIT, "runs did not all end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        busy_samples >= 1,
        "never sampled while runs held reservations"
    );
    let done = wait_all(&app, &ids).await;
    let mut spent = 0.0;
    let (mut succeeded, mut refused) = (0, 0);
    for e in &done {
        match e["status"].as_str().unwrap() {
            "succeeded" => {
                succeeded += 1;
                spent += e["costUsd"].as_f64().unwrap();
            }
            "budget_exceeded" => {
                refused += 1;
                assert_eq!(e["costUsd"], 0.0, "{e}");
                assert_eq!(e["attempts"], 0, "{e}");
                let error = e["error"].as_str().unwrap();
                assert!(error.contains("daily budget of $12.00"), "{error}");
            }
            other => panic!("unexpected status {other}: {e}"),
        }
    }
    assert!(
        succeeded >= 5 && refused >= 5,
        "{succeeded} ran, {refused} refused"
    );
    let row = budget_row(&app, id).await;
    assert!((row.spent_usd - spent).abs() < 1e-6, "{row:?} vs {spent}");
    assert!(row.spent_usd <= limit, "{row:?}");
    assert!(row.reserved_usd.abs() < 1e-9, "{row:?}");
    assert_eq!(row.limit_usd, Some(limit));

    // The API reports the same, and one notification says the budget is full.
    let (status, b) = app.get("/api/v1/budget").await;
    assert_eq!(status, 200, "{b}");
    let p = b["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["projectId"] == id)
        .unwrap()
        .clone();
    assert_eq!(p["limitUsd"], 12.0, "{b}");
    assert!(
        (p["spentUsd"].as_f64().unwrap() - spent).abs() < 1e-6,
        "{b}"
    );
    assert!(
        (b["overall"]["spentUsd"].as_f64().unwrap() - spent).abs() < 1e-6,
        "{b}"
    );
    let (_, n) = app.get("/api/v1/notifications").await;
    let full: Vec<&Value> = n["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "budget_full")
        .collect();
    assert_eq!(full.len(), 1, "{n}");
    drop(workers);
    app.shutdown().await;
}

backend_tests!(
    budget_holds_across_workers,
    super::budget_holds_across_workers
);

// ----- the per-execution ceiling ---------------------------------------------

/// An agent that keeps spending ($0.25 a turn) is stopped once its running
/// estimate passes the $0.50 ceiling: `budget_exceeded`, the estimate
/// recorded as its cost and marked as such, and settled as the day's spend.
async fn ceiling_stops_a_spending_agent(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let id = project(
        &app,
        "ceiling",
        "",
        Some("    maxCostPerExecution: $0.50\n"),
    )
    .await;
    let start = Instant::now();
    let run = submit_ok(&app, id, "@turns=20 @sleep=10 @cost=5").await;
    let e = app.wait_terminal(&run, WAIT).await;
    assert_eq!(e["status"], "budget_exceeded", "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(e["costEstimated"], true, "{e}");
    let cost = e["costUsd"].as_f64().unwrap();
    assert!(cost > 0.5 && cost <= 1.0, "{e}");
    assert!(e["error"].as_str().unwrap().contains("ceiling"), "{e}");
    // The log says when and why it was stopped, with the estimate then.
    let (_, logs) = app.get(&format!("/api/v1/executions/{run}/logs")).await;
    let note = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|l| {
            l["text"]
                .as_str()
                .filter(|t| t.starts_with("stopping the agent"))
        })
        .expect("a stop note")
        .to_owned();
    assert!(note.contains("ceiling of $0.50"), "{note}");
    let row = budget_row(&app, id).await;
    assert!((row.spent_usd - cost).abs() < 1e-9, "{row:?}");
    assert!(row.reserved_usd.abs() < 1e-9, "{row:?}");
    app.shutdown().await;
}

backend_tests!(
    ceiling_stops_a_spending_agent,
    super::ceiling_stops_a_spending_agent
);

// ----- concurrency and start rate --------------------------------------------

/// `limits.maxConcurrent: 2` with three worker processes: never more than
/// two of the project's executions run (sampled every 50 ms throughout),
/// the rest wait in the queue without using up attempts, and all succeed.
async fn concurrency_limit_holds_across_workers(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    let id = project(&app, "narrow", "limits: {maxConcurrent: 2}\n", None).await;
    let args = ["--admission-retry", "300ms"];
    let workers = [
        WorkerProcess::spawn_with_args(&app, 2, &args),
        WorkerProcess::spawn_with_args(&app, 2, &args),
        WorkerProcess::spawn_with_args(&app, 2, &args),
    ];
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(submit_ok(&app, id, &format!("run {i} @sleep=1")).await);
    }
    let start = Instant::now();
    let mut most = 0;
    loop {
        let executions = app.store.executions(100).await.unwrap();
        let mine: Vec<_> = executions.iter().filter(|e| e.project_id == id).collect();
        let running = mine
            .iter()
            .filter(|e| e.status == ccs::store::ExecutionStatus::Running)
            .count();
        assert!(running <= 2, "{running} running at once");
        most = most.max(running);
        if mine.iter().all(|e| e.status.is_terminal()) {
            break;
        }
        assert!(start.elapsed() < WAIT, "runs did not all end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        most, 2,
        "the limit was never reached: the test proves nothing"
    );
    for e in wait_all(&app, &ids).await {
        assert_eq!(e["status"], "succeeded", "{e}");
        assert_eq!(e["attempts"], 1, "{e}");
    }
    // Eight runs of a second, two at a time: at least four seconds.
    assert!(
        start.elapsed() >= Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    drop(workers);
    app.shutdown().await;
}

backend_tests!(
    concurrency_limit_holds_across_workers,
    super::concurrency_limit_holds_across_workers
);

/// `limits.maxStartsPerMinute: 3`: three of five quick runs start, the
/// other two stay queued (their minute has not passed), attempts unused.
async fn start_rate_holds(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let id = project(
        &app,
        "slow-start",
        "limits: {maxStartsPerMinute: 3}\n",
        None,
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(submit_ok(&app, id, &format!("run {i}")).await);
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut statuses = Vec::new();
    for id in &ids {
        let (_, e) = app.get(&format!("/api/v1/executions/{id}")).await;
        statuses.push((
            e["status"].as_str().unwrap().to_owned(),
            e["attempts"].as_i64().unwrap(),
        ));
    }
    let ran = statuses.iter().filter(|(s, _)| s == "succeeded").count();
    let waiting = statuses
        .iter()
        .filter(|(s, a)| s == "queued" && *a == 0)
        .count();
    assert_eq!((ran, waiting), (3, 2), "{statuses:?}");
    app.shutdown().await;
}

backend_tests!(start_rate_holds, super::start_rate_holds);

// ----- ingestion --------------------------------------------------------------

/// `--rate-limit-per-key 3/min`: the fourth submission of a key gets 429
/// with `Retry-After` and a JSON error, on either endpoint; another key is
/// unaffected.
async fn ingestion_rate_limit(backend: Backend) {
    let Some(app) = spawn_app(
        backend,
        Options {
            in_process_worker: false,
            rate_limits: ccs::settings::RateLimitArgs {
                per_key: Some("3/min".parse().unwrap()),
                ..Default::default()
            },
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let body = json!({ "projectId": app.project_id, "prompt": "hello" });
    let key = app.key(&[ccs::store::Permission::Execute]).await;
    for _ in 0..3 {
        let (status, b, _) = submit(&app, &key, body.clone()).await;
        assert_eq!(status, 202, "{b}");
    }
    let (status, b, retry_after) = submit(&app, &key, body.clone()).await;
    assert_eq!(status, 429, "{b}");
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=20).contains(&secs), "{secs}");
    assert!(b["error"].as_str().unwrap().contains("3/min"), "{b}");
    // The API endpoint counts against the same key.
    let res = app
        .client
        .post(app.url("/api/v1/executions"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    // Another key is not affected.
    let other = app.key(&[ccs::store::Permission::Execute]).await;
    let (status, b, _) = submit(&app, &other, body).await;
    assert_eq!(status, 202, "{b}");
    app.shutdown().await;
}

backend_tests!(ingestion_rate_limit, super::ingestion_rate_limit);

/// A project whose daily budget is used up: submissions get 402 naming the
/// budget, unless they ask to be queued (they then wait for the next day);
/// raising the limit through the API lets submissions in again.
async fn ingestion_refuses_a_spent_budget(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let id = project(
        &app,
        "spent",
        "",
        Some("    maxCostPerExecution: $0.10\n    dailyMaxCost: $0.10\n"),
    )
    .await;
    let first = submit_ok(&app, id, "@cost=0.10").await;
    assert_eq!(app.wait_terminal(&first, WAIT).await["status"], "succeeded");
    let body = json!({ "projectId": id, "prompt": "more" });
    let (status, b, _) = submit(&app, &app.admin_key, body.clone()).await;
    assert_eq!(status, 402, "{b}");
    let error = b["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("project {id} has used up its daily budget")),
        "{error}"
    );
    assert!(error.contains("queueIfOverBudget"), "{error}");

    // Asked to queue: accepted, and it waits (for tomorrow) in the queue.
    let mut queued = body.clone();
    queued["queueIfOverBudget"] = json!(true);
    let (status, b, _) = submit(&app, &app.admin_key, queued).await;
    assert_eq!(status, 202, "{b}");
    let waiting = b["executionId"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, e) = app.get(&format!("/api/v1/executions/{waiting}")).await;
    assert_eq!(e["status"], "queued", "{e}");
    assert_eq!(e["attempts"], 0, "{e}");

    // Only an admin changes limits.
    let read = app.key(&[ccs::store::Permission::Read]).await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/projects/{id}/budget")))
        .bearer_auth(&read)
        .json(&json!({ "dailyLimitUsd": 5.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .client
        .post(app.url(&format!("/api/v1/projects/{id}/budget")))
        .bearer_auth(&app.admin_key)
        .json(&json!({ "dailyLimitUsd": 5.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, b, _) = submit(&app, &app.admin_key, body).await;
    assert_eq!(status, 202, "{b}");
    let next = b["executionId"].as_str().unwrap().to_owned();
    assert_eq!(app.wait_terminal(&next, WAIT).await["status"], "succeeded");
    let (_, report) = app.get("/api/v1/budget").await;
    let p = report["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["projectId"] == id)
        .unwrap()
        .clone();
    assert_eq!(p["limitUsd"], 5.0, "{report}");
    assert_eq!(p["reservedUsd"], 0.0, "{report}");
    assert!(
        (p["spentUsd"].as_f64().unwrap() - 0.11).abs() < 1e-9,
        "{report}"
    );

    // PUT /api/v1/budget: a global limit, and a wrong scope is a 422.
    let put = |b: Value| {
        app.client
            .put(app.url("/api/v1/budget"))
            .bearer_auth(&app.admin_key)
            .json(&b)
            .send()
    };
    let res = put(json!({ "scope": "global", "dailyLimitUsd": 100.0 }))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = put(json!({ "scope": "team", "dailyLimitUsd": 1.0 }))
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let (_, report) = app.get("/api/v1/budget").await;
    assert_eq!(report["overall"]["limitUsd"], 100.0, "{report}");
    app.shutdown().await;
}

backend_tests!(
    ingestion_refuses_a_spent_budget,
    super::ingestion_refuses_a_spent_budget
);

// ----- alerts -----------------------------------------------------------------

/// `alertAtPercent: 50` of a $1.00 day, ten runs of $0.08: the alert fires
/// once (one notification row) although five runs end past the threshold.
async fn alert_fires_once(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let id = project(
        &app,
        "alerted",
        "",
        Some("    maxCostPerExecution: $0.10\n    dailyMaxCost: $1.00\n    alertAtPercent: 50\n"),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(submit_ok(&app, id, &format!("run {i} @cost=0.08")).await);
    }
    for e in wait_all(&app, &ids).await {
        assert_eq!(e["status"], "succeeded", "{e}");
    }
    let (_, n) = app.get("/api/v1/notifications").await;
    let alerts: Vec<&Value> = n["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "budget_alert")
        .collect();
    assert_eq!(alerts.len(), 1, "{n}");
    assert_eq!(alerts[0]["projectId"], id);
    assert!(alerts[0]["title"].as_str().unwrap().contains("50%"), "{n}");
    // Not used up: no "budget exceeded" notification.
    assert!(
        !n["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "budget_exceeded"),
        "{n}"
    );
    app.shutdown().await;
}

backend_tests!(alert_fires_once, super::alert_fires_once);

// ----- crash ------------------------------------------------------------------

/// A worker killed mid-run holds a reservation; the next attempt (on
/// another worker) reuses it rather than reserving again, and its
/// settlement releases it.
async fn a_killed_workers_reservation_is_reused(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    let id = project(
        &app,
        "crashy",
        "",
        Some("    maxCostPerExecution: $0.40\n    dailyMaxCost: $10.00\n"),
    )
    .await;
    let run = submit_ok(&app, id, "@sleep=3 @cost=0.30").await;
    let mut first = WorkerProcess::spawn(&app, 1);
    let start = Instant::now();
    while !common::process_alive(&run) {
        assert!(start.elapsed() < WAIT, "agent never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill9();
    let _ = first.child.wait().await;
    let row = budget_row(&app, id).await;
    assert!((row.reserved_usd - 0.40).abs() < 1e-9, "{row:?}");
    let mut second = WorkerProcess::spawn(&app, 1);
    // While the second attempt runs, still one reservation.
    let start = Instant::now();
    loop {
        let (_, e) = app.get(&format!("/api/v1/executions/{run}")).await;
        if e["attempts"] == 2 {
            break;
        }
        assert!(start.elapsed() < WAIT, "never retried: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let row = budget_row(&app, id).await;
    assert!((row.reserved_usd - 0.40).abs() < 1e-9, "{row:?}");
    let e = app.wait_terminal(&run, WAIT).await;
    assert_eq!(e["status"], "succeeded", "{e}");
    let row = budget_row(&app, id).await;
    assert!(row.reserved_usd.abs() < 1e-9, "{row:?}");
    assert!((row.spent_usd - 0.30).abs() < 1e-9, "{row:?}");
    second.kill9();
    app.shutdown().await;
}

backend_tests!(
    a_killed_workers_reservation_is_reused,
    super::a_killed_workers_reservation_is_reused
);

// ----- what an agent reports is checked --------------------------------------

/// The agent: a shell script, chosen by its prompt (on stdin, as the CLI
/// reads it with `-p`).
/// `negative` spends $0.15 by its `assistant` line, then claims -$1000 and
/// a second result line; `spend` says it is done at $0.01 and keeps
/// spending $1.50 a message.
const LYING_AGENT: &str = r#"#!/bin/sh
a() { echo '{"type":"assistant","message":{"id":"m'$1'","model":"claude-sonnet-4-5","content":[],"usage":{"output_tokens":'$2'}}}'; }
r() { echo '{"type":"result","subtype":"success","is_error":false,"result":"done","total_cost_usd":'$1'}'; }
case "$(cat)" in
negative) a 0 10000; r -1000; r 0.02 ;;
spend) r 0.01; i=0; while :; do i=$((i+1)); a $i 100000; sleep 0.2; done ;;
esac
"#;

/// A negative reported cost is not taken (the run keeps its own estimate,
/// the log says why, the day's budget is charged the estimate), the first
/// `result` line wins, and the ceiling stop stays armed after it.
async fn a_reported_cost_is_checked(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("agent.sh");
    std::fs::write(&agent, LYING_AGENT).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let work_dir = tempfile::tempdir().unwrap();
    let runner = std::sync::Arc::new(ccs::runner::process::ProcessRunner {
        command: vec![agent.display().to_string()],
        ..common::sandboxed_runner(work_dir.path(), &[])
    });
    let options = Options {
        runner: Some(runner),
        ..Options::default()
    };
    let Some(app) = spawn_app(backend, options).await else {
        return;
    };
    let id = project(
        &app,
        "liar",
        "",
        Some("    maxCostPerExecution: $0.50\n    dailyMaxCost: $10\n"),
    )
    .await;

    let run = submit_ok(&app, id, "negative").await;
    let e = app.wait_terminal(&run, WAIT).await;
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["costUsd"], 0.15, "{e}");
    assert_eq!(e["costEstimated"], true, "{e}");
    let (_, logs) = app.get(&format!("/api/v1/executions/{run}/logs")).await;
    let texts: Vec<&str> = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["text"].as_str())
        .collect();
    assert!(
        texts.iter().any(|t| t.starts_with(
            "not taking the agent's reported cost: $-1000 is negative; \
             recording the run's own estimate of $0.1500"
        )),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("a second result line was ignored")),
        "{texts:?}"
    );
    let row = budget_row(&app, id).await;
    assert_eq!(row.spent_usd, 0.15, "{row:?}");
    assert_eq!(row.reserved_usd, 0.0, "{row:?}");
    let (_, b) = app.get("/api/v1/budget").await;
    let p = b["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["projectId"] == id)
        .unwrap_or_else(|| panic!("{b}"));
    assert_eq!(p["spentUsd"], 0.15, "{b}");
    assert_eq!(p["remainingUsd"], 9.85, "{b}");

    // Done at $0.01 by its own word, then spending on: stopped at the
    // ceiling, charged its estimate.
    let run = submit_ok(&app, id, "spend").await;
    let e = app.wait_terminal(&run, WAIT).await;
    assert_eq!(e["status"], "budget_exceeded", "{e}");
    assert_eq!(e["costUsd"], 1.5, "{e}");
    assert_eq!(e["costEstimated"], true, "{e}");
    let row = budget_row(&app, id).await;
    assert_eq!(row.spent_usd, 1.65, "{row:?}");
    assert_eq!(row.reserved_usd, 0.0, "{row:?}");
    app.shutdown().await;
}

backend_tests!(
    a_reported_cost_is_checked,
    super::a_reported_cost_is_checked
);
