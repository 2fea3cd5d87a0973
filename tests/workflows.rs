//! Multi-agent workflows as chains of jobs, on every backend, with the test
//! agent: the seed's Code Review Workflow, conditions, errors, limits,
//! approval, control, crash recovery and the SSE stream.

mod common;

use std::time::{Duration, Instant};

use ccs::db::Backend;
use common::{Options, TestApp, WorkerProcess, eventually, spawn_app};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);

/// The seed's workflow, verbatim (shared/reference/seed-claude-code-service.md).
const SEED: &str = include_str!("fixtures/seed-workflow.yaml");

/// A container.yaml with the `test` command the seed's validation gate needs.
const SEED_CONTAINER: &str = "tools:\n  allowed: [Read, Write, Edit, Bash]\ntest:\n  command: \"true\"\n  coverage: \"echo 100\"\n";

/// The seed's container.yaml, verbatim, plus that `test` section.
fn seed_container() -> String {
    format!(
        "{}test:\n  command: \"true\"\n  coverage: \"echo 100\"\n",
        include_str!("fixtures/seed-container.yaml")
    )
}

async fn app_with(backend: Backend, workflow: &str, worker: bool) -> Option<TestApp> {
    let app = spawn_app(
        backend,
        Options {
            in_process_worker: worker,
            ..Options::default()
        },
    )
    .await?;
    set_workflow(&app, workflow, SEED_CONTAINER).await;
    Some(app)
}

/// Registers project "wf" with the given configuration.
async fn set_workflow(app: &TestApp, workflow: &str, container: &str) {
    let dir = app.project_dir.path().join("wf");
    std::fs::create_dir_all(dir.join(".claude")).unwrap();
    std::fs::write(dir.join(".claude/workflow.yaml"), workflow).unwrap();
    std::fs::write(dir.join(".claude/container.yaml"), container).unwrap();
    let res = app
        .client
        .post(app.url("/api/v1/projects"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"name": "wf", "path": dir}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}

async fn start(app: &TestApp, context: Value) -> String {
    let res = app
        .client
        .post(app.url("/api/v1/workflows"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"project": "wf", "context": context, "source": "github"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let body: Value = res.json().await.unwrap();
    body["workflowId"].as_str().unwrap().to_owned()
}

async fn run(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/v1/workflows/{id}")).await.1
}

async fn wait_status(app: &TestApp, id: &str, wanted: &[&str]) -> Value {
    eventually(&format!("run {id} to reach {wanted:?}"), || async {
        let r = run(app, id).await;
        wanted
            .contains(&r["status"].as_str().unwrap_or_default())
            .then_some(r)
    })
    .await
}

async fn control(app: &TestApp, id: &str, action: &str) -> u16 {
    app.post_empty(&format!("/api/v1/workflows/{id}/{action}"))
        .await
}

fn agents(r: &Value) -> Vec<(String, String)> {
    r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["agent"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn steps(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, s)| ((*a).to_owned(), (*s).to_owned()))
        .collect()
}

async fn seed_code_review_runs(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    set_workflow(&app, SEED, &seed_container()).await;
    // The seed's MCP servers reference ${GITHUB_TOKEN} and ${LINEAR_API_KEY}.
    let secrets = app.work_dir.path().join("secrets.env");
    std::fs::write(&secrets, "GITHUB_TOKEN=ghp_test\nLINEAR_API_KEY=lin_test\n").unwrap();
    let secrets = secrets.display().to_string();
    let mut worker = WorkerProcess::spawn_with_args(&app, 4, &["--secrets-file", &secrets]);
    let id = start(
        &app,
        json!({"PR_NUMBER": 123, "PR_DIFF": "@cost=0.05 diff --git a/x b/x"}),
    )
    .await;
    let r = wait_status(&app, &id, &["succeeded", "failed"]).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(
        agents(&r),
        steps(&[
            ("analyzer", "succeeded"),
            ("reviewer", "succeeded"),
            ("commenter", "succeeded")
        ])
    );
    // Each agent received its predecessors' outputs in its prompt.
    let prompt = |i: usize| {
        let exec = r["steps"][i]["executionId"].as_str().unwrap().to_owned();
        let app = &app;
        async move {
            app.get(&format!("/api/v1/executions/{exec}")).await.1["prompt"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let analyzer = prompt(0).await;
    assert!(
        analyzer.contains("Analyze the code changes in @cost=0.05 diff --git a/x b/x."),
        "{analyzer}"
    );
    let analysis_result = r["context"]["analysis_result"].as_str().unwrap();
    assert_eq!(
        analysis_result,
        "Analyze the code changes in @cost=0.05 diff --git a/x b/x."
    );
    let reviewer = prompt(1).await;
    assert!(
        reviewer.contains(&format!("Based on the analysis: {analysis_result}")),
        "{reviewer}"
    );
    let review_text = r["context"]["review_text"].as_str().unwrap();
    let commenter = prompt(2).await;
    assert!(
        commenter.contains("Post this review to GitHub PR #123:"),
        "{commenter}"
    );
    assert!(commenter.contains(review_text), "{commenter}");
    // The run's cost is the sum of its steps'.
    let sum: f64 = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["costUsd"].as_f64().unwrap())
        .sum();
    assert!((r["costUsd"].as_f64().unwrap() - sum).abs() < 1e-9, "{r}");
    assert!((sum - 0.15).abs() < 1e-9, "each step costs 0.05: {r}");
    worker.kill9();
    app.shutdown().await;
}
backend_tests!(seed_code_review_runs, super::seed_code_review_runs);

const BRANCHY: &str = r#"
name: branchy
agents:
  - name: triage
    prompt: "@result=${VERDICT}"
    output: verdict
    next:
      - if: "verdict.contains('LGTM')"
        then: approve
      - else: fix
  - name: fix
    prompt: "fix it"
  - name: approve
    prompt: "approve it"
"#;

async fn conditions_take_each_branch(backend: Backend) {
    let Some(app) = app_with(backend, BRANCHY, true).await else {
        return;
    };
    let good = start(&app, json!({"VERDICT": "LGTM, ship it"})).await;
    let bad = start(&app, json!({"VERDICT": "needs work"})).await;
    let g = wait_status(&app, &good, &["succeeded", "failed"]).await;
    let b = wait_status(&app, &bad, &["succeeded", "failed"]).await;
    assert_eq!(
        agents(&g),
        steps(&[("triage", "succeeded"), ("approve", "succeeded")])
    );
    assert_eq!(
        agents(&b),
        steps(&[("triage", "succeeded"), ("fix", "succeeded")])
    );
    app.shutdown().await;
}
backend_tests!(
    conditions_take_each_branch,
    super::conditions_take_each_branch
);

const ERRORS: &str = r#"
name: errors
agents:
  - name: flaky
    prompt: "flaky ${MODE}"
    onError:
      action: retry
      retries: 1
      next: fallback
    next: done
  - name: fallback
    prompt: "fallback"
  - name: done
    prompt: "done"
"#;

async fn retry_then_success_or_fallback(backend: Backend) {
    let Some(app) = app_with(backend, ERRORS, true).await else {
        return;
    };
    // In the directory every sandbox of the test worker sees.
    let marker = app
        .work_dir
        .path()
        .join("shared")
        .join(format!("m-{}", uuid::Uuid::new_v4().simple()));
    let once = start(
        &app,
        json!({"MODE": format!("@fail-once={}", marker.display())}),
    )
    .await;
    let always = start(&app, json!({"MODE": "@fail"})).await;
    let o = wait_status(&app, &once, &["succeeded", "failed"]).await;
    assert_eq!(
        agents(&o),
        steps(&[
            ("flaky", "failed"),
            ("flaky", "succeeded"),
            ("done", "succeeded")
        ]),
        "{o}"
    );
    assert_eq!(o["steps"][1]["attempt"], 2);
    let a = wait_status(&app, &always, &["succeeded", "failed"]).await;
    assert_eq!(
        agents(&a),
        steps(&[
            ("flaky", "failed"),
            ("flaky", "failed"),
            ("fallback", "succeeded")
        ]),
        "{a}"
    );
    assert_eq!(a["status"], "succeeded");
    app.shutdown().await;
}
backend_tests!(
    retry_then_success_or_fallback,
    super::retry_then_success_or_fallback
);

const LOOPING: &str = r#"
name: looping
agents:
  - name: a
    prompt: "a ${MODE}"
    next: b
    onError:
      action: continue
  - name: b
    prompt: "b ${MODE}"
    next: a
    onError:
      action: continue
workflow:
  maxIterations: 3
  maxConsecutiveFailures: 3
"#;

async fn loops_are_stopped(backend: Backend) {
    let Some(app) = app_with(backend, LOOPING, true).await else {
        return;
    };
    let iterations = start(&app, json!({"MODE": "ok"})).await;
    let failures = start(&app, json!({"MODE": "@fail"})).await;
    let i = wait_status(&app, &iterations, &["succeeded", "failed"]).await;
    assert_eq!(i["status"], "failed");
    assert!(
        i["error"].as_str().unwrap().contains("maxIterations"),
        "{i}"
    );
    assert_eq!(
        i["steps"].as_array().unwrap().len(),
        6,
        "3 iterations of a, b: {i}"
    );
    let f = wait_status(&app, &failures, &["succeeded", "failed"]).await;
    assert_eq!(f["status"], "failed");
    assert!(
        f["error"]
            .as_str()
            .unwrap()
            .contains("maxConsecutiveFailures"),
        "{f}"
    );
    assert_eq!(f["steps"].as_array().unwrap().len(), 3, "{f}");
    app.shutdown().await;
}
backend_tests!(loops_are_stopped, super::loops_are_stopped);

const SLOW: &str = r#"
name: slow
agents:
  - name: hang
    prompt: "@hang"
workflow:
  maxRuntime: 3s
"#;

async fn max_runtime_kills_a_hanging_step(backend: Backend) {
    let Some(app) = app_with(backend, SLOW, true).await else {
        return;
    };
    let id = start(&app, json!({})).await;
    let r = wait_status(&app, &id, &["succeeded", "failed"]).await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(agents(&r), steps(&[("hang", "timed_out")]));
    app.shutdown().await;
}
backend_tests!(
    max_runtime_kills_a_hanging_step,
    super::max_runtime_kills_a_hanging_step
);

const GATED: &str = r#"
name: gated
agents:
  - name: build
    prompt: "build"
    next: deploy
  - name: deploy
    prompt: "deploy"
    action: deploy
workflow:
  safety:
    requireHumanApprovalFor:
      - action: deploy
"#;

async fn approval_gate_waits(backend: Backend) {
    let Some(app) = app_with(backend, GATED, true).await else {
        return;
    };
    let yes = start(&app, json!({})).await;
    let no = start(&app, json!({})).await;
    for id in [&yes, &no] {
        let r = wait_status(&app, id, &["awaiting_approval"]).await;
        assert_eq!(
            agents(&r),
            steps(&[("build", "succeeded"), ("deploy", "awaiting_approval")])
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(run(&app, &yes).await["status"], "awaiting_approval");
    assert_eq!(control(&app, &yes, "approve").await, 202);
    assert_eq!(control(&app, &no, "reject").await, 202);
    let y = wait_status(&app, &yes, &["succeeded", "failed"]).await;
    assert_eq!(
        agents(&y),
        steps(&[("build", "succeeded"), ("deploy", "succeeded")])
    );
    let n = run(&app, &no).await;
    assert_eq!(n["status"], "cancelled", "{n}");
    assert_eq!(
        agents(&n),
        steps(&[("build", "succeeded"), ("deploy", "rejected")])
    );
    // Approving what does not wait is a conflict.
    assert_eq!(control(&app, &yes, "approve").await, 409);
    app.shutdown().await;
}
backend_tests!(approval_gate_waits, super::approval_gate_waits);

const TWO: &str = r#"
name: two
agents:
  - name: first
    prompt: "first ${SLEEP}"
    next: second
  - name: second
    prompt: "second"
"#;

async fn pause_resume_cancel(backend: Backend) {
    let Some(app) = app_with(backend, TWO, false).await else {
        return;
    };
    // Queued: pause before any worker exists; cancel another one.
    let paused = start(&app, json!({"SLEEP": "@sleep=1.5"})).await;
    let cancelled_queued = start(&app, json!({"SLEEP": ""})).await;
    assert_eq!(control(&app, &paused, "pause").await, 202);
    assert_eq!(control(&app, &cancelled_queued, "cancel").await, 202);
    assert_eq!(control(&app, &paused, "pause").await, 409, "already paused");
    let mut worker = WorkerProcess::spawn(&app, 4);
    // The worker takes the step's job and parks it.
    let start_t = Instant::now();
    loop {
        let p = run(&app, &paused).await;
        assert_eq!(p["status"], "paused");
        if agents(&p) == steps(&[("first", "pending")]) {
            break;
        }
        assert_eq!(
            agents(&p),
            steps(&[("first", "queued")]),
            "no step starts while paused"
        );
        assert!(start_t.elapsed() < WAIT, "{p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(run(&app, &cancelled_queued).await["status"], "cancelled");
    // Resume: the parked step runs; pause while it runs: it finishes, the
    // next one waits.
    assert_eq!(control(&app, &paused, "resume").await, 202);
    wait_status(&app, &paused, &["running"]).await;
    eventually("the first step to run", || async {
        (run(&app, &paused).await["steps"][0]["status"] == "running").then_some(())
    })
    .await;
    assert_eq!(control(&app, &paused, "pause").await, 202);
    let r = eventually("the second step", || async {
        let r = run(&app, &paused).await;
        (r["steps"].as_array().unwrap().len() == 2).then_some(r)
    })
    .await;
    assert_eq!(r["status"], "paused");
    assert_eq!(
        agents(&r),
        steps(&[("first", "succeeded"), ("second", "pending")])
    );
    assert_eq!(control(&app, &paused, "resume").await, 202);
    let done = wait_status(&app, &paused, &["succeeded", "failed"]).await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(control(&app, &paused, "cancel").await, 409, "already over");
    // Cancel while a step runs: the agent is stopped.
    let running = start(&app, json!({"SLEEP": "@hang"})).await;
    eventually("the step to run", || async {
        (run(&app, &running).await["steps"][0]["status"] == "running").then_some(())
    })
    .await;
    assert_eq!(control(&app, &running, "cancel").await, 202);
    let exec = run(&app, &running).await["steps"][0]["executionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = app.wait_terminal(&exec, WAIT).await;
    assert_eq!(e["status"], "cancelled", "{e}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = run(&app, &running).await;
    assert_eq!(r["status"], "cancelled");
    assert_eq!(
        r["steps"].as_array().unwrap().len(),
        1,
        "nothing after a cancel: {r}"
    );
    worker.kill9();
    app.shutdown().await;
}
backend_tests!(pause_resume_cancel, super::pause_resume_cancel);

const THREE: &str = r#"
name: three
agents:
  - name: one
    prompt: "one ${MARK} @sleep=${SLEEP}"
    next: two
  - name: two
    prompt: "two ${MARK} @sleep=${SLEEP}"
    next: three
  - name: three
    prompt: "three ${MARK}"
"#;

async fn killed_worker_loses_nothing(backend: Backend) {
    let Some(app) = app_with(backend, THREE, false).await else {
        return;
    };
    let record = app.work_dir.path().join("record.jsonl");
    let mark = format!("mark-{}", uuid::Uuid::new_v4().simple());
    let id = start(&app, json!({"MARK": mark, "SLEEP": "2"})).await;
    let mut first = WorkerProcess::spawn_recording(&app, 2, &record);
    // Kill it while step two runs.
    eventually("step two to run", || async {
        let r = run(&app, &id).await;
        (r["steps"].as_array().unwrap().len() == 2 && r["steps"][1]["status"] == "running")
            .then_some(())
    })
    .await;
    first.kill9();
    let _ = first.child.wait().await;
    let mut second = WorkerProcess::spawn_recording(&app, 2, &record);
    let r = wait_status(&app, &id, &["succeeded", "failed"]).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(
        agents(&r),
        steps(&[
            ("one", "succeeded"),
            ("two", "succeeded"),
            ("three", "succeeded")
        ])
    );
    // Steps one and three ran once; two ran again only if its agent had
    // started before the kill (the step is marked running just before).
    let text = std::fs::read_to_string(&record).unwrap();
    let prompts: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["prompt"].as_str().map(str::to_owned))
        .filter(|p| p.contains(&mark))
        .collect();
    let count = |agent: &str| prompts.iter().filter(|p| p.starts_with(agent)).count();
    assert_eq!((count("one"), count("three")), (1, 1), "{prompts:?}");
    assert!((1..=2).contains(&count("two")), "{prompts:?}");
    let jobs: i64 = app
        .store
        .queue_counts()
        .await
        .unwrap()
        .iter()
        .filter(|(q, _, _)| {
            q == <ccs::jobs::workflow_step::WorkflowStepJob as ccs::jobs::Job>::QUEUE
        })
        .map(|(_, _, n)| n)
        .sum();
    assert_eq!(jobs, 3, "one job per step, none twice");
    second.kill9();
    app.shutdown().await;
}
backend_tests!(
    killed_worker_loses_nothing,
    super::killed_worker_loses_nothing
);

/// Reads an SSE stream until it ends; returns (id, event) pairs.
async fn read_sse(
    app: &TestApp,
    path: &str,
    last_id: Option<&str>,
    limit: usize,
) -> Vec<(i64, String)> {
    let mut req = app.client.get(app.url(path)).bearer_auth(&app.admin_key);
    if let Some(id) = last_id {
        req = req.header("Last-Event-ID", id);
    }
    let mut res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    while out.len() < limit && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(30), res.chunk()).await {
            Ok(Ok(Some(chunk))) => buf.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut id = None;
            let mut event = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                }
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_owned());
                }
            }
            if let (Some(id), Some(event)) = (id, event) {
                out.push((id, event));
            }
        }
    }
    out
}

async fn sse_streams_every_step_in_order(backend: Backend) {
    let Some(app) = app_with(backend, THREE, true).await else {
        return;
    };
    let id = start(&app, json!({"MARK": "m", "SLEEP": "0.2"})).await;
    let path = format!("/api/v1/workflows/{id}/events");
    let all = read_sse(&app, &path, None, usize::MAX).await;
    let kinds: Vec<&str> = all.iter().map(|(_, k)| k.as_str()).collect();
    let ids: Vec<i64> = all.iter().map(|(i, _)| *i).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    for agent_step in 0..3 {
        let started = kinds
            .iter()
            .enumerate()
            .filter(|(_, k)| **k == "step_started")
            .nth(agent_step)
            .map(|(i, _)| i);
        let finished = kinds
            .iter()
            .enumerate()
            .filter(|(_, k)| **k == "step_finished")
            .nth(agent_step)
            .map(|(i, _)| i);
        assert!(started.unwrap() < finished.unwrap(), "{kinds:?}");
    }
    assert_eq!(kinds.last(), Some(&"run_succeeded"), "{kinds:?}");
    // Reconnecting after any event misses nothing.
    let cut = all[all.len() / 2].0;
    let rest = read_sse(&app, &path, Some(&cut.to_string()), usize::MAX).await;
    assert_eq!(
        rest,
        all.iter()
            .filter(|(i, _)| *i > cut)
            .cloned()
            .collect::<Vec<_>>()
    );
    // An execution's log stream ends with its status.
    let exec = run(&app, &id).await["steps"][0]["executionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let logs = read_sse(
        &app,
        &format!("/api/v1/executions/{exec}/events"),
        None,
        usize::MAX,
    )
    .await;
    assert!(logs.iter().any(|(_, k)| k == "log"));
    let tail = read_sse(
        &app,
        &format!("/api/v1/executions/{exec}/events"),
        Some(&logs[1].0.to_string()),
        usize::MAX,
    )
    .await;
    assert_eq!(tail.first().map(|t| t.0), Some(logs[2].0));
    app.shutdown().await;
}
backend_tests!(
    sse_streams_every_step_in_order,
    super::sse_streams_every_step_in_order
);

async fn invalid_workflows_are_refused_with_lines(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    for (yaml, needle) in [
        (
            "name: x\nagents:\n  - name: a\n    prompt: p\n    next: ghost\n",
            ".claude/workflow.yaml:5:",
        ),
        (
            "name: x\nagents:\n  - name: a\n    prompt: p\n  - name: island\n    prompt: q\n",
            "island",
        ),
        (
            "name: x\nagents:\n  - name: a\n    prompt: \"${nobody_writes_this}\"\n",
            "nobody_writes_this",
        ),
        (
            "name: x\nagents:\n  - name: a\n    prompt: p\n    next:\n      - if: \"a ==\"\n        then: a\n",
            ".claude/workflow.yaml:6:",
        ),
    ] {
        let res = app
            .client
            .post(app.url("/api/v1/projects"))
            .bearer_auth(&app.admin_key)
            .json(&json!({"name": "bad", "path": app.project_dir.path(), "workflowConfig": yaml}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422);
        let e: Value = res.json().await.unwrap();
        let e = e["error"].as_str().unwrap();
        assert!(e.contains(needle), "{yaml}\n→ {e}");
        assert!(e.contains(".claude/workflow.yaml:"), "{e}");
    }
    // A context that lacks a variable the prompts need.
    set_workflow(&app, SEED, &seed_container()).await;
    let res = app
        .client
        .post(app.url("/webhook/execute"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"project": "wf", "workflow": true, "context": {"PR_NUMBER": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let e: Value = res.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("PR_DIFF"), "{e}");
    // And with it, the webhook starts a run.
    let res = app
        .client
        .post(app.url("/webhook/execute"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"project": "wf", "workflow": true, "context": {"PR_NUMBER": 1, "PR_DIFF": "d"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert!(body["workflowId"].is_string(), "{body}");
    app.shutdown().await;
}
backend_tests!(
    invalid_workflows_are_refused_with_lines,
    super::invalid_workflows_are_refused_with_lines
);

const PRICEY: &str = r#"
name: pricey
agents:
  - name: spend
    prompt: "spend ${WORK}"
    next: after
  - name: after
    prompt: "after"
workflow:
  budget:
    maxCostPerExecution: $0.50
    pauseOnExceed: true
"#;

async fn budget_pause_and_resume_after_a_raise(backend: Backend) {
    let Some(app) = app_with(backend, PRICEY, true).await else {
        return;
    };
    let id = start(&app, json!({"WORK": "@turns=10 @sleep=2 @cost=2"})).await;
    let r = wait_status(&app, &id, &["budget_exceeded", "succeeded", "failed"]).await;
    assert_eq!(r["status"], "budget_exceeded", "{r}");
    assert_eq!(
        agents(&r),
        steps(&[("spend", "budget_exceeded"), ("spend", "pending")])
    );
    // Still paused a moment later: nothing runs by itself.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(run(&app, &id).await["status"], "budget_exceeded");
    // Raise the ceiling, resume: the step runs again and the run completes.
    let (_, wf) = app.get(&format!("/api/v1/workflows/{id}")).await;
    let project = wf["projectId"].as_i64().unwrap();
    let res = app
        .client
        .post(app.url(&format!("/api/v1/projects/{project}/budget")))
        .bearer_auth(&app.admin_key)
        .json(&json!({"maxCostPerExecutionUsd": 5.0}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    assert_eq!(control(&app, &id, "resume").await, 202);
    let r = wait_status(&app, &id, &["succeeded", "failed", "budget_exceeded"]).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(
        agents(&r),
        steps(&[
            ("spend", "budget_exceeded"),
            ("spend", "succeeded"),
            ("after", "succeeded")
        ])
    );
    app.shutdown().await;
}
backend_tests!(
    budget_pause_and_resume_after_a_raise,
    super::budget_pause_and_resume_after_a_raise
);

/// `safety.validation`: the coder's change is checked with the project's
/// tests and coverage; a failed gate routes to `onError.next`.
const VALIDATED: &str = r#"
name: gated
agents:
  - name: coder
    prompt: "@write=fixed.txt ${CHANGE}"
    onError:
      action: notify
      next: fixer
    next: reviewer
  - name: fixer
    prompt: "@write=fixed.txt PASS 90%"
    next: reviewer
  - name: reviewer
    prompt: "review only"
workflow:
  safety:
    validation:
      requireTests: true
      requirePassingTests: true
      minCoverage: 80
"#;

/// The tests pass when the agent wrote PASS; the coverage is the
/// percentage it wrote.
const VALIDATED_CONTAINER: &str = "test:\n  command: \"grep -q PASS fixed.txt && echo tests passed\"\n  coverage: \"cat fixed.txt\"\n";

async fn validation_gate_checks_changed_work(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    set_workflow(&app, VALIDATED, VALIDATED_CONTAINER).await;
    let good = start(&app, json!({"CHANGE": "PASS 91.5%"})).await;
    let broken = start(&app, json!({"CHANGE": "BROKEN 95%"})).await;
    let thin = start(&app, json!({"CHANGE": "PASS 42%"})).await;

    let g = wait_status(&app, &good, &["succeeded", "failed"]).await;
    assert_eq!(
        agents(&g),
        steps(&[("coder", "succeeded"), ("reviewer", "succeeded")]),
        "{g}"
    );
    let execution = |r: &Value, i: usize| {
        let id = r["steps"][i]["executionId"].as_str().unwrap().to_owned();
        let app = &app;
        async move { app.get(&format!("/api/v1/executions/{id}")).await.1 }
    };
    let coder = execution(&g, 0).await;
    let v = &coder["validation"];
    assert_eq!(v["passed"], true, "{coder}");
    assert_eq!(v["tests"]["exitCode"], 0, "{coder}");
    assert_eq!(v["coverage"]["percent"], 91.5, "{coder}");
    assert_eq!(v["coverage"]["min"], 80.0, "{coder}");
    // The checks' output is in the step's log, marked as such.
    let id = coder["id"].as_str().unwrap();
    let (_, logs) = app.get(&format!("/api/v1/executions/{id}/logs")).await;
    let lines: Vec<(String, String)> = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_owned(),
                l["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for wanted in [
        ("check", "tests passed"),
        ("check", "@write=fixed.txt PASS 91.5%"),
        ("ccs", "validation gate passed"),
    ] {
        assert!(
            lines.iter().any(|(k, t)| k == wanted.0 && t == wanted.1),
            "{wanted:?} not in {lines:?}"
        );
    }
    // The reviewer changed nothing: nothing to check.
    let reviewer = execution(&g, 1).await;
    assert_eq!(
        reviewer["validation"]["skipped"], "the agent changed no files",
        "{reviewer}"
    );

    let b = wait_status(&app, &broken, &["succeeded", "failed"]).await;
    assert_eq!(
        agents(&b),
        steps(&[
            ("coder", "failed"),
            ("fixer", "succeeded"),
            ("reviewer", "succeeded")
        ]),
        "{b}"
    );
    let coder = execution(&b, 0).await;
    assert_eq!(
        coder["error"], "validation gate failed: the tests failed (exit code 1)",
        "{coder}"
    );
    assert_eq!(coder["validation"]["passed"], false);
    assert_eq!(coder["validation"]["tests"]["exitCode"], 1);
    // The agent's own result is kept.
    assert!(
        coder["result"].as_str().unwrap().contains("BROKEN"),
        "{coder}"
    );
    assert_eq!(execution(&b, 1).await["validation"]["passed"], true);

    let t = wait_status(&app, &thin, &["succeeded", "failed"]).await;
    assert_eq!(agents(&t)[0], ("coder".into(), "failed".into()), "{t}");
    assert_eq!(
        execution(&t, 0).await["error"],
        "validation gate failed: coverage 42% is below minCoverage 80%"
    );
    app.shutdown().await;
}
backend_tests!(
    validation_gate_checks_changed_work,
    super::validation_gate_checks_changed_work
);

/// Steps share one evolving workspace: each starts from what the one
/// before it left, whichever worker runs it.
const SHARED: &str = r#"
name: shared
agents:
  - name: planner
    prompt: "@write=notes/plan.txt plan for ${TOPIC}"
    next: tester
  - name: tester
    prompt: "@read=notes/plan.txt @write=tests.txt @result=tests written"
    output: tester_saw
    next: reviewer
  - name: reviewer
    prompt: "@read=notes/plan.txt @read=tests.txt @result=reviewed"
    output: reviewer_saw
"#;

async fn steps_share_the_workspace(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    set_workflow(&app, SHARED, SEED_CONTAINER).await;
    // Two worker processes: the steps may land on either.
    let mut a = WorkerProcess::spawn(&app, 1);
    let mut b = WorkerProcess::spawn(&app, 1);
    let id = start(&app, json!({"TOPIC": "caching"})).await;
    let r = wait_status(&app, &id, &["succeeded", "failed"]).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    let tester = r["context"]["tester_saw"].as_str().unwrap();
    assert!(
        tester.contains("READ notes/plan.txt: @write=notes/plan.txt plan for caching"),
        "{tester}"
    );
    let reviewer = r["context"]["reviewer_saw"].as_str().unwrap();
    assert!(
        reviewer.contains("READ notes/plan.txt: @write=notes/plan.txt plan for caching"),
        "{reviewer}"
    );
    assert!(
        reviewer.contains("READ tests.txt: @read=notes/plan.txt @write=tests.txt"),
        "{reviewer}"
    );
    // Each step's log lists what it changed itself, not what it was given.
    for (i, wanted) in [(0, "notes/plan.txt"), (1, "tests.txt")] {
        let exec = r["steps"][i]["executionId"].as_str().unwrap();
        let (_, logs) = app.get(&format!("/api/v1/executions/{exec}/logs")).await;
        let texts: Vec<&str> = logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["text"].as_str())
            .collect();
        assert!(
            texts.contains(&format!("changed files: {wanted}").as_str()),
            "step {i}: {texts:?}"
        );
    }
    // The project itself is untouched.
    let project = app.project_dir.path().join("wf");
    assert!(!project.join("notes").exists());
    assert!(!project.join("tests.txt").exists());
    a.kill9();
    b.kill9();
    app.shutdown().await;
}
backend_tests!(steps_share_the_workspace, super::steps_share_the_workspace);
