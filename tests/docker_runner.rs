//! The Docker runner against the real Docker engine: limits and isolation,
//! timeouts, cancel and out-of-memory, secrets, the egress allow-list, orphan
//! reaping, refusals. SQLite only (the runner does not depend on the
//! backend; `tests/worker_liveness.rs` covers the one query it adds).
//!
//! Needs a Docker daemon and the image `ccs-test-agent:latest`
//! (`scripts/build-test-agent-image.sh`, run here if the image is missing).
//! Without a daemon each test prints why and passes, unless
//! `CCS_REQUIRE_DOCKER=1` (CI), which makes it fail.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    EventsOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};
use ccs::db::Backend;
use ccs::runner::docker::{DockerRunner, DockerRunnerConfig};
use common::{Options, TestApp, WorkerProcess, spawn_app};
use futures::StreamExt as _;
use serde_json::{Value, json};

const IMAGE: &str = "ccs-test-agent:latest";
const WAIT: Duration = Duration::from_secs(90);

/// Whether Docker tests must run (CI) rather than skip.
fn docker_required() -> bool {
    common::required() || std::env::var("CCS_REQUIRE_DOCKER").is_ok_and(|v| v == "1")
}

/// Builds the test agent image once per test process, if it is missing.
async fn ensure_image(docker: &Docker) {
    static BUILT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    BUILT
        .get_or_init(|| async {
            if docker.inspect_image(IMAGE).await.is_ok() {
                return;
            }
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-test-agent-image.sh");
            let status = tokio::process::Command::new(script)
                .status()
                .await
                .expect("run build-test-agent-image.sh");
            assert!(status.success(), "building {IMAGE} failed");
        })
        .await;
}

/// A Docker runner for a test, or `None` (after saying why) without Docker.
async fn runner(
    work_dir: &Path,
    tune: impl FnOnce(&mut DockerRunnerConfig),
) -> Option<DockerRunner> {
    let mut config = DockerRunnerConfig {
        docker_host: None,
        command: vec!["ccs-test-agent".into()],
        default_image: IMAGE.into(),
        work_dir: work_dir.to_path_buf(),
        pass_env: Vec::new(),
        allow_root: false,
        extra_hosts: Vec::new(),
        inspect_dir: None,
    };
    tune(&mut config);
    match DockerRunner::connect(config).await {
        Ok(runner) => {
            ensure_image(runner.client()).await;
            Some(runner)
        }
        Err(e) if docker_required() => {
            panic!("CCS_REQUIRE_DOCKER=1 but Docker is unreachable: {e}")
        }
        Err(e) => {
            eprintln!("skipping: Docker is unreachable ({e})");
            None
        }
    }
}

/// An app whose in-process worker runs agents with the Docker runner.
struct DockerApp {
    app: TestApp,
    docker: Docker,
    inspect_dir: tempfile::TempDir,
    work: tempfile::TempDir,
}

async fn docker_app(
    container_yaml: Option<&str>,
    secrets_file: Option<PathBuf>,
    tune: impl FnOnce(&mut DockerRunnerConfig),
) -> Option<DockerApp> {
    let inspect_dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let inspect = inspect_dir.path().to_path_buf();
    let runner = runner(work.path(), |c| {
        c.inspect_dir = Some(inspect);
        tune(c);
    })
    .await?;
    let docker = runner.client().clone();
    let app = spawn_app(
        Backend::Sqlite,
        Options {
            container_yaml: container_yaml.map(str::to_owned),
            runner: Some(Arc::new(runner)),
            secrets_file,
            ..Options::default()
        },
    )
    .await?;
    Some(DockerApp {
        app,
        docker,
        inspect_dir,
        work,
    })
}

/// Containers (any state) labelled with this execution.
async fn containers_of(docker: &Docker, execution: &str) -> Vec<String> {
    let filters = HashMap::from([("label", vec![format!("ccs.execution={execution}")])]);
    docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

async fn networks_of(docker: &Docker, execution: &str) -> Vec<String> {
    let filters = HashMap::from([("label", vec![format!("ccs.execution={execution}")])]);
    docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|n| n.id)
        .collect()
}

/// Container `create` events for this execution between `since` and now.
async fn creations_of(docker: &Docker, execution: &str, since: i64) -> usize {
    let filters = HashMap::from([
        ("type", vec!["container".to_owned()]),
        ("event", vec!["create".to_owned()]),
        ("label", vec![format!("ccs.execution={execution}")]),
    ]);
    let until = chrono::Utc::now().timestamp() + 1;
    let options = EventsOptionsBuilder::new()
        .since(&since.to_string())
        .until(&until.to_string())
        .filters(&filters)
        .build();
    docker.events(Some(options)).count().await
}

async fn logs(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/api/v1/executions/{id}/logs")).await;
    assert_eq!(status, 200, "{body}");
    body["logs"].as_array().cloned().unwrap_or_default()
}

fn log_texts(logs: &[Value]) -> String {
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

/// Waits until a container labelled with the execution is running.
async fn wait_running(docker: &Docker, execution: &str) -> String {
    let start = std::time::Instant::now();
    loop {
        for id in containers_of(docker, execution).await {
            let inspect = docker
                .inspect_container(&id, None::<InspectContainerOptions>)
                .await;
            if inspect
                .ok()
                .and_then(|i| i.state)
                .and_then(|s| s.running)
                .unwrap_or(false)
            {
                return id;
            }
        }
        assert!(
            start.elapsed() < WAIT,
            "no running container for {execution}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn cancel(app: &TestApp, id: &str) {
    assert_eq!(
        app.post_empty(&format!("/api/v1/executions/{id}/cancel"))
            .await,
        202
    );
}

const LOCKED_DOWN: &str = "\
name: locked-down
tools:
  allowed: [Read, Grep, Edit]
mcpServers:
  - name: acme
    command: /opt/acme-mcp
    args: [--stdio]
    env: {ACME_MODE: test}
resources:
  memory: 96Mi
  cpu: 500m
  pids: 64
  timeout: 60s
security:
  runAsUser: 1000
  readOnlyRoot: true
  noNewPrivileges: true
  dropCapabilities: [ALL]
  networkMode: none
env:
  LOG_LEVEL: debug
agent:
  maxToolRisk: medium
";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_in_a_locked_down_container() {
    let Some(d) = docker_app(Some(LOCKED_DOWN), None, |_| {}).await else {
        return;
    };
    let app = &d.app;
    let id = app
        .submit("lock it down\n@write=src/created.txt @write=README.md @env=LOG_LEVEL @env=HOME @result=done")
        .await;
    let e = app.wait_terminal(&id, WAIT).await;
    assert_eq!(
        e["status"],
        "succeeded",
        "{e}\n{}",
        log_texts(&logs(app, &id).await)
    );
    assert_eq!(
        e["result"], "done\nLOG_LEVEL=debug\nHOME=/home/agent",
        "{e}"
    );
    assert_eq!(e["exitCode"], 0, "{e}");

    let logs = logs(app, &id).await;
    let text = log_texts(&logs);
    assert!(text.contains("(docker runner)"), "{text}");
    assert!(
        text.contains("[ccs] changed files: README.md, src/created.txt"),
        "{text}"
    );
    // The init line: cwd, the granted tools, the MCP server from the file.
    let init: Value = logs
        .iter()
        .find(|l| l["kind"] == "system")
        .and_then(|l| serde_json::from_str(l["text"].as_str()?).ok())
        .expect("init line");
    assert_eq!(init["cwd"], "/workspace");
    assert_eq!(init["tools"], json!(["Read", "Grep", "Edit"]));
    assert_eq!(init["mcp_servers"][0]["name"], "acme");
    // The project itself is untouched.
    assert!(!app.project_dir.path().join("src/created.txt").exists());
    assert_eq!(
        std::fs::read_to_string(app.project_dir.path().join("README.md")).unwrap(),
        "a test project\n"
    );
    // The granted tools are in the audit log.
    let (detail,): (String,) = sqlx::query_as(
        "SELECT detail FROM audit_log WHERE action = 'tools.granted' AND subject = ?",
    )
    .bind(&id)
    .fetch_one(&app.database.store)
    .await
    .unwrap();
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["allowed"], json!(["Read", "Grep", "Edit"]));
    assert_eq!(detail["maxToolRisk"], "medium");
    assert!(
        detail["disallowed"]
            .as_array()
            .unwrap()
            .contains(&json!("Bash")),
        "{detail}"
    );

    // What the container was, captured before it was removed.
    let dump = d.inspect_dir.path().join(format!("ccs-{id}-1.json"));
    let inspect: Value = serde_json::from_slice(&std::fs::read(&dump).unwrap()).unwrap();
    let host = &inspect["HostConfig"];
    assert_eq!(host["Memory"], 96 << 20, "{host}");
    assert_eq!(host["MemorySwap"], 96 << 20);
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["PidsLimit"], 64);
    assert_eq!(host["ReadonlyRootfs"], true);
    assert_eq!(host["SecurityOpt"], json!(["no-new-privileges:true"]));
    assert_eq!(host["CapDrop"], json!(["ALL"]));
    assert_eq!(host["NetworkMode"], "none");
    assert_eq!(host["Privileged"], false);
    assert_eq!(host["Init"], true);
    let tmpfs = host["Tmpfs"].as_object().unwrap();
    assert!(
        tmpfs["/tmp"].as_str().unwrap().contains("size="),
        "{tmpfs:?}"
    );
    assert!(
        tmpfs["/home/agent"]
            .as_str()
            .unwrap()
            .contains("uid=1000,gid=1000,mode=0700"),
        "{tmpfs:?}"
    );
    let binds: Vec<&str> = host["Binds"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        binds.iter().any(|b| b.ends_with(":/workspace:rw")),
        "{binds:?}"
    );
    assert!(
        binds.iter().any(|b| b.ends_with(":/ccs/mcp.json:ro")),
        "{binds:?}"
    );
    let config = &inspect["Config"];
    assert_eq!(config["User"], "1000:1000");
    assert_eq!(config["Image"], IMAGE);
    assert_eq!(config["WorkingDir"], "/workspace");
    let labels = &config["Labels"];
    assert_eq!(labels["ccs.managed"], "true");
    assert_eq!(labels["ccs.execution"], id.as_str());
    assert_eq!(labels["ccs.attempt"], "1");
    assert_eq!(labels["ccs.project"], "demo");
    let executions = app.store.executions(10).await.unwrap();
    let worker = executions[0].worker_id.clone().unwrap();
    assert_eq!(labels["ccs.worker"], worker.as_str());
    let env: Vec<&str> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(env.contains(&"LOG_LEVEL=debug"), "{env:?}");
    assert!(env.contains(&"HOME=/home/agent"), "{env:?}");
    assert_eq!(inspect["State"]["ExitCode"], 0);
    assert_eq!(inspect["State"]["OOMKilled"], false);

    // Nothing is left: no container, no run directory.
    assert!(containers_of(&d.docker, &id).await.is_empty());
    assert_eq!(std::fs::read_dir(d.work.path()).unwrap().count(), 0);
    d.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timeout_cancel_and_oom_leave_no_container() {
    let yaml = "resources:\n  memory: 8Mi\n  timeout: 4s\n";
    let Some(d) = docker_app(Some(yaml), None, |_| {}).await else {
        return;
    };
    let app = &d.app;
    let timeout = app.submit("@hang timing out").await;
    let cancelled = app.submit("@hang to be cancelled").await;
    let oom = app.submit("@alloc=64 @sleep=1").await;

    // Output is streamed as it comes: the init line is logged while the
    // agent (which never ends by itself) still runs.
    let container = wait_running(&d.docker, &cancelled).await;
    let start = std::time::Instant::now();
    while !logs(app, &cancelled)
        .await
        .iter()
        .any(|l| l["kind"] == "system")
    {
        assert!(start.elapsed() < WAIT, "no output while running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let running = d
        .docker
        .inspect_container(&container, None::<InspectContainerOptions>)
        .await
        .unwrap()
        .state
        .and_then(|s| s.running);
    assert_eq!(running, Some(true));
    cancel(app, &cancelled).await;
    let e = app.wait_terminal(&cancelled, WAIT).await;
    assert_eq!(e["status"], "cancelled", "{e}");

    let e = app.wait_terminal(&timeout, WAIT).await;
    assert_eq!(e["status"], "timed_out", "{e}");
    assert_eq!(e["error"], "timed out after 4s");

    let e = app.wait_terminal(&oom, WAIT).await;
    assert_eq!(e["status"], "failed", "{e}");
    assert_eq!(e["error"], "the agent ran out of memory", "{e}");
    assert_eq!(e["exitCode"], 137, "{e}");
    // The OOM run got as far as its first line: it ran, then was killed.
    assert!(
        logs(app, &oom).await.iter().any(|l| l["kind"] == "system"),
        "the agent never started"
    );

    for id in [&timeout, &cancelled, &oom] {
        assert!(
            containers_of(&d.docker, id).await.is_empty(),
            "a container of {id} is left"
        );
    }
    d.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_reach_the_agent_masked_everywhere() {
    const SECRET: &str = "s3cr3t-\"quoted\"-value-41a9";
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("secrets.env");
    std::fs::write(&file, format!("# test secrets\nAPI_TOKEN={SECRET}\n")).unwrap();
    let yaml =
        "env:\n  API_TOKEN: ${API_TOKEN}\n  AUTH_HEADER: 'Bearer ${API_TOKEN}'\n  PLAIN: visible\n";
    let Some(d) = docker_app(Some(yaml), Some(file), |_| {}).await else {
        return;
    };
    let app = &d.app;
    let id = app
        .submit("show me @env=API_TOKEN @env=AUTH_HEADER @env=PLAIN @turns=2 @result=done")
        .await;
    let e = app.wait_terminal(&id, WAIT).await;
    assert_eq!(e["status"], "succeeded", "{e}");
    // The agent had the value; nothing stored or answered shows it.
    assert_eq!(
        e["result"],
        "done\nAPI_TOKEN=***\nAUTH_HEADER=Bearer ***\nPLAIN=visible"
    );
    let (_, execution) = app.get(&format!("/api/v1/executions/{id}")).await;
    let (_, logs_answer) = app.get(&format!("/api/v1/executions/{id}/logs")).await;
    for answer in [execution.to_string(), logs_answer.to_string()] {
        assert!(!answer.contains("s3cr3t"), "{answer}");
    }
    assert!(
        logs_answer.to_string().contains("API_TOKEN=***"),
        "{logs_answer}"
    );
    // Not in any column of any table either.
    for (table, column) in [
        ("logs", "text"),
        ("executions", "result"),
        ("audit_log", "detail"),
    ] {
        let (count,): (i64,) = sqlx::query_as(&format!(
            "SELECT COUNT(*) FROM {table} WHERE {column} LIKE '%s3cr3t%'"
        ))
        .fetch_one(&app.database.store)
        .await
        .unwrap();
        assert_eq!(count, 0, "the secret is stored in {table}.{column}");
    }
    // Not in the container's inspect output's labels or command either
    // (it is in its environment, where it belongs).
    let dump =
        std::fs::read_to_string(d.inspect_dir.path().join(format!("ccs-{id}-1.json"))).unwrap();
    let inspect: Value = serde_json::from_str(&dump).unwrap();
    assert!(!inspect["Config"]["Cmd"].to_string().contains("s3cr3t"));
    assert!(!inspect["Config"]["Labels"].to_string().contains("s3cr3t"));

    // An undefined secret fails the execution before any container starts.
    let since = chrono::Utc::now().timestamp() - 1;
    let project = register_raw(app, "needs-secret", "env:\n  KEY: ${NOT_DEFINED}\n").await;
    let id = submit_to(app, project, "@env=KEY").await;
    let e = app.wait_terminal(&id, WAIT).await;
    assert_eq!(e["status"], "failed", "{e}");
    assert_eq!(
        e["error"],
        "env.KEY: secret `NOT_DEFINED` is not defined; set CCS_SECRET_NOT_DEFINED in the \
         worker's environment or add `NOT_DEFINED=…` to its secrets file"
    );
    assert_eq!(creations_of(&d.docker, &id, since).await, 0);
    d.app.shutdown().await;
}

/// Like `TestApp::wait_terminal`, but dumps the queue when it gives up.
async fn wait_terminal_or_dump(app: &TestApp, id: &str) -> Value {
    let start = std::time::Instant::now();
    loop {
        let (_, e) = app.get(&format!("/api/v1/executions/{id}")).await;
        let status = e["status"].as_str().unwrap_or_default().to_owned();
        if !["queued", "running", ""].contains(&status.as_str()) {
            return e;
        }
        if start.elapsed() > WAIT {
            let rows: Vec<(String, String, i64, Option<String>, i64)> =
                sqlx::query_as("SELECT id, status, attempts, lock_by, run_at FROM Jobs")
                    .fetch_all(&app.database.store)
                    .await
                    .unwrap_or_default();
            panic!("{id} still {status}: {e}\njobs: {rows:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Registers a project whose container.yaml is stored as given, valid or
/// not (as if edited after registration).
async fn register_raw(app: &TestApp, name: &str, yaml: &str) -> i64 {
    let project = app
        .store
        .create_project(&ccs::store::NewProject {
            name: name.into(),
            path: app.project_dir.path().display().to_string(),
            description: None,
            container_yaml: Some(yaml.into()),
            workflow_yaml: None,
            repository: None,
            github_config: None,
        })
        .await
        .unwrap();
    project.id
}

async fn submit_to(app: &TestApp, project_id: i64, prompt: &str) -> String {
    let res = app
        .client
        .post(app.url("/webhook/execute"))
        .bearer_auth(&app.admin_key)
        .json(&json!({ "projectId": project_id, "prompt": prompt, "source": "custom" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    body["executionId"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refuses_root_and_unknown_tools_before_any_container() {
    let Some(d) = docker_app(None, None, |_| {}).await else {
        return;
    };
    let app = &d.app;
    let since = chrono::Utc::now().timestamp() - 1;
    let cases = [
        (
            "as-root",
            "security:\n  runAsUser: 0\n",
            "could not start the agent: the project's security.runAsUser `0` runs the agent \
             as root, which this worker refuses (start it with --allow-root-containers to \
             permit root)",
        ),
        (
            "as-root-by-name",
            "security:\n  runAsUser: 'root:root'\n",
            "runs the agent as root",
        ),
        (
            "unknown-tool",
            "tools:\n  allowed: [Read, Teleport]\n",
            "unknown tool `Teleport`",
        ),
        (
            "too-risky",
            "agent:\n  maxToolRisk: low\ntools:\n  allowed: [Read, Bash]\n",
            "tool `Bash` is high risk, above the project's agent.maxToolRisk `low`",
        ),
        (
            "unknown-mcp",
            "mcpServers:\n  - name: jira\n",
            "MCP server `jira` is not in the built-in catalog",
        ),
        (
            "egress-on-host-network",
            "security:\n  networkMode: host\n  allowedDomains: [github.com]\n",
            "security.allowedDomains needs networkMode `bridge`",
        ),
    ];
    let mut ids = Vec::new();
    for (name, yaml, _) in &cases {
        let project = register_raw(app, name, yaml).await;
        ids.push(submit_to(app, project, "@result=should not run").await);
    }
    for ((name, _, wanted), id) in cases.iter().zip(&ids) {
        let e = wait_terminal_or_dump(app, id).await;
        assert_eq!(e["status"], "failed", "{name}: {e}");
        let error = e["error"].as_str().unwrap();
        assert!(error.contains(wanted), "{name}: {error}");
        assert!(e["result"].is_null(), "{name}: {e}");
        assert_eq!(creations_of(&d.docker, id, since).await, 0, "{name}");
    }
    d.app.shutdown().await;

    // With --allow-root-containers the same configuration runs, as root.
    let Some(d) = docker_app(Some("security:\n  runAsUser: 0\n"), None, |c| {
        c.allow_root = true
    })
    .await
    else {
        return;
    };
    let id = d.app.submit("@result=as root").await;
    let e = d.app.wait_terminal(&id, WAIT).await;
    assert_eq!(e["status"], "succeeded", "{e}");
    let inspect: Value = serde_json::from_slice(
        &std::fs::read(d.inspect_dir.path().join(format!("ccs-{id}-1.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(inspect["Config"]["User"], "0:0");
    d.app.shutdown().await;
}

/// A container of the test agent image started by a test on Docker's
/// default bridge (not by ccs), removed on drop.
struct TestContainer {
    docker: Docker,
    id: String,
    /// Its address on the default bridge.
    ip: String,
}

impl TestContainer {
    async fn start(
        docker: &Docker,
        prompt: &str,
        labels: HashMap<String, String>,
    ) -> TestContainer {
        use bollard::models::ContainerCreateBody;
        let body = ContainerCreateBody {
            image: Some(IMAGE.into()),
            cmd: Some(
                ["-p", prompt, "--output-format", "stream-json", "--verbose"]
                    .map(str::to_owned)
                    .to_vec(),
            ),
            labels: Some(labels),
            ..Default::default()
        };
        let id = docker.create_container(None, body).await.unwrap().id;
        docker.start_container(&id, None).await.unwrap();
        let inspect = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .unwrap();
        let ip = inspect
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|n| n.get("bridge").and_then(|b| b.ip_address.clone()))
            .expect("an address on the default bridge");
        TestContainer {
            docker: docker.clone(),
            id,
            ip,
        }
    }

    /// A web host outside the runs' networks, serving HTTP on port 8080.
    async fn web_host(docker: &Docker) -> TestContainer {
        let labels = HashMap::from([("ccs.test".to_owned(), "web-host".to_owned())]);
        TestContainer::start(docker, "@serve=8080", labels).await
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        let (docker, id) = (self.docker.clone(), self.id.clone());
        // Drop cannot await; the runtime may be ending, so use a thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let options = RemoveContainerOptionsBuilder::new().force(true).build();
                let _ = docker.remove_container(&id, Some(options)).await;
            });
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn egress_goes_only_to_allowed_domains_through_the_proxy() {
    // The web host's address is only known once it runs, so probe Docker first.
    let probe_dir = tempfile::tempdir().unwrap();
    let Some(probe) = runner(probe_dir.path(), |_| {}).await else {
        return;
    };
    let web = TestContainer::web_host(probe.client()).await;
    let ip = web.ip.clone();
    let yaml = "security:\n  allowedDomains: [allowed.test]\n";
    let Some(d) = docker_app(Some(yaml), None, |c| {
        c.extra_hosts = vec![format!("allowed.test:{ip}"), format!("blocked.test:{ip}")];
    })
    .await
    else {
        return;
    };
    let app = &d.app;
    let id = app
        .submit(
            "@fetch=http://allowed.test:8080/via-proxy @fetch=http://sub.allowed.test:8080/sub \
             @fetch=http://blocked.test:8080/refused @fetch-direct=http://allowed.test:8080/direct \
             @result=fetched",
        )
        .await;
    let e = app.wait_terminal(&id, WAIT).await;
    assert_eq!(e["status"], "succeeded", "{e}");
    let result = e["result"].as_str().unwrap();
    let lines: Vec<&str> = result.lines().collect();
    assert_eq!(lines[0], "fetched");
    // Through the proxy to the allowed name: the web host answers.
    assert_eq!(
        lines[1],
        "FETCH http://allowed.test:8080/via-proxy -> 200 hello from ccs-test-agent /via-proxy"
    );
    // A subdomain is allowed too, but no one serves it: the proxy cannot
    // resolve it (502), which is not a refusal.
    assert!(
        lines[2].starts_with("FETCH http://sub.allowed.test:8080/sub -> 502"),
        "{result}"
    );
    // The blocked name: refused by the proxy.
    assert_eq!(
        lines[3],
        "FETCH http://blocked.test:8080/refused -> 403 ccs egress proxy: blocked.test is not \
         in this project's security.allowedDomains"
    );
    // Without the proxy there is no way out.
    assert!(
        lines[4].starts_with(&format!(
            "FETCH http://allowed.test:8080/direct -> error: connect {ip}:8080"
        )),
        "{result}"
    );
    let text = log_texts(&logs(app, &id).await);
    assert!(
        text.contains(
            "[ccs] egress refused: GET http://blocked.test:8080 (not in security.allowedDomains)"
        ),
        "{text}"
    );
    // The container was on an internal network of its own, and had the proxy.
    let inspect: Value = serde_json::from_slice(
        &std::fs::read(d.inspect_dir.path().join(format!("ccs-{id}-1.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(inspect["HostConfig"]["NetworkMode"], format!("ccs-{id}-1"));
    let env = inspect["Config"]["Env"].to_string();
    assert!(env.contains("HTTPS_PROXY=http://"), "{env}");
    // The network is gone with the container.
    assert!(networks_of(&d.docker, &id).await.is_empty());
    assert!(containers_of(&d.docker, &id).await.is_empty());
    d.app.shutdown().await;
    drop(web);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orphans_of_a_killed_worker_are_reaped_live_ones_are_not() {
    let probe_dir = tempfile::tempdir().unwrap();
    let Some(probe) = runner(probe_dir.path(), |_| {}).await else {
        return;
    };
    let docker = probe.client().clone();
    let Some(app) = spawn_app(Backend::Sqlite, Options::without_worker()).await else {
        return;
    };
    let id = app.submit("@hang left behind").await;
    let mut first = WorkerProcess::spawn_docker(&app, 1, IMAGE);
    let orphan = wait_running(&docker, &id).await;
    first.kill9();
    let _ = first.child.wait().await;
    // The daemon keeps the container running without its worker.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        containers_of(&docker, &id).await,
        std::slice::from_ref(&orphan)
    );
    // A container of another deployment on the same Docker host: its worker
    // is not in our table either, but its execution is not ours.
    let foreign_execution = uuid::Uuid::now_v7().to_string();
    let foreign = TestContainer::start(
        &docker,
        "@hang foreign",
        HashMap::from([
            ("ccs.managed".to_owned(), "true".to_owned()),
            (
                "ccs.worker".to_owned(),
                "worker-of-another-deployment".to_owned(),
            ),
            ("ccs.execution".to_owned(), foreign_execution.clone()),
            ("ccs.attempt".to_owned(), "1".to_owned()),
        ]),
    )
    .await;

    // The next worker takes the job over (a new container, its own) and
    // removes the dead worker's container, not its own.
    let mut second = WorkerProcess::spawn_docker(&app, 1, IMAGE);
    let start = std::time::Instant::now();
    let live = loop {
        let ids = containers_of(&docker, &id).await;
        if !ids.contains(&orphan) && ids.len() == 1 {
            break ids[0].clone();
        }
        if start.elapsed() > WAIT {
            let (_, e) = app.get(&format!("/api/v1/executions/{id}")).await;
            panic!(
                "orphan {orphan} not reaped or no new run: {ids:?}\n{e}\n{}",
                log_texts(&logs(&app, &id).await)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let inspect = docker
        .inspect_container(&live, None::<InspectContainerOptions>)
        .await
        .unwrap();
    assert_eq!(inspect.state.and_then(|s| s.running), Some(true));
    let labels = inspect.config.and_then(|c| c.labels).unwrap();
    assert_eq!(labels["ccs.attempt"], "2");
    // Several sweeps later, the live worker's container is still there, and
    // so is the other deployment's.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(containers_of(&docker, &id).await, [live]);
    assert_eq!(
        containers_of(&docker, &foreign_execution).await,
        std::slice::from_ref(&foreign.id)
    );
    drop(foreign);

    cancel(&app, &id).await;
    let e = app.wait_terminal(&id, WAIT).await;
    assert_eq!(e["status"], "cancelled", "{e}");
    assert_eq!(e["attempts"], 2, "{e}");
    assert!(containers_of(&docker, &id).await.is_empty());
    second.term();
    let _ = tokio::time::timeout(Duration::from_secs(20), second.child.wait()).await;
    app.shutdown().await;
}

/// A workflow's validation gate runs the project's tests after the agent,
/// in the agent's workspace and in a container just like the agent's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn validation_checks_run_in_a_container_like_the_agents() {
    let Some(d) = docker_app(None, None, |_| {}).await else {
        return;
    };
    let app = &d.app;
    let container = format!(
        "{LOCKED_DOWN}test:\n  command: \"grep -q PASS fixed.txt && echo tests ok as $(id -u) in $(pwd)\"\n  coverage: \"cat fixed.txt\"\n"
    );
    let workflow = "name: checked\nagents:\n  - name: coder\n    prompt: \"@write=fixed.txt PASS 87%\"\n\
                    workflow:\n  safety:\n    validation: {requirePassingTests: true, minCoverage: 80}\n";
    app.store
        .create_project(&ccs::store::NewProject {
            name: "checked".into(),
            path: app.project_dir.path().display().to_string(),
            description: None,
            container_yaml: Some(container),
            workflow_yaml: Some(workflow.into()),
            repository: None,
            github_config: None,
        })
        .await
        .unwrap();
    let res = app
        .client
        .post(app.url("/api/v1/workflows"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"project": "checked", "context": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{:?}", res.text().await);
    let run: Value = res.json().await.unwrap();
    let run_id = run["workflowId"].as_str().unwrap();
    let start = std::time::Instant::now();
    let run = loop {
        let (_, r) = app.get(&format!("/api/v1/workflows/{run_id}")).await;
        if ["succeeded", "failed"].contains(&r["status"].as_str().unwrap_or_default()) {
            break r;
        }
        assert!(start.elapsed() < WAIT, "run never ended: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id = run["steps"][0]["executionId"].as_str().unwrap().to_owned();
    let (_, e) = app.get(&format!("/api/v1/executions/{id}")).await;
    let text = log_texts(&logs(app, &id).await);
    assert_eq!(run["status"], "succeeded", "{run}\n{e}\n{text}");
    assert_eq!(e["validation"]["passed"], true, "{e}");
    assert_eq!(e["validation"]["coverage"]["percent"], 87.0, "{e}");
    // The tests saw the agent's change, as the agent's user, in /workspace.
    assert!(text.contains("tests ok as 1000 in /workspace"), "{text}");

    // Each check had a container of its own, configured like the agent's.
    let inspect = |name: String| {
        let path = d.inspect_dir.path().join(format!("{name}.json"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str::<Value>(&text).unwrap()
    };
    let agent = inspect(format!("ccs-{id}-1"));
    for check in ["test", "coverage"] {
        let c = inspect(format!("ccs-{id}-1-{check}"));
        assert_eq!(c["Config"]["Entrypoint"], json!(["/bin/sh", "-c"]), "{c}");
        for field in [
            "/Config/Image",
            "/Config/User",
            "/Config/WorkingDir",
            "/HostConfig/Memory",
            "/HostConfig/NanoCpus",
            "/HostConfig/PidsLimit",
            "/HostConfig/ReadonlyRootfs",
            "/HostConfig/CapDrop",
            "/HostConfig/SecurityOpt",
            "/HostConfig/NetworkMode",
            "/HostConfig/Binds",
        ] {
            assert_eq!(c.pointer(field), agent.pointer(field), "{check} {field}");
        }
        assert_eq!(c["Config"]["Labels"]["ccs.execution"], id.as_str());
    }
    // And none is left.
    assert!(containers_of(&d.docker, &id).await.is_empty());
    d.app.shutdown().await;
}
