//! Runs the built `ccs-test-agent` and checks what it prints, and that the
//! service's own parser (`src/runner/stream_json.rs`, included below) reads
//! it as intended: the estimate from `assistant` lines matches the reported
//! cost.

#[path = "../../src/runner/stream_json.rs"]
#[allow(
    dead_code,
    reason = "only part of the service's parser is exercised here"
)]
mod stream_json;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use stream_json::{CostEstimator, Event, PriceTable, parse_line};

const SESSION: &str = "5f0c2a8e-1111-4222-8333-444455556666";

/// The agent, with an environment that does not depend on the caller's.
fn agent() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccs-test-agent"));
    cmd.env_remove("CCS_TEST_AGENT_RECORD")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("IS_SANDBOX")
        .stdin(Stdio::null());
    cmd
}

/// The agent as ccs runs it: `-p PROMPT --output-format stream-json --verbose`.
fn stream(prompt: &str) -> Command {
    let mut cmd = agent();
    cmd.args(["-p", prompt, "--output-format", "stream-json", "--verbose"]);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    match cmd.output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run the agent: {e}"),
    }
}

fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| match serde_json::from_str(line) {
            Ok(value) => value,
            Err(e) => panic!("not a JSON line ({e}): {line}"),
        })
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A fresh empty directory under the system's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "ccs-test-agent-{name}-{}-{nanos}",
        std::process::id()
    ));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    dir
}

fn read(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    }
}

fn is_root() -> bool {
    read(Path::new("/proc/self/status"))
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

fn kind(line: &Value) -> &str {
    line["type"].as_str().unwrap_or("")
}

#[test]
fn default_run_prints_the_cli_lines() {
    let output = run(stream("Review the PR\nsecond line").args(["--session-id", SESSION]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let lines = json_lines(&output);
    let kinds: Vec<&str> = lines.iter().map(kind).collect();
    assert_eq!(kinds, ["system", "assistant", "result"]);

    let init = &lines[0];
    assert_eq!(init["subtype"], "init");
    assert_eq!(init["session_id"], SESSION);
    assert_eq!(init["model"], "claude-sonnet-4-5");
    assert_eq!(init["permissionMode"], "default");
    assert!(init["tools"].as_array().is_some_and(|t| !t.is_empty()));
    assert!(init["cwd"].is_string() && init["uuid"].is_string());

    let message = &lines[1]["message"];
    assert!(
        message["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("msg_"))
    );
    assert_eq!(message["content"][0]["text"], "Review the PR");
    assert!(
        message["usage"]["output_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );

    let result = &lines[2];
    for field in [
        "subtype",
        "is_error",
        "duration_ms",
        "duration_api_ms",
        "num_turns",
        "result",
        "session_id",
        "total_cost_usd",
        "usage",
        "modelUsage",
        "permission_denials",
        "uuid",
    ] {
        assert!(
            result.get(field).is_some(),
            "result has no {field}: {result}"
        );
    }
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["result"], "Review the PR");
    assert_eq!(result["num_turns"], 1);
    assert_eq!(result["total_cost_usd"], 0.01);
    assert_eq!(result["session_id"], SESSION);
    assert_eq!(
        result["usage"]["output_tokens"],
        message["usage"]["output_tokens"]
    );
    let model_usage = &result["modelUsage"]["claude-sonnet-4-5"];
    assert_eq!(model_usage["costUSD"], 0.01);
    assert_eq!(
        model_usage["outputTokens"],
        message["usage"]["output_tokens"]
    );
}

#[test]
fn turns_repeat_message_ids_and_usage_adds_up_to_the_cost() {
    let output = run(&mut stream("@turns=3 @cost=0.25 go"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let lines = json_lines(&output);
    let kinds: Vec<&str> = lines.iter().map(kind).collect();
    assert_eq!(
        kinds,
        [
            "system",
            "assistant",
            "assistant",
            "user",
            "assistant",
            "assistant",
            "user",
            "assistant",
            "result"
        ]
    );
    // Two lines per tool-calling message: same id, same usage, text then tool_use.
    for pair in [(1, 2), (4, 5)] {
        let (a, b) = (&lines[pair.0]["message"], &lines[pair.1]["message"]);
        assert_eq!(a["id"], b["id"]);
        assert_eq!(a["usage"], b["usage"]);
        assert_eq!(a["content"][0]["type"], "text");
        assert_eq!(b["content"][0]["type"], "tool_use");
        let tool_use_id = &b["content"][0]["id"];
        let user = &lines[pair.1 + 1]["message"]["content"][0];
        assert_eq!(user["type"], "tool_result");
        assert_eq!(&user["tool_use_id"], tool_use_id);
    }
    let ids: Vec<&Value> = [1, 4, 7]
        .iter()
        .map(|i| &lines[*i]["message"]["id"])
        .collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);

    // Usage per distinct message, priced at $3/$15/$3.75/$0.30 per million.
    let mut per_message: HashMap<String, f64> = HashMap::new();
    let mut output_tokens = 0;
    for line in lines.iter().filter(|l| kind(l) == "assistant") {
        let message = &line["message"];
        let usage = &message["usage"];
        let tokens = |field: &str| usage[field].as_f64().unwrap_or(0.0);
        let cost = (tokens("input_tokens") * 3.0
            + tokens("output_tokens") * 15.0
            + tokens("cache_creation_input_tokens") * 3.75
            + tokens("cache_read_input_tokens") * 0.30)
            / 1e6;
        let id = message["id"].as_str().unwrap_or("").to_string();
        if per_message.insert(id, cost).is_none() {
            output_tokens += usage["output_tokens"].as_u64().unwrap_or(0);
        }
    }
    let total: f64 = per_message.values().sum();
    assert!((total - 0.25).abs() < 0.0025, "usage prices to {total}");
    let result = &lines[8];
    assert_eq!(result["total_cost_usd"], 0.25);
    assert_eq!(result["num_turns"], 3);
    assert_eq!(result["usage"]["output_tokens"], output_tokens);
}

#[test]
fn the_service_parser_estimates_the_reported_cost() {
    for (model, prompt, cost) in [
        (None, "@turns=4 @cost=0.37", 0.37),
        (Some("claude-opus-4-1"), "@turns=2 @cost=1.5", 1.5),
        (Some("haiku"), "@turns=5 @cost=0.002", 0.002),
        (None, "@cost=0", 0.0),
    ] {
        let mut cmd = stream(prompt);
        if let Some(model) = model {
            cmd.args(["--model", model]);
        }
        let output = run(&mut cmd);
        let mut estimator = CostEstimator::new(PriceTable::default());
        let mut result = None;
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let event = parse_line(line);
            if let Event::Result(r) = &event {
                let running = estimator.running_estimate_usd();
                assert!(
                    (running - cost).abs() <= cost * 0.01,
                    "{prompt}: estimated {running}, reported {cost}"
                );
                result = Some(r.clone());
            }
            estimator.observe(&event);
        }
        let Some(result) = result else {
            panic!("{prompt}: no result line");
        };
        assert!(result.is_success());
        assert_eq!(estimator.estimate_usd(), cost);
        assert!(!estimator.is_estimate());
    }
}

#[test]
fn fail_ends_with_an_error_result() {
    let output = run(&mut stream("@fail @turns=2"));
    assert_eq!(output.status.code(), Some(1));
    let lines = json_lines(&output);
    let result = lines.last().cloned().unwrap_or_default();
    assert_eq!(result["type"], "result");
    assert_eq!(result["subtype"], "error_during_execution");
    assert_eq!(result["is_error"], true);
    assert!(result.get("result").is_none(), "{result}");
    assert_eq!(result["num_turns"], 2);
    match parse_line(&result.to_string()) {
        Event::Result(r) => {
            assert!(!r.is_success());
            assert!(r.error_text().is_some_and(|e| e.contains("@fail")));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn crash_exits_137_without_a_result() {
    let output = run(&mut stream("@crash @turns=2"));
    assert_eq!(output.status.code(), Some(137));
    let lines = json_lines(&output);
    let kinds: Vec<&str> = lines.iter().map(kind).collect();
    assert_eq!(
        kinds,
        ["system", "assistant", "assistant", "user", "assistant"]
    );
}

#[test]
fn hang_never_ends() {
    let mut child = match stream("@hang").stdout(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(e) => panic!("cannot run the agent: {e}"),
    };
    let mut first = String::new();
    if let Some(stdout) = child.stdout.take() {
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut first).ok();
    }
    assert!(first.contains("\"init\""), "{first}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(matches!(child.try_wait(), Ok(None)), "the agent ended");
    child.kill().ok();
    child.wait().ok();
}

#[test]
fn sleep_spreads_the_lines() {
    let started = Instant::now();
    let mut child = match stream("@sleep=1.2 @turns=2").stdout(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(e) => panic!("cannot run the agent: {e}"),
    };
    let mut arrivals = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let value: Value = serde_json::from_str(&line).unwrap_or_default();
            arrivals.push((kind(&value).to_string(), started.elapsed()));
        }
    }
    let status = child.wait().ok().and_then(|s| s.code());
    assert_eq!(status, Some(0));
    let at = |i: usize| arrivals[i].1.as_secs_f64();
    assert_eq!(arrivals.len(), 6, "{arrivals:?}");
    // Lines due at 0, 0.4 (turn 1: three lines), 0.8 and 1.2 s; bounds
    // leave room for a loaded machine.
    assert!(at(0) < 0.6, "init came at {}", at(0));
    assert!(at(1) >= 0.35 && at(1) < 1.2, "first turn at {}", at(1));
    assert!(at(4) >= 0.75, "second turn at {}", at(4));
    assert!(at(5) >= 1.2 && at(5) < 4.0, "result at {}", at(5));
}

#[test]
fn result_env_write_and_stderr() {
    let dir = temp_dir("write");
    let prompt = "Make files @write=a.txt @write=sub/dir/b.md\n@stderr=hello from the agent\n@env=CCS_TA_SECRET @env=CCS_TA_UNSET @result=All done";
    let output = run(stream(prompt)
        .current_dir(&dir)
        .env("CCS_TA_SECRET", "s3cret")
        .env_remove("CCS_TA_UNSET"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(read(&dir.join("a.txt")), prompt);
    assert_eq!(read(&dir.join("sub/dir/b.md")), prompt);
    assert!(stderr(&output).contains("hello from the agent"));
    let lines = json_lines(&output);
    let result = lines.last().cloned().unwrap_or_default();
    assert_eq!(
        result["result"],
        "All done\nCCS_TA_SECRET=s3cret\nCCS_TA_UNSET=<unset>"
    );
    assert_eq!(
        Path::new(lines[0]["cwd"].as_str().unwrap_or(""))
            .canonicalize()
            .ok(),
        dir.canonicalize().ok()
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn read_puts_files_in_the_result() {
    let dir = temp_dir("read");
    std::fs::write(dir.join("there.txt"), "  from an earlier step\n").unwrap();
    let output = run(stream("@read=there.txt @read=missing.txt @result=Seen").current_dir(&dir));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let result = json_lines(&output).last().cloned().unwrap_or_default();
    let text = result["result"].as_str().unwrap_or_default().to_owned();
    assert!(
        text.starts_with("Seen\nREAD there.txt: from an earlier step\nREAD missing.txt: <"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn json_and_text_formats() {
    let output = run(agent().args(["-p", "@result=the answer", "--output-format", "json"]));
    assert_eq!(output.status.code(), Some(0));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["type"], "result");
    assert_eq!(lines[0]["result"], "the answer");

    let output = run(agent().args(["-p", "@turns=2", "--output-format", "json", "--verbose"]));
    let lines = json_lines(&output);
    let all = lines[0].as_array().cloned().unwrap_or_default();
    assert_eq!(all.len(), 6, "{all:?}");
    assert!(matches!(parse_line(&lines[0].to_string()), Event::Result(r) if r.is_success()));

    let output = run(agent().args(["-p", "@result=just text"]));
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "just text\n");
}

#[test]
fn prompt_from_stdin() {
    let mut child = match agent()
        .args(["-p", "--output-format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!("cannot run the agent: {e}"),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(b"from stdin @cost=0.5\n").ok();
    }
    let output = match child.wait_with_output() {
        Ok(output) => output,
        Err(e) => panic!("{e}"),
    };
    let lines = json_lines(&output);
    assert_eq!(lines[0]["result"], "from stdin @cost=0.5");
    assert_eq!(lines[0]["total_cost_usd"], 0.5);

    let output = run(agent().args(["-p"]));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("Input must be provided"));
}

#[test]
fn refusals_match_the_cli() {
    let output = run(agent().args(["-p", "x", "--output-format", "stream-json"]));
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert_eq!(
        stderr(&output).trim(),
        "Error: When using --print, --output-format=stream-json requires --verbose"
    );

    let output = run(agent().args(["-p", "x", "--foo"]));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output).trim(), "error: unknown option '--foo'");

    let output = run(&mut stream("@cost=abc"));
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(stderr(&output).contains("invalid directive '@cost=abc'"));

    let output = run(stream("x").args(["--session-id", "not-a-uuid"]));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("Invalid session ID"));

    let output = run(stream("x").args(["--mcp-config", "/nonexistent/mcp.json"]));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("Invalid MCP configuration"));
}

#[test]
fn root_needs_a_sandbox_to_skip_permissions() {
    for flags in [
        &["--dangerously-skip-permissions"][..],
        &["--permission-mode", "bypassPermissions"][..],
    ] {
        let output = run(stream("x").args(flags));
        if is_root() {
            assert_eq!(output.status.code(), Some(1));
            assert_eq!(
                stderr(&output).trim(),
                "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons"
            );
        } else {
            assert_eq!(output.status.code(), Some(0));
        }
        let output = run(stream("x").args(flags).env("IS_SANDBOX", "1"));
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert_eq!(
            json_lines(&output)[0]["permissionMode"],
            "bypassPermissions"
        );
    }
}

#[test]
fn options_show_in_the_init_line() {
    let dir = temp_dir("mcp");
    let config = dir.join("mcp.json");
    if let Err(e) = std::fs::write(
        &config,
        r#"{"mcpServers":{"github":{"command":"gh-mcp"},"linear":{"url":"http://x"}}}"#,
    ) {
        panic!("{e}");
    }
    let config = config.to_string_lossy().into_owned();
    let output = run(stream("x").args([
        "--model",
        "claude-opus-4-1",
        "--tools",
        "Read,Edit Bash",
        "--allowedTools",
        "Read,Edit Bash(git log:*)",
        "--disallowedTools",
        "Edit",
        "--mcp-config",
        &config,
        r#"{"mcpServers":{"slack":{}}}"#,
        "--permission-mode",
        "plan",
        "--append-system-prompt",
        "be brief",
        "--max-turns",
        "5",
        "--add-dir",
        "/tmp",
        "--settings",
        "/nonexistent.json",
        "--strict-mcp-config",
    ]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let init = &json_lines(&output)[0];
    assert_eq!(init["model"], "claude-opus-4-1");
    assert_eq!(init["tools"], serde_json::json!(["Read", "Bash"]));
    assert_eq!(
        init["mcp_servers"],
        serde_json::json!([
            {"name": "github", "status": "connected"},
            {"name": "linear", "status": "connected"},
            {"name": "slack", "status": "connected"},
        ])
    );
    assert_eq!(init["permissionMode"], "plan");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn limits_end_runs_like_the_cli() {
    let output = run(stream("@turns=5 @cost=1").args(["--max-turns", "2"]));
    assert_eq!(output.status.code(), Some(1));
    let lines = json_lines(&output);
    let result = lines.last().cloned().unwrap_or_default();
    assert_eq!(result["subtype"], "error_max_turns");
    assert_eq!(result["num_turns"], 2);
    let cost = result["total_cost_usd"].as_f64().unwrap_or(0.0);
    assert!((cost - 0.4).abs() < 0.004, "{cost}");

    let output = run(stream("@cost=1").args(["--max-budget-usd", "0.5"]));
    assert_eq!(output.status.code(), Some(1));
    let result = json_lines(&output).last().cloned().unwrap_or_default();
    assert_eq!(result["subtype"], "error_max_budget_usd");
    assert_eq!(result["is_error"], true);
}

#[test]
fn invocations_are_recorded() {
    let dir = temp_dir("record");
    let record = dir.join("record.jsonl");
    let output = run(stream("first @result=ok")
        .current_dir(&dir)
        .env("CCS_TEST_AGENT_RECORD", &record));
    assert_eq!(output.status.code(), Some(0));
    let output = run(agent()
        .args(["--bogus"])
        .current_dir(&dir)
        .env("CCS_TEST_AGENT_RECORD", &record));
    assert_eq!(output.status.code(), Some(1));
    let lines: Vec<Value> = read(&record)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_default())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0]["argv"],
        serde_json::json!([
            "-p",
            "first @result=ok",
            "--output-format",
            "stream-json",
            "--verbose"
        ])
    );
    assert_eq!(lines[0]["prompt"], "first @result=ok");
    assert_eq!(
        Path::new(lines[0]["cwd"].as_str().unwrap_or(""))
            .canonicalize()
            .ok(),
        dir.canonicalize().ok()
    );
    assert_eq!(lines[1]["argv"], serde_json::json!(["--bogus"]));
    assert_eq!(lines[1]["prompt"], Value::Null);
    std::fs::remove_dir_all(&dir).ok();
}
