//! Test harness: a fresh database per test on each backend, the API on
//! port 0, workers in-process or as separate OS processes, and the test
//! agent in place of the `claude` CLI.
//!
//! Backends: SQLite always; MariaDB and PostgreSQL when
//! `CCS_TEST_MYSQL_URL` / `CCS_TEST_POSTGRES_URL` name a server
//! (`scripts/db/start-all.sh` starts both). Under CI (`CI=true`, or
//! `CCS_REQUIRE_ALL_BACKENDS=1`) a missing server, Docker or tool fails the
//! test instead of skipping it ([`required`]).

#![allow(dead_code)]

pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccs::db::{Backend, Database};
use ccs::http::Server;
use ccs::runner::egress_proxy::EgressSettings;
use ccs::runner::process::{Isolation, ProcessRunner};
use ccs::runner::sandbox::Sandbox;
use ccs::settings::{ApiArgs, WorkerArgs};
use ccs::store::{Permission, Store};
use serde_json::{Value, json};
use sqlx::Connection as _;
use tokio_util::sync::CancellationToken;

/// Whether a missing piece (database server, Docker, promtool) must fail
/// the test rather than skip it: under CI (`CI=true`) or with
/// `CCS_REQUIRE_ALL_BACKENDS=1`.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("CCS_REQUIRE_ALL_BACKENDS").is_ok_and(|v| v == "1")
}

/// Runs `promtool check metrics` (Debian's `prometheus` package) on a
/// `/metrics` text and fails on any problem it reports. Without promtool
/// the check is skipped, except under CI.
pub fn promtool_check_metrics(text: &str) {
    use std::io::Write as _;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required() => {
            eprintln!("promtool not installed: `promtool check metrics` skipped");
            return;
        }
        Err(e) => panic!("cannot run promtool (apt-get install prometheus): {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How long [`eventually`] waits before it fails the test: a guard against
/// a test that would hang, not a measure of speed.
pub const EVENTUALLY: Duration = Duration::from_secs(90);

/// Polls `check` (every 50 ms) until it returns `Some`, and returns that;
/// fails the test with `what` and the last value seen after [`EVENTUALLY`].
///
/// ```ignore
/// let run = eventually("the run to finish", || async {
///     let r = app.get(&path).await.1;
///     (r["status"] == "succeeded").then_some(r)
/// }).await;
/// ```
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_within(what, EVENTUALLY, check).await
}

/// [`eventually`] with a guard of its own.
pub async fn eventually_within<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < within,
            "gave up waiting for {what} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A database created for one test and dropped with it: a temporary
/// directory on SQLite, a `ccs_t_…` database on MariaDB and PostgreSQL.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// The server's admin URL and the database's name (servers only).
    server: Option<(String, String)>,
}

impl TestDb {
    /// A fresh database, or `None` when the backend's server is not
    /// configured (and not required).
    pub async fn new(backend: Backend) -> Option<TestDb> {
        let name = format!("ccs_t_{}", uuid::Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("ccs.db").display());
                Some(TestDb {
                    backend,
                    url,
                    _dir: Some(dir),
                    server: None,
                })
            }
            Backend::MySql | Backend::Postgres => {
                let var = if backend == Backend::MySql {
                    "CCS_TEST_MYSQL_URL"
                } else {
                    "CCS_TEST_POSTGRES_URL"
                };
                let Ok(admin) = std::env::var(var) else {
                    if required() {
                        panic!("{var} is not set, and CI requires every backend");
                    }
                    eprintln!("skipping: {var} not set");
                    return None;
                };
                sqlx::any::install_default_drivers();
                let mut conn = sqlx::AnyConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("cannot reach {backend} at {admin}: {e}"));
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                Some(TestDb {
                    backend,
                    url: format!("{base}/{name}"),
                    _dir: None,
                    server: Some((admin, name)),
                })
            }
        }
    }
}

impl Drop for TestDb {
    /// Drops the server database, on a thread of its own (the test's
    /// runtime may be single-threaded or gone). Connections still open are
    /// closed by the server (PostgreSQL `FORCE`); a drop that fails is
    /// reported, not fatal.
    fn drop(&mut self) {
        let Some((admin, name)) = self.server.take() else {
            return;
        };
        let statement = match self.backend {
            Backend::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            _ => format!("DROP DATABASE IF EXISTS {name}"),
        };
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let drop = async {
                    let mut conn = sqlx::AnyConnection::connect(&admin).await?;
                    sqlx::query(&statement).execute(&mut conn).await?;
                    conn.close().await
                };
                match tokio::time::timeout(Duration::from_secs(30), drop).await {
                    Ok(result) => result.map_err(std::io::Error::other),
                    Err(_) => Err(std::io::Error::other("timed out")),
                }
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("test database {} was not dropped: {dropped:?}", self.url);
        }
    }
}

/// The test agent binary (built with the workspace).
pub fn test_agent() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_ccs"));
    let path = exe.with_file_name("ccs-test-agent");
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "ccs-test-agent"])
            .status()
            .expect("cargo build");
        assert!(status.success(), "building the test agent failed");
    }
    path
}

pub fn ccs_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ccs"))
}

/// The process runner as `ccs worker --runner process` makes it: the test
/// agent in a bubblewrap sandbox, `ccs sandbox-init` relaying its egress.
/// `<work_dir>/shared` is bound read-write into every sandbox (markers that
/// outlive one run, such as `@fail-once=`).
pub fn sandboxed_runner(work_dir: &Path, pass_env: &[String]) -> ProcessRunner {
    let shared = work_dir.join("shared");
    std::fs::create_dir_all(&shared).expect("shared dir");
    ProcessRunner {
        command: vec![test_agent().display().to_string()],
        work_dir: work_dir.to_path_buf(),
        pass_env: pass_env.to_vec(),
        isolation: Isolation::Sandbox {
            sandbox: Sandbox {
                bwrap: "bwrap".into(),
                init: ccs_bin(),
                ro_binds: Vec::new(),
                rw_binds: vec![shared],
            },
            egress: EgressSettings {
                model_hosts: vec!["api.anthropic.com".into()],
                ..EgressSettings::default()
            },
        },
    }
}

/// A running API (and optionally an in-process worker) on a fresh database.
pub struct TestApp {
    pub proxy: Option<proxy::FlakyProxy>,
    pub db: TestDb,
    pub database: Database,
    pub store: Store,
    pub addr: std::net::SocketAddr,
    pub admin_key: String,
    pub project_id: i64,
    pub project_dir: tempfile::TempDir,
    pub work_dir: tempfile::TempDir,
    pub client: reqwest::Client,
    pub stop: CancellationToken,
    worker: Option<tokio::task::JoinHandle<()>>,
}

pub struct Options {
    /// Route ccs's database connections through a [`proxy::FlakyProxy`].
    pub via_proxy: bool,
    pub in_process_worker: bool,
    pub container_yaml: Option<String>,
    pub max_body_bytes: usize,
    /// The API's ingestion rate limits (none by default).
    pub rate_limits: ccs::settings::RateLimitArgs,
    /// The in-process worker's runner (default: the process runner with the
    /// test agent).
    pub runner: Option<Arc<dyn ccs::runner::Runner>>,
    /// The in-process worker's `--secrets-file`.
    pub secrets_file: Option<PathBuf>,
    /// The API's `CCS_GITHUB_WEBHOOK_SECRET`.
    pub github_webhook_secret: Option<String>,
}

impl Options {
    /// No in-process worker: jobs wait until a test starts one.
    pub fn without_worker() -> Self {
        Self {
            in_process_worker: false,
            ..Self::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            via_proxy: false,
            in_process_worker: true,
            container_yaml: None,
            max_body_bytes: 64 * 1024,
            rate_limits: Default::default(),
            runner: None,
            secrets_file: None,
            github_webhook_secret: None,
        }
    }
}

pub fn worker_args(work_dir: &Path) -> WorkerArgs {
    WorkerArgs {
        concurrency: 4,
        agent_command: test_agent().display().to_string(),
        default_timeout: Duration::from_secs(60),
        heartbeat_interval: Duration::from_secs(1),
        missed_heartbeats: 3,
        poll_interval: Duration::from_millis(50),
        shutdown_grace: Duration::from_secs(5),
        work_dir: Some(work_dir.to_path_buf()),
        pass_env: vec!["CCS_TEST_AGENT_RECORD".into()],
        worker_listen: "127.0.0.1:0".parse().unwrap(),
        limits: ccs::settings::LimitArgs::default(),
        secrets_file: None,
        docker: ccs::settings::DockerArgs::default(),
        github: Default::default(),
        sandbox: ccs::settings::SandboxArgs::default(),
        egress: ccs::settings::EgressArgs::default(),
    }
}

/// Logs of the code under test, captured per test (`RUST_LOG`, default warn).
pub fn init_test_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

pub async fn spawn_app(backend: Backend, options: Options) -> Option<TestApp> {
    init_test_logging();
    let db = TestDb::new(backend).await?;
    let (url, proxy) = if options.via_proxy {
        let (prefix, rest) = db.url.split_once('@').expect("server URL");
        let (hostport, path) = rest.split_once('/').expect("database name");
        let target = tokio::net::lookup_host(hostport)
            .await
            .unwrap()
            .next()
            .unwrap();
        let proxy = proxy::FlakyProxy::start(target).await;
        (format!("{prefix}@{}/{path}", proxy.addr), Some(proxy))
    } else {
        (db.url.clone(), None)
    };
    let database = Database::connect(&url, 16).await.expect("connect");
    database.migrate().await.expect("migrate");
    let store = Store::new(database.store.clone(), backend);
    let admin = ccs::auth::issue_key(&store, "admin", &[Permission::Admin], None)
        .await
        .expect("admin key");
    let project_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(project_dir.path().join("README.md"), "a test project\n").unwrap();
    if let Some(yaml) = &options.container_yaml {
        std::fs::create_dir_all(project_dir.path().join(".claude")).unwrap();
        std::fs::write(project_dir.path().join(".claude/container.yaml"), yaml).unwrap();
    }
    let project = ccs::projects::register(
        &store,
        ccs::projects::NewProjectRequest {
            name: "demo".into(),
            path: project_dir.path().to_path_buf(),
            description: None,
            container: None,
            workflow: None,
            repository: None,
            github: None,
        },
    )
    .await
    .expect("project");
    let stop = CancellationToken::new();
    let api = ApiArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_body_bytes: options.max_body_bytes,
        max_prompt_bytes: 16 * 1024,
        rate_limits: options.rate_limits.clone(),
        github_webhook_secret: options
            .github_webhook_secret
            .as_deref()
            .map(ccs::github::WebhookSecret::new),
        ui: ccs::ui::UiConfig::default(),
        runner_policy: Default::default(),
    };
    let server = Server::bind(
        api.listen,
        ccs::http::app(store.clone(), &api),
        stop.clone(),
    )
    .await
    .expect("bind the API");
    let addr = server.addr;
    let work_dir = tempfile::tempdir().expect("tempdir");
    let worker = if options.in_process_worker {
        let mut args = worker_args(work_dir.path());
        args.secrets_file = options.secrets_file.clone();
        let runner = match options.runner.clone() {
            Some(runner) => runner,
            None => Arc::new(sandboxed_runner(work_dir.path(), &args.pass_env)),
        };
        let database = database.clone();
        let stop = stop.clone();
        Some(tokio::spawn(async move {
            ccs::worker::run(&database, &args, runner, stop)
                .await
                .expect("worker");
        }))
    } else {
        None
    };
    Some(TestApp {
        proxy,
        db,
        database,
        store,
        addr,
        admin_key: admin.key,
        project_id: project.id,
        project_dir,
        work_dir,
        client: reqwest::Client::new(),
        stop,
        worker,
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn key(&self, permissions: &[Permission]) -> String {
        ccs::auth::issue_key(&self.store, "k", permissions, None)
            .await
            .unwrap()
            .key
    }

    /// POST /webhook/execute with the admin key; returns the execution id.
    pub async fn submit(&self, prompt: &str) -> String {
        let res = self
            .client
            .post(self.url("/webhook/execute"))
            .bearer_auth(&self.admin_key)
            .json(&json!({ "projectId": self.project_id, "prompt": prompt, "source": "custom" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{:?}", res.text().await);
        let body: Value = res.json().await.unwrap();
        body["executionId"].as_str().unwrap().to_owned()
    }

    /// POST with no body and the admin key; returns the status.
    pub async fn post_empty(&self, path: &str) -> u16 {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the execution is terminal; fails after `within`.
    pub async fn wait_terminal(&self, id: &str, within: Duration) -> Value {
        eventually_within(&format!("execution {id} to end"), within, || async {
            let (_, e) = self.get(&format!("/api/v1/executions/{id}")).await;
            let status = e["status"].as_str().unwrap_or_default();
            (!["queued", "running", ""].contains(&status)).then_some(e)
        })
        .await
    }

    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(w) = self.worker.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
        }
        self.database.close().await;
    }
}

impl Drop for TestApp {
    /// Stops the API and the in-process worker before the database goes.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A `ccs worker` OS process on the app's database.
pub struct WorkerProcess {
    pub child: tokio::process::Child,
}

impl WorkerProcess {
    pub fn spawn(app: &TestApp, concurrency: usize) -> WorkerProcess {
        Self::spawn_with(app, concurrency, None, &[])
    }

    /// A worker with extra command-line arguments (limits, say).
    pub fn spawn_with_args(app: &TestApp, concurrency: usize, args: &[&str]) -> WorkerProcess {
        Self::spawn_with(app, concurrency, None, args)
    }

    /// A worker whose agents append what they were given to `record`.
    pub fn spawn_recording(app: &TestApp, concurrency: usize, record: &Path) -> WorkerProcess {
        Self::spawn_with(app, concurrency, Some(record), &[])
    }

    fn spawn_with(
        app: &TestApp,
        concurrency: usize,
        record: Option<&Path>,
        extra: &[&str],
    ) -> WorkerProcess {
        let mut cmd = tokio::process::Command::new(ccs_bin());
        if let Some(record) = record {
            // The sandboxed agent sees only this file of the host's /tmp.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(record)
                .expect("record file");
            cmd.env("CCS_TEST_AGENT_RECORD", record)
                .env("CCS_PASS_ENV", "CCS_TEST_AGENT_RECORD")
                .env("CCS_SANDBOX_BIND_RW", record);
        }
        let child = cmd
            .args(["worker", "--concurrency", &concurrency.to_string()])
            .args(["--worker-listen", "127.0.0.1:0"])
            .args(["--heartbeat-interval", "1s", "--missed-heartbeats", "3"])
            .args(["--poll-interval", "50ms", "--shutdown-grace", "5s"])
            .args(extra)
            .env("CCS_DATABASE_URL", &app.db.url)
            .env("CCS_AGENT_COMMAND", test_agent())
            .env("CCS_WORK_DIR", app.work_dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn worker");
        WorkerProcess { child }
    }

    /// A `ccs worker --runner docker` running the test agent image.
    pub fn spawn_docker(app: &TestApp, concurrency: usize, image: &str) -> WorkerProcess {
        let child = tokio::process::Command::new(ccs_bin())
            .args(["worker", "--concurrency", &concurrency.to_string()])
            .args(["--worker-listen", "127.0.0.1:0"])
            .args(["--heartbeat-interval", "1s", "--missed-heartbeats", "3"])
            .args(["--poll-interval", "50ms", "--shutdown-grace", "5s"])
            .args(["--runner", "docker", "--agent-command", "ccs-test-agent"])
            .args(["--agent-image", image])
            .env("CCS_DATABASE_URL", &app.db.url)
            .env("CCS_WORK_DIR", app.work_dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn worker");
        WorkerProcess { child }
    }

    pub fn kill9(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    pub fn term(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

/// Runs a test body on every backend: `backend_tests!(name, |backend| async { … })`.
#[macro_export]
macro_rules! backend_tests {
    ($name:ident, $body:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                $body(ccs::db::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn mysql() {
                $body(ccs::db::Backend::MySql).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                $body(ccs::db::Backend::Postgres).await
            }
        }
    };
}

/// Like [`backend_tests!`] for tests that need a database server:
/// MariaDB and PostgreSQL only (no SQLite variant that would do nothing).
#[macro_export]
macro_rules! server_backend_tests {
    ($name:ident, $body:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn mysql() {
                $body(ccs::db::Backend::MySql).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                $body(ccs::db::Backend::Postgres).await
            }
        }
    };
}

/// Whether any process whose command line or working directory contains
/// `needle` is alive. An agent's working directory (the process runner's
/// workspace) holds its execution id; its prompt is on stdin, not in its
/// command line.
pub fn process_alive(needle: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // Zombies (state Z) are dead, merely not yet reaped.
        let zombie = stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z'));
        !zombie
            && (String::from_utf8_lossy(&cmdline).contains(needle)
                || cwd.to_string_lossy().contains(needle))
    })
}
