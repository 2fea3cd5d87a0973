//! Acceptance tests with the real Claude Code CLI (the pinned version,
//! `scripts/install-claude-cli.sh`) in the loop, talking to the model
//! stand-in (`ccs-model-stub`) instead of Anthropic's API: the pipeline end
//! to end, the tool grant, the cost ceiling, an overloaded model, cancel and
//! timeout of the CLI's process tree, and ccs's live cost estimate against
//! the CLI's own `total_cost_usd`. One test runs the CLI in its agent image
//! (`scripts/build-claude-image.sh`) under the Docker runner, another in the
//! process runner's bubblewrap sandbox, both behind the egress proxy.
//!
//! The CLI is found at `CCS_CLAUDE_CLI` or `.ccs-tools/claude`; without it
//! the tests are skipped, and with `CI=true` they fail (so does a missing
//! Docker, or a failed image build, for the Docker one). They run on SQLite
//! with the process runner: what they check is the CLI's behaviour under
//! ccs, not the database (the other suites run every backend).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccs::db::Backend;
use ccs::runner::process::ProcessRunner;
use ccs::runner::stream_json::{CostEstimator, Event, PriceTable, parse_line};
use ccs_model_stub::{Block, ModelStub, Scenario, Step, StepUsage};
use common::{Options, TestApp, spawn_app};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);

/// The pinned CLI, or `None` (skip) when it is not installed; with
/// `CI=true` a missing CLI fails the test.
fn claude() -> Option<PathBuf> {
    let path = std::env::var_os("CCS_CLAUDE_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".ccs-tools/claude"));
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true: the Claude Code CLI is required, not found at {} (scripts/install-claude-cli.sh)",
        path.display()
    );
    eprintln!(
        "skipped: no Claude Code CLI at {} (scripts/install-claude-cli.sh)",
        path.display()
    );
    None
}

/// A container.yaml pointing the CLI at `stub`, then `extra`.
fn container_yaml(stub: &ModelStub, extra: &str) -> String {
    let mut yaml = String::from("env:\n");
    for (name, value) in stub.cli_env() {
        yaml.push_str(&format!("  {name}: \"{value}\"\n"));
    }
    // The CLI retries an overloaded model 10 times over minutes by default.
    yaml.push_str("  CLAUDE_CODE_MAX_RETRIES: \"2\"\n");
    yaml.push_str(extra);
    yaml
}

/// An app whose in-process worker runs the real CLI with the process runner.
struct RealCliApp {
    app: TestApp,
    _runs: tempfile::TempDir,
}

async fn app_with(stub: &ModelStub, extra_yaml: &str) -> Option<RealCliApp> {
    let cli = claude()?;
    let runs = tempfile::tempdir().unwrap();
    // The host runner: these tests look at the CLI's behaviour under ccs;
    // the CLI under the bubblewrap sandbox is
    // `the_real_cli_runs_in_the_bubblewrap_sandbox`.
    let runner = ProcessRunner {
        command: vec![cli.display().to_string()],
        work_dir: runs.path().to_path_buf(),
        pass_env: Vec::new(),
        isolation: ccs::runner::process::Isolation::Host,
    };
    let app = spawn_app(
        Backend::Sqlite,
        Options {
            container_yaml: Some(container_yaml(stub, extra_yaml)),
            runner: Some(Arc::new(runner)),
            ..Options::default()
        },
    )
    .await?;
    Some(RealCliApp { app, _runs: runs })
}

/// The execution's log rows.
async fn logs(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/api/v1/executions/{id}/logs")).await;
    assert_eq!(status, 200);
    body["logs"].as_array().cloned().unwrap_or_default()
}

/// The CLI's `result` line, from the log.
fn result_line(logs: &[Value]) -> Value {
    logs.iter()
        .filter(|l| l["kind"] == "result")
        .find_map(|l| serde_json::from_str(l["text"].as_str()?).ok())
        .expect("a result line in the log")
}

fn log_text(logs: &[Value]) -> String {
    logs.iter()
        .map(|l| {
            format!(
                "[{}] {}",
                l["kind"].as_str().unwrap_or(""),
                l["text"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The built-in tools offered to the model, without the CLI's internal
/// placeholder.
fn offered(request: &ccs_model_stub::Recorded) -> Vec<String> {
    let mut tools: Vec<String> = request
        .tool_names()
        .into_iter()
        .filter(|t| t != "DeferredToolPlaceholder")
        .collect();
    tools.sort();
    tools
}

/// Waits until `stub` has received `n` message requests.
async fn wait_requests(stub: &ModelStub, n: usize) {
    let start = Instant::now();
    while stub.message_requests().len() < n {
        assert!(start.elapsed() < WAIT, "the CLI never asked the model");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_real_cli_runs_a_prompt_end_to_end() {
    let mut first = Step::tool_use(
        "Write",
        json!({"file_path": "hello.txt", "content": "hello from the model\n"}),
    );
    first
        .content
        .insert(0, Block::Text("I'll write it.".into()));
    let stub = ModelStub::start(Scenario::new(vec![
        first.with_usage(StepUsage {
            input_tokens: 1000,
            output_tokens: 200,
            cache_creation_input_tokens: 3000,
            cache_read_input_tokens: 0,
        }),
        Step::text("Wrote hello.txt.").with_usage(StepUsage {
            input_tokens: 50,
            output_tokens: 100,
            cache_creation_input_tokens: 500,
            cache_read_input_tokens: 3000,
        }),
    ]))
    .await
    .unwrap();
    let yaml = "tools:\n  allowed: [Read, Write]\nagent:\n  model: sonnet\n  maxTurns: 5\n";
    let Some(RealCliApp { app, _runs }) = app_with(&stub, yaml).await else {
        return;
    };
    let prompt = "Create hello.txt -- with a greeting; --help is not an option here";
    let id = app.submit(prompt).await;
    let e = app.wait_terminal(&id, WAIT).await;
    let logs = logs(&app, &id).await;
    let text = log_text(&logs);
    assert_eq!(e["status"], "succeeded", "{e}\n{text}");
    assert_eq!(e["result"], "Wrote hello.txt.");
    assert_eq!(e["numTurns"], 2);
    assert!(text.contains("[ccs] changed files: hello.txt"), "{text}");
    // The CLI's own cost is the recorded one: Sonnet 5.5 at the CLI's rates.
    let result = result_line(&logs);
    let reported = result["total_cost_usd"].as_f64().unwrap();
    assert_eq!(e["costUsd"].as_f64().unwrap(), reported);
    assert_eq!(e["costEstimated"], false);
    let expected = (1050.0 * 2.0 + 300.0 * 10.0 + 3500.0 * 2.5 + 3000.0 * 0.1) / 1e6;
    assert!(
        (reported - expected).abs() < 1e-9,
        "{reported} vs {expected}"
    );
    // Partial messages are read for cost, not logged one per chunk.
    assert!(!logs.iter().any(|l| l["kind"] == "stream"), "{text}");
    assert!(!text.contains("content_block_delta"), "{text}");

    // What the CLI sent: only the granted tools, the prompt (from stdin),
    // the model asked for, no MCP tools; nothing but model turns.
    let requests = stub.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    for request in &requests {
        assert_eq!(request.uri, "/v1/messages?beta=true");
        assert_eq!(request.model().as_deref(), Some("claude-sonnet-5-5"));
        assert_eq!(offered(request), ["Read", "Write"]);
        assert!(!request.tool_names().iter().any(|t| t.starts_with("mcp__")));
        assert!(
            request.user_texts().iter().any(|t| t.contains(prompt)),
            "{:?}",
            request.user_texts()
        );
        assert!(request.system_text().len() > 1000);
        assert_eq!(request.headers["x-api-key"], "sk-ant-stub-key");
    }
    // The second turn carried the Write tool's real result.
    assert!(
        requests[1]
            .user_texts()
            .iter()
            .any(|t| t.contains("File created successfully")),
        "{:?}",
        requests[1].user_texts()
    );
    // The project itself is untouched.
    assert!(!app.project_dir.path().join("hello.txt").exists());
    app.shutdown().await;
}

#[tokio::test]
async fn a_tool_outside_the_grant_is_neither_offered_nor_run() {
    let stub = ModelStub::start(Scenario::new(vec![
        // Offered (Bash is granted for `git status` only), refused for this input.
        Step::tool_use(
            "Bash",
            json!({"command": "touch pwned-by-bash.txt", "description": "make a file"}),
        ),
        // Not offered at all.
        Step::tool_use(
            "Write",
            json!({"file_path": "pwned-by-write.txt", "content": "x"}),
        ),
        Step::text("I could not."),
    ]))
    .await
    .unwrap();
    let yaml = "tools:\n  allowed: [Read, \"Bash(git status)\"]\n";
    let Some(RealCliApp { app, _runs }) = app_with(&stub, yaml).await else {
        return;
    };
    let id = app.submit("try to write files").await;
    let e = app.wait_terminal(&id, WAIT).await;
    let logs = logs(&app, &id).await;
    let text = log_text(&logs);
    assert_eq!(e["status"], "succeeded", "{e}\n{text}");
    assert!(!text.contains("changed files"), "{text}");
    let result = result_line(&logs);
    let denials = result["permission_denials"].as_array().unwrap();
    assert_eq!(denials.len(), 1, "{result}");
    assert_eq!(denials[0]["tool_name"], "Bash");
    assert_eq!(
        denials[0]["tool_input"]["command"],
        "touch pwned-by-bash.txt"
    );
    let requests = stub.message_requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(offered(request), ["Bash", "Read"]);
    }
    // The model was told: Bash refused, Write does not exist.
    let told = requests[2].user_texts().join("\n");
    assert!(told.contains("No such tool available: Write"), "{told}");
    app.shutdown().await;
}

#[tokio::test]
async fn the_cost_ceiling_stops_the_cli_mid_stream() {
    // The answer's message_start reports 2M input tokens on Opus 5.5 ($8,
    // over the default $5 ceiling), then the stream never ends.
    let stub = ModelStub::start(Scenario::new(vec![Step {
        content: vec![Block::Text("thinking about it".into())],
        usage: StepUsage {
            input_tokens: 2_000_000,
            ..StepUsage::default()
        },
        hang: true,
        ..Step::default()
    }]))
    .await
    .unwrap();
    let Some(RealCliApp { app, _runs }) = app_with(&stub, "").await else {
        return;
    };
    let id = app.submit("spend a lot").await;
    let e = app.wait_terminal(&id, WAIT).await;
    let text = log_text(&logs(&app, &id).await);
    assert_eq!(e["status"], "budget_exceeded", "{e}\n{text}");
    assert_eq!(e["costEstimated"], true);
    assert!((e["costUsd"].as_f64().unwrap() - 8.0).abs() < 0.01, "{e}");
    assert!(
        text.contains("passed this run's ceiling of $5.00"),
        "{text}"
    );
    assert_eq!(stub.message_requests().len(), 1);
    assert!(!common::process_alive(&id), "the CLI outlived its stop");
    app.shutdown().await;
}

#[tokio::test]
async fn an_overloaded_model_fails_the_run_with_the_clis_error() {
    let stub = ModelStub::start(Scenario::new(vec![Step::error(529, Some(0), 0)]))
        .await
        .unwrap();
    let Some(RealCliApp { app, _runs }) = app_with(&stub, "").await else {
        return;
    };
    let id = app.submit("hello").await;
    let e = app.wait_terminal(&id, WAIT).await;
    let text = log_text(&logs(&app, &id).await);
    assert_eq!(e["status"], "failed", "{e}\n{text}");
    let error = e["error"].as_str().unwrap();
    assert!(error.contains("529 Overloaded"), "{error}");
    assert_eq!(e["attempts"], 1, "{e}");
    // The CLI's own retries (CLAUDE_CODE_MAX_RETRIES=2), and nothing more.
    assert_eq!(stub.message_requests().len(), 3);
    assert_eq!(text.matches("api_retry").count(), 2, "{text}");
    app.shutdown().await;
}

#[tokio::test]
async fn timeout_and_cancel_kill_the_cli() {
    // Every answer streams a little, then never ends: the CLI waits on it.
    let stub = ModelStub::start(Scenario::new(vec![Step {
        content: vec![Block::Text("waiting".into())],
        hang: true,
        times: 0,
        ..Step::default()
    }]))
    .await
    .unwrap();
    let yaml = "resources:\n  timeout: 5s\n";
    let Some(RealCliApp { app, _runs }) = app_with(&stub, yaml).await else {
        return;
    };
    let timed = app.submit("wait for it").await;
    wait_requests(&stub, 1).await;
    assert!(common::process_alive(&timed), "the CLI is not running");
    let e = app.wait_terminal(&timed, WAIT).await;
    let text = log_text(&logs(&app, &timed).await);
    assert_eq!(e["status"], "timed_out", "{e}\n{text}");
    assert!(
        !common::process_alive(&timed),
        "the CLI outlived its timeout"
    );

    let cancelled = app.submit("wait again").await;
    wait_requests(&stub, 2).await;
    assert!(common::process_alive(&cancelled), "the CLI is not running");
    assert_eq!(
        app.post_empty(&format!("/api/v1/executions/{cancelled}/cancel"))
            .await,
        202
    );
    let e = app.wait_terminal(&cancelled, WAIT).await;
    assert_eq!(e["status"], "cancelled", "{e}");
    assert!(
        !common::process_alive(&cancelled),
        "the CLI outlived its cancel"
    );
    app.shutdown().await;
}

/// `POST /api/v1/executions` with `resumeFrom`; the status and body.
async fn submit_resuming(app: &TestApp, prompt: &str, from: &str) -> (u16, Value) {
    let res = app
        .client
        .post(app.url("/api/v1/executions"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"projectId": app.project_id, "prompt": prompt, "resumeFrom": from}))
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_later_execution_resumes_the_session_in_a_fresh_workspace() {
    let stub = ModelStub::start(Scenario::new(vec![
        Step::text("The secret word is pelican."),
        Step::text("You asked me about the secret word."),
    ]))
    .await
    .unwrap();
    let Some(RealCliApp { app, _runs }) = app_with(&stub, "").await else {
        return;
    };
    let first = app.submit("Remember a secret word for me").await;
    let e = app.wait_terminal(&first, WAIT).await;
    assert_eq!(e["status"], "succeeded", "{e}");
    let session = e["sessionId"].as_str().unwrap().to_owned();

    let (status, body) = submit_resuming(&app, "What did I ask you before?", &first).await;
    assert_eq!(status, 202, "{body}");
    let second = body["executionId"].as_str().unwrap().to_owned();
    let e = app.wait_terminal(&second, WAIT).await;
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["resumeFrom"], first.as_str());
    assert_eq!(e["sessionId"], session.as_str(), "the same session went on");
    // The model saw the whole conversation: the first prompt, its answer,
    // and the new prompt, though the run had a new workspace and HOME.
    let requests = stub.message_requests();
    assert_eq!(requests.len(), 2);
    let history = serde_json::to_string(&requests[1].body["messages"]).unwrap();
    for part in [
        "Remember a secret word for me",
        "The secret word is pelican.",
        "What did I ask you before?",
    ] {
        assert!(history.contains(part), "{part} missing from {history}");
    }

    // What cannot be resumed is refused, naming why.
    let (status, body) = submit_resuming(&app, "again", "no-such-execution").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("resumeFrom"),
        "{body}"
    );
    app.shutdown().await;
}

/// ccs's live estimate, from the lines before the `result`, against the
/// CLI's own `total_cost_usd`: several models, cache writes and reads,
/// several turns. The CLI runs directly here (what ccs would run), so the
/// estimate sees every line.
#[tokio::test]
async fn the_live_estimate_is_within_two_percent_of_the_clis_cost() {
    let Some(cli) = claude() else {
        return;
    };
    let turn = |input: u64, output: u64, write: u64, read: u64| StepUsage {
        input_tokens: input,
        output_tokens: output,
        cache_creation_input_tokens: write,
        cache_read_input_tokens: read,
    };
    let models = [
        "opus",
        "sonnet",
        "haiku",
        "claude-fable-5-2",
        "claude-mythos-5-1",
        "claude-opus-4-6",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
    ];
    for model in models {
        let stub = ModelStub::start(Scenario::new(vec![
            Step::tool_use("Read", json!({"file_path": "README.md"}))
                .with_usage(turn(3, 420, 12_000, 0)),
            Step::tool_use("Read", json!({"file_path": "README.md"}))
                .with_usage(turn(5, 1_300, 800, 12_000)),
            Step::text("The README says hello.").with_usage(turn(8, 2_700, 450, 12_800)),
        ]))
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("ws")).unwrap();
        std::fs::write(dir.path().join("ws/README.md"), "hello\n").unwrap();
        let args = ccs::runner::AgentOptions {
            model: Some(model.into()),
            allowed_tools: Some(vec!["Read".into()]),
            ..Default::default()
        }
        .to_args(None);
        let mut child = tokio::process::Command::new(&cli)
            .args(&args)
            .current_dir(dir.path().join("ws"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", dir.path().join("home"))
            .envs(stub.cli_env())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        {
            use tokio::io::AsyncWriteExt as _;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"what does the README say?").await.unwrap();
        }
        let output = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .expect("the CLI ended")
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let mut estimator = CostEstimator::new(PriceTable::default());
        let mut reported = None;
        for line in stdout.lines() {
            match parse_line(line) {
                Event::Result(r) => reported = r.total_cost_usd,
                event => estimator.observe(&event),
            }
        }
        let reported = reported.unwrap_or_else(|| panic!("{model}: no result\n{stdout}"));
        let estimate = estimator.running_estimate_usd();
        let off = (estimate - reported).abs() / reported;
        println!(
            "{model}: estimate ${estimate:.6}, CLI ${reported:.6}, {:.3}% off",
            off * 100.0
        );
        assert!(
            off <= 0.02,
            "{model}: estimate {estimate} vs the CLI's {reported}"
        );
        assert!(estimator.unknown_models().is_empty(), "{model}");
        assert_eq!(stub.message_requests().len(), 3, "{model}");
    }
}

/// The seed's Code Review Workflow, verbatim, run by the real CLI: three
/// agents in turn, each one's answer in the next one's prompt.
#[tokio::test]
async fn the_seeds_code_review_workflow_runs_on_the_real_cli() {
    let stub = ModelStub::start(Scenario::new(vec![
        Step::text("Analysis: one bug in x.rs."),
        Step::text("Review: fix the bug in x.rs."),
        Step::text("Posted the review."),
    ]))
    .await
    .unwrap();
    let Some(cli) = claude() else {
        return;
    };
    let runs = tempfile::tempdir().unwrap();
    let secrets = runs.path().join("secrets.env");
    std::fs::write(&secrets, "GITHUB_TOKEN=ghp_test\nLINEAR_API_KEY=lin_test\n").unwrap();
    let runner = ProcessRunner {
        command: vec![cli.display().to_string()],
        work_dir: runs.path().join("runs"),
        pass_env: Vec::new(),
        isolation: ccs::runner::process::Isolation::Host,
    };
    let Some(app) = spawn_app(
        Backend::Sqlite,
        Options {
            runner: Some(Arc::new(runner)),
            secrets_file: Some(secrets),
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    // The seed's files, plus where the model is and the gate's commands.
    let dir = app.project_dir.path().join("wf");
    std::fs::create_dir_all(dir.join(".claude")).unwrap();
    std::fs::write(
        dir.join(".claude/workflow.yaml"),
        include_str!("fixtures/seed-workflow.yaml"),
    )
    .unwrap();
    let container = format!(
        "{}test:\n  command: \"true\"\n  coverage: \"echo 100\"\n{}",
        include_str!("fixtures/seed-container.yaml"),
        container_yaml(&stub, "")
    );
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
    let res = app
        .client
        .post(app.url("/api/v1/workflows"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"project": "wf", "context": {"PR_NUMBER": 123, "PR_DIFF": "diff --git a/x.rs b/x.rs"}, "source": "github"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().await.unwrap()["workflowId"]
        .as_str()
        .unwrap()
        .to_owned();
    let start = Instant::now();
    let run = loop {
        let (_, r) = app.get(&format!("/api/v1/workflows/{id}")).await;
        if ["succeeded", "failed", "cancelled", "budget_exceeded"]
            .contains(&r["status"].as_str().unwrap_or(""))
        {
            break r;
        }
        assert!(start.elapsed() < WAIT, "the run never ended: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run["status"], "succeeded", "{run}");
    let agents: Vec<&str> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["analyzer", "reviewer", "commenter"]);
    assert_eq!(
        run["context"]["analysis_result"],
        "Analysis: one bug in x.rs."
    );
    assert_eq!(
        run["context"]["review_text"],
        "Review: fix the bug in x.rs."
    );
    // What the model was asked, step by step: the seed's prompts with the
    // context and the earlier answers substituted, and only granted tools.
    let requests = stub.message_requests();
    assert_eq!(requests.len(), 3);
    let asked = |i: usize| requests[i].user_texts().join("\n");
    assert!(
        asked(0).contains("Analyze the code changes in diff --git a/x.rs b/x.rs."),
        "{}",
        asked(0)
    );
    assert!(
        asked(1).contains("Based on the analysis: Analysis: one bug in x.rs."),
        "{}",
        asked(1)
    );
    assert!(
        asked(2).contains("Post this review to GitHub PR #123:"),
        "{}",
        asked(2)
    );
    assert!(
        asked(2).contains("Review: fix the bug in x.rs."),
        "{}",
        asked(2)
    );
    for request in &requests {
        for tool in offered(request) {
            assert!(
                ["Bash", "Edit", "Read", "Write"].contains(&tool.as_str()),
                "{tool} offered: {:?}",
                request.tool_names()
            );
        }
    }
    // The run's cost is the CLI's, summed over its steps.
    let sum: f64 = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["costUsd"].as_f64().unwrap())
        .sum();
    assert!(
        sum > 0.0 && (run["costUsd"].as_f64().unwrap() - sum).abs() < 1e-9,
        "{run}"
    );
    app.shutdown().await;
}

/// The real-CLI agent image (`scripts/build-claude-image.sh`, which prints
/// its tag; idempotent), or `None` (skip) without Docker; with `CI=true` a
/// missing Docker or a failed build fails the test.
async fn claude_image() -> Option<String> {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    if let Err(e) = bollard::Docker::connect_with_local_defaults() {
        assert!(!ci, "CI=true: Docker is required: {e}");
        eprintln!("skipped: Docker is unreachable ({e})");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-claude-image.sh");
    let output = tokio::process::Command::new(script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .expect("run scripts/build-claude-image.sh");
    if !output.status.success() {
        assert!(!ci, "CI=true: building the real-CLI image failed");
        eprintln!("skipped: the real-CLI image could not be built");
        return None;
    }
    Some(String::from_utf8(output.stdout).unwrap().trim().to_owned())
}

/// The real CLI in its image under the Docker runner, its only way out the
/// egress proxy, which admits the model host alone. The stand-in listens on
/// the host's loopback; the operator maps the name `model.test` to it
/// (`--docker-add-host model.test:127.0.0.1`, which the proxy resolves the
/// same way) and the project allows that name. A `WebFetch` of another host
/// is refused by the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_real_cli_runs_in_its_docker_image_behind_the_egress_proxy() {
    use ccs::runner::docker::{DockerRunner, DockerRunnerConfig};
    if claude().is_none() {
        return;
    }
    let Some(image) = claude_image().await else {
        return;
    };
    let mut first = Step::tool_use(
        "WebFetch",
        json!({"url": "http://elsewhere.test/secrets", "prompt": "summarise"}),
    );
    first.content.insert(0, Block::Text("Fetching.".into()));
    let mut steps = vec![first];
    steps.extend(write_hello("container"));
    let stub = ModelStub::start(Scenario::new(steps)).await.unwrap();
    let port = stub.addr().port();
    let runs = tempfile::tempdir().unwrap();
    let inspect = tempfile::tempdir().unwrap();
    let runner = DockerRunner::connect(DockerRunnerConfig {
        docker_host: None,
        command: vec!["claude".into()],
        default_image: "ccs-test-agent:latest".into(),
        work_dir: runs.path().to_path_buf(),
        pass_env: Vec::new(),
        allow_root: false,
        extra_hosts: vec!["model.test:127.0.0.1".into()],
        inspect_dir: Some(inspect.path().to_path_buf()),
    })
    .await
    .expect("Docker");
    let mut yaml = model_test_env(port);
    yaml.push_str(&format!(
        "baseImage: {image}\nsecurity:\n  allowedDomains: [model.test]\n\
         tools:\n  allowed: [Write, WebFetch]\nagent:\n  model: sonnet\n  maxTurns: 5\n"
    ));
    let Some(app) = spawn_app(
        Backend::Sqlite,
        Options {
            container_yaml: Some(yaml),
            runner: Some(Arc::new(runner)),
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    // The CLI's WebFetch first asks api.anthropic.com whether the domain is
    // safe; the project turns that off so the fetch itself goes out.
    let settings = app.project_dir.path().join(".claude");
    std::fs::create_dir_all(&settings).unwrap();
    std::fs::write(
        settings.join("settings.json"),
        r#"{"skipWebFetchPreflight": true}"#,
    )
    .unwrap();
    let id = app.submit("Fetch the secrets, then write hello.txt").await;
    let e = app.wait_terminal(&id, WAIT).await;
    let logs = logs(&app, &id).await;
    let text = log_text(&logs);
    assert_eq!(e["status"], "succeeded", "{e}\n{text}");
    assert_eq!(e["result"], "Wrote hello.txt.");
    assert!(text.contains("[ccs] changed files: hello.txt"), "{text}");
    // The cost is the CLI's own: 1000 + 2×10 input and 200 + 2×5 output
    // tokens at Sonnet 5.5's $2 / $10 per million.
    let result = result_line(&logs);
    let reported = result["total_cost_usd"].as_f64().unwrap();
    assert_eq!(e["costUsd"].as_f64().unwrap(), reported);
    assert_eq!(e["costEstimated"], false);
    let expected = (1020.0 * 2.0 + 210.0 * 10.0) / 1e6;
    assert!(
        (reported - expected).abs() < 1e-9,
        "{reported} vs {expected}"
    );
    // Only the granted tools were offered, from inside the container, and
    // the model host saw nothing but model turns.
    let requests = stub.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    for request in &requests {
        assert_eq!(request.uri, "/v1/messages?beta=true");
        assert_eq!(offered(request), ["WebFetch", "Write"]);
        assert_eq!(request.headers["x-api-key"], "sk-ant-stub-key");
    }
    // The other host was refused by the proxy (WebFetch goes over https,
    // so a CONNECT), the log says so, and the model was told.
    assert!(
        text.contains(
            "[ccs] egress refused: CONNECT elsewhere.test:443 (not in security.allowedDomains)"
        ),
        "{text}"
    );
    assert_eq!(text.matches("egress refused").count(), 1, "{text}");
    let told = requests[1].user_texts().join("\n");
    assert!(told.contains("proxy refused the connection"), "{told}");
    // It ran in the image, on the run's own internal network.
    let inspected: Value = serde_json::from_slice(
        &std::fs::read(inspect.path().join(format!("ccs-{id}-1.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(inspected["Config"]["Image"], image.as_str());
    assert_eq!(
        inspected["HostConfig"]["NetworkMode"],
        format!("ccs-{id}-1")
    );
    assert!(!app.project_dir.path().join("hello.txt").exists());
    app.shutdown().await;
}

/// The real CLI under the process runner's bubblewrap sandbox (`--runner
/// process`): no network of its own, its only way out the run's egress
/// proxy (relayed into the sandbox by `ccs sandbox-init`), which admits the
/// operator's model host alone. The stand-in listens on the host's
/// loopback under the operator's name `model.test`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_real_cli_runs_in_the_bubblewrap_sandbox() {
    use ccs::runner::egress_proxy::EgressSettings;
    use ccs::runner::process::Isolation;
    let Some(cli) = claude() else {
        return;
    };
    let stub = ModelStub::start(Scenario::new(write_hello("sandbox")))
        .await
        .unwrap();
    let port = stub.addr().port();
    let runs = tempfile::tempdir().unwrap();
    let mut runner = common::sandboxed_runner(runs.path(), &[]);
    runner.command = vec![cli.display().to_string()];
    let Isolation::Sandbox { egress, .. } = &mut runner.isolation else {
        panic!("the process runner is sandboxed");
    };
    *egress = EgressSettings {
        model_hosts: vec!["model.test".into()],
        hosts: [("model.test".to_owned(), stub.addr().ip())].into(),
        ..EgressSettings::default()
    };
    let mut yaml = model_test_env(port);
    yaml.push_str(
        "security:\n  allowedDomains: [model.test]\n\
         tools:\n  allowed: [Read, Write]\nagent:\n  model: sonnet\n  maxTurns: 5\n",
    );
    let Some(app) = spawn_app(
        Backend::Sqlite,
        Options {
            container_yaml: Some(yaml),
            runner: Some(Arc::new(runner)),
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let id = app.submit("Write hello.txt").await;
    let e = app.wait_terminal(&id, WAIT).await;
    let logs = logs(&app, &id).await;
    let text = log_text(&logs);
    assert_eq!(e["status"], "succeeded", "{e}\n{text}");
    assert_eq!(e["result"], "Wrote hello.txt.");
    assert!(text.contains("[ccs] changed files: hello.txt"), "{text}");
    // The CLI's own cost, taken as reported.
    let result = result_line(&logs);
    assert_eq!(
        e["costUsd"].as_f64().unwrap(),
        result["total_cost_usd"].as_f64().unwrap()
    );
    assert_eq!(e["costEstimated"], false);
    // Every model turn reached the stand-in through the proxy, offering
    // only the granted tools.
    let requests = stub.message_requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    for request in &requests {
        assert_eq!(offered(request), ["Read", "Write"]);
    }
    // The CLI ran as the sandbox's user in the sandbox's workspace.
    let init = logs
        .iter()
        .filter(|l| l["kind"] == "system")
        .filter_map(|l| serde_json::from_str::<Value>(l["text"].as_str()?).ok())
        .find(|line| line["subtype"] == "init")
        .expect("a system/init line");
    assert_eq!(init["cwd"], "/workspace", "{init}");
    assert!(!app.project_dir.path().join("hello.txt").exists());
    app.shutdown().await;
}

/// The model's last two turns of the proxied tests: a Write of `hello.txt`
/// (1000 input and 200 output tokens), then the answer "Wrote hello.txt.".
fn write_hello(from: &str) -> Vec<Step> {
    vec![
        Step::tool_use(
            "Write",
            json!({"file_path": "hello.txt", "content": format!("hello from the {from}\n")}),
        )
        .with_usage(StepUsage {
            input_tokens: 1000,
            output_tokens: 200,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
        }),
        Step::text("Wrote hello.txt."),
    ]
}

/// The `env:` of a container.yaml pointing the CLI at the stand-in under
/// the operator's name `model.test` (reached only through the proxy).
fn model_test_env(port: u16) -> String {
    let mut yaml = String::from("env:\n");
    for (name, value) in ccs_model_stub::cli_env(&format!("http://model.test:{port}")) {
        yaml.push_str(&format!("  {name}: \"{value}\"\n"));
    }
    yaml
}
