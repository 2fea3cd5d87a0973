//! Black-box security tests: an agent that tries to get out of its sandbox,
//! and the settings the service refuses. docs/security.md lists which
//! attack each test stands for.

mod common;

use std::sync::Arc;
use std::time::Duration;

use ccs::db::Backend;
use ccs::runner::egress_proxy::EgressSettings;
use ccs::runner::process::Isolation;
use common::{Options, sandboxed_runner, spawn_app};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A stand-in for the model's API: answers every request with 200 and
/// `model stand-in`. Bound on 127.0.0.2 so that it is not the API's address.
async fn model_stand_in() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let body = "model stand-in\n";
                let _ = conn
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    addr
}

/// The line of `result` that starts with `prefix`.
fn line<'a>(result: &'a str, prefix: &str) -> &'a str {
    result
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in {result}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn process_sandbox_keeps_the_agent_in() {
    let model = model_stand_in().await;
    let runs = tempfile::tempdir().unwrap();
    let mut runner = sandboxed_runner(runs.path(), &[]);
    if let Isolation::Sandbox { egress, .. } = &mut runner.isolation {
        *egress = EgressSettings {
            model_hosts: vec![model.ip().to_string()],
            ..EgressSettings::default()
        };
    }
    let yaml = "security:\n  allowedDomains: [localhost, example.com]\n";
    let app = spawn_app(
        Backend::Sqlite,
        Options {
            container_yaml: Some(yaml.into()),
            runner: Some(Arc::new(runner)),
            ..Options::default()
        },
    )
    .await
    .expect("sqlite");
    let db_file = app.db.url.trim_start_matches("sqlite://").to_owned();
    let host_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(host_file.path(), "host secret\n").unwrap();
    let worker_pid = std::process::id();
    let api = app.addr.port();
    let prompt = format!(
        "escape\n\
         @read=/proc/{worker_pid}/environ @read=/proc/1/environ @read={db_file} \
         @read={host} @read={project}/README.md @read=/etc/shadow \
         @env=CARGO_MANIFEST_DIR @env=HOME \
         @fetch-direct=http://127.0.0.1:{api}/healthz \
         @fetch=http://127.0.0.1:{api}/healthz @fetch=http://localhost:{api}/healthz \
         @fetch=http://169.254.169.254/latest/meta-data/ @fetch=http://10.11.12.13/ \
         @fetch=http://{model}/v1/messages @write=made-here.txt",
        host = host_file.path().display(),
        project = app.project_dir.path().display(),
    );
    let id = app.submit(&prompt).await;
    let e = app.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(e["status"], "succeeded", "{e}");
    let result = e["result"].as_str().unwrap().to_owned();

    // The worker's processes are not in the sandbox's /proc; its PID 1 is
    // bwrap, with the sandbox's own (empty) environment.
    assert!(
        line(&result, &format!("READ /proc/{worker_pid}/environ:")).contains("No such file"),
        "{result}"
    );
    assert_eq!(
        line(&result, "READ /proc/1/environ:").trim(),
        "READ /proc/1/environ:"
    );
    // No database file, no host file, no project directory, no /etc/shadow.
    for path in [
        db_file.clone(),
        host_file.path().display().to_string(),
        format!("{}/README.md", app.project_dir.path().display()),
        "/etc/shadow".into(),
    ] {
        assert!(
            line(&result, &format!("READ {path}:")).contains("No such file"),
            "{path}: {result}"
        );
    }
    assert!(!result.contains("host secret"), "{result}");
    // The worker's environment is not passed; HOME is the sandbox's.
    assert!(result.contains("CARGO_MANIFEST_DIR=<unset>"), "{result}");
    assert!(result.contains("HOME=/home/agent"), "{result}");
    // No network but through the proxy: the API is not reachable directly
    // (the sandbox's loopback is its own)…
    let direct = format!("FETCH http://127.0.0.1:{api}/healthz -> error: connect");
    assert!(result.lines().any(|l| l.starts_with(&direct)), "{result}");
    // …nor through the proxy: an IP literal, an allowed name resolving to
    // loopback, the metadata address, a private address are all refused.
    for url in [
        format!("http://localhost:{api}/healthz"),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://10.11.12.13/".into(),
    ] {
        assert!(
            line(&result, &format!("FETCH {url} -> ")).contains("-> 403"),
            "{url}: {result}"
        );
    }
    let literal = format!("FETCH http://127.0.0.1:{api}/healthz -> ");
    assert_eq!(
        result.lines().filter(|l| l.starts_with(&literal)).count(),
        2,
        "{result}"
    );
    assert!(
        result
            .lines()
            .any(|l| l.starts_with(&literal) && l.contains("-> 403")),
        "{result}"
    );
    // The model's API host (the operator's) is reachable through the proxy.
    assert_eq!(
        line(&result, &format!("FETCH http://{model}/v1/messages -> ")),
        format!("FETCH http://{model}/v1/messages -> 200 model stand-in"),
        "{result}"
    );
    // The workspace is writable (and only a copy: the project is untouched).
    assert!(!app.project_dir.path().join("made-here.txt").exists());
    let (_, logs) = app.get(&format!("/api/v1/executions/{id}/logs")).await;
    let text = logs.to_string();
    assert!(text.contains("made-here.txt"), "{text}");
    assert!(
        text.contains("resolves to a non-public address"),
        "refusals are noted on the log: {text}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weakening_settings_are_refused_at_registration() {
    let app = spawn_app(Backend::Sqlite, Options::without_worker())
        .await
        .expect("sqlite");
    let cases = [
        (
            "security:\n  networkMode: host\n",
            "security.networkMode `host` is refused",
        ),
        (
            "security:\n  networkMode: ccs_default\n",
            "security.networkMode `ccs_default` is refused",
        ),
        (
            "security:\n  noNewPrivileges: false\n",
            "security.noNewPrivileges `false` is refused",
        ),
        (
            "security:\n  dropCapabilities: []\n",
            "security.dropCapabilities must include ALL",
        ),
        (
            "security:\n  dropCapabilities: [NET_RAW]\n",
            "security.dropCapabilities must include ALL",
        ),
        (
            "security:\n  runAsUser: node\n",
            "security.runAsUser: the process runner takes a numeric uid",
        ),
    ];
    for (i, (yaml, wanted)) in cases.iter().enumerate() {
        let res = app
            .client
            .post(app.url("/api/v1/projects"))
            .bearer_auth(&app.admin_key)
            .json(&serde_json::json!({
                "name": format!("weak-{i}"),
                "path": app.project_dir.path(),
                "containerConfig": yaml,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{yaml}");
        let body: serde_json::Value = res.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(wanted), "{yaml}: {error}");
    }
    let (_, projects) = app.get("/api/v1/projects").await;
    assert_eq!(
        projects.to_string().matches("weak-").count(),
        0,
        "{projects}"
    );
    app.shutdown().await;
}
