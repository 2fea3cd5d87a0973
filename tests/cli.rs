//! The `ccs` command line as a user runs it: `up` on the embedded SQLite
//! default, `migrate`, `api-key create`, `project add`, errors, and a
//! worker's graceful shutdown on SIGTERM.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Options, WorkerProcess, ccs_bin, eventually, spawn_app, test_agent};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

fn ccs(data_dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(ccs_bin());
    cmd.env_remove("CCS_DATABASE_URL")
        .env("CCS_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn");
    cmd
}

#[test]
fn admin_commands_print_what_scripts_need() {
    let dir = tempfile::tempdir().unwrap();
    let out = ccs(dir.path()).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(dir.path().join("ccs.db").exists());

    let out = ccs(dir.path())
        .args([
            "api-key",
            "create",
            "--name",
            "ci",
            "--permission",
            "execute",
        ])
        .args(["--permission", "read", "--expires-in", "30d"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let key = String::from_utf8(out.stdout).unwrap();
    assert_eq!(key.lines().count(), 1);
    assert!(key.trim().starts_with("ccs_"), "{key}");

    let project = tempfile::tempdir().unwrap();
    let out = ccs(dir.path())
        .args(["project", "add", "--name", "web"])
        .arg("--path")
        .arg(project.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "1");

    // Wrong arguments: a clear error and a failing exit code.
    let out = ccs(dir.path())
        .args(["api-key", "create", "--name", "x", "--permission", "root"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown permission \"root\""));
    std::fs::create_dir_all(project.path().join(".claude")).unwrap();
    std::fs::write(
        project.path().join(".claude/container.yaml"),
        "resources:\n  memory: lots\n",
    )
    .unwrap();
    let out = ccs(dir.path())
        .args(["project", "add", "--name", "web2"])
        .arg("--path")
        .arg(project.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(".claude/container.yaml:2:"), "{err}");
    let out = ccs(dir.path())
        .args(["worker", "--runner", "kubernetes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = ccs(dir.path())
        .args(["--database-url", "redis://x", "migrate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL scheme"));
}

/// `ccs up` with `args`, until it exits by itself (a guard of two minutes
/// fails a process that keeps running): its status and stderr.
async fn up_until_it_exits(args: &[&str]) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let child = tokio::process::Command::from(ccs(dir.path()))
        .arg("up")
        .args(args)
        .env("CCS_AGENT_COMMAND", test_agent())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("`ccs up` kept running")
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn up_fails_when_its_worker_cannot_start() {
    // The API starts; the worker cannot read its secrets file.
    let (status, stderr) = up_until_it_exits(&[
        "--listen",
        "127.0.0.1:0",
        "--secrets-file",
        "/nonexistent/secrets",
    ])
    .await;
    assert!(!status.success(), "{status:?} {stderr}");
    assert!(stderr.contains("the worker failed"), "{stderr}");
}

#[tokio::test]
async fn up_fails_when_its_api_cannot_listen() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, stderr) = up_until_it_exits(&["--listen", &addr]).await;
    assert!(!status.success(), "{status:?} {stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_everything_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new(ccs_bin())
        .args(["up", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("CCS_DATABASE_URL")
        .env("CCS_DATA_DIR", dir.path())
        .env("CCS_AGENT_COMMAND", test_agent())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut key = None;
    let start = Instant::now();
    while key.is_none() {
        assert!(start.elapsed() < Duration::from_secs(60));
        let line = lines.next_line().await.unwrap().expect("ccs up exited");
        key = line.strip_prefix("admin api key: ").map(str::to_owned);
    }
    let key = key.unwrap();
    // Then a one-time dashboard sign-in link.
    let mut link = None;
    while link.is_none() {
        assert!(start.elapsed() < Duration::from_secs(60));
        let line = lines.next_line().await.unwrap().expect("ccs up exited");
        link = line
            .strip_prefix("dashboard sign-in link (one use, 15 minutes): ")
            .map(str::to_owned);
    }
    let link = link.unwrap();
    assert!(link.starts_with(&format!("http://127.0.0.1:{port}/ui/login/")));
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirects.get(&link).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("ccs_session=")
    );
    assert_eq!(no_redirects.get(&link).send().await.unwrap().status(), 401);
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready);
    let res = client
        .post(format!("{base}/api/v1/projects"))
        .bearer_auth(&key)
        .json(&json!({"name": "demo", "path": project.path()}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = client
        .post(format!("{base}/webhook/execute"))
        .bearer_auth(&key)
        .json(&json!({"project": "demo", "prompt": "hello @result=hi there"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    let url = format!("{base}{}", body["statusUrl"].as_str().unwrap());
    let start = Instant::now();
    loop {
        let e: Value = client
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if e["status"] == "succeeded" {
            assert_eq!(e["result"], "hi there");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "ccs_webhook_requests_total",
        "ccs_jobs_enqueued_total",
        "ccs_queue_depth",
        "ccs_job_duration_seconds",
        "ccs_execution_cost_usd_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    assert!(
        metrics.contains("# TYPE ccs_execution_cost_usd_total counter"),
        "{metrics}"
    );
    common::promtool_check_metrics(&metrics);
    // A second start does not print a new admin key.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let out = ccs(dir.path())
        .args(["up", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = out.id();
    std::thread::sleep(Duration::from_secs(2));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let out = out.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("admin api key"));
}

/// SIGTERM: a run that fits in the grace period finishes; one that does not
/// is stopped and handed back, and another worker completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_short_runs_finish_and_hands_back_long_ones() {
    let Some(app) = spawn_app(ccs::db::Backend::Sqlite, Options::without_worker()).await else {
        return;
    };
    let short = app.submit("short @sleep=2 @result=short done").await;
    let long = app.submit("long @sleep=12 @result=long done").await;
    let mut worker = WorkerProcess::spawn(&app, 2); // grace: 5s (see worker_args)
    eventually("both runs to start", || async {
        let (_, a) = app.get(&format!("/api/v1/executions/{short}")).await;
        let (_, b) = app.get(&format!("/api/v1/executions/{long}")).await;
        (a["status"] == "running" && b["status"] == "running").then_some(())
    })
    .await;
    worker.term();
    let status = tokio::time::timeout(Duration::from_secs(30), worker.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let (_, a) = app.get(&format!("/api/v1/executions/{short}")).await;
    assert_eq!(a["status"], "succeeded", "{a}");
    let (_, b) = app.get(&format!("/api/v1/executions/{long}")).await;
    assert_eq!(b["status"], "running", "{b}");
    let mut second = WorkerProcess::spawn(&app, 2);
    let b = app.wait_terminal(&long, Duration::from_secs(60)).await;
    assert_eq!(b["status"], "succeeded", "{b}");
    assert_eq!(b["attempts"], 2);
    second.kill9();
    app.shutdown().await;
}
