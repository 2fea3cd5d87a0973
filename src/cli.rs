//! The `ccs` command line: one subcommand per process role, plus admin
//! commands. Configuration is read once here ([`crate::settings`]) and
//! handed down; nothing below reads the environment.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::db::Database;
use crate::http::Server;
use crate::runner::Runner;
use crate::runner::egress_proxy::EgressSettings;
use crate::runner::process::{Isolation, ProcessRunner};
use crate::runner::sandbox::Sandbox;
use crate::settings::{ApiArgs, DatabaseArgs, RunnerArgs, RunnerKind, WorkerArgs};
use crate::store::{Permission, Store};

#[derive(Debug, Parser)]
#[command(
    name = "ccs",
    version,
    about = "Claude Code Service: run Claude Code from webhooks, as jobs"
)]
pub struct Cli {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub runner: RunnerArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// API and a worker pool in one process (SQLite by default).
    Up {
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        worker: WorkerArgs,
    },
    /// The API only: webhooks, JSON API, health, metrics.
    Serve {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A worker only: claims jobs and runs agents.
    Worker {
        #[command(flatten)]
        worker: WorkerArgs,
    },
    /// Apply the database migrations, then exit.
    Migrate,
    /// Manage API keys.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCommand),
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key and print it (alone on stdout; it is not shown again).
    Create {
        #[arg(long)]
        name: String,
        /// execute, read or admin; repeat for several.
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
        /// Lifetime, e.g. 30d or 12h.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Register a project directory (reads DIR/.claude/*.yaml); prints its id.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        path: std::path::PathBuf,
        #[arg(long)]
        description: Option<String>,
        /// The GitHub repository it answers for, `OWNER/NAME`.
        #[arg(long = "repo")]
        repository: Option<String>,
    },
}

/// Entry point of the `ccs` binary.
pub fn run() -> ExitCode {
    if let Some(code) = sandbox_init() {
        return code;
    }
    let cli = Cli::parse();
    execute(cli)
}

/// `ccs sandbox-init …`, the first process inside a bubblewrap sandbox
/// ([`crate::runner::sandbox_init`]): handled before any setup, and not a
/// command for people (not in `--help`).
fn sandbox_init() -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    (args.get(1).map(String::as_str) == Some("sandbox-init"))
        .then(|| crate::runner::sandbox_init::main(&args[2..]))
}

/// Entry point of the `ccs-worker` binary: `ccs worker` under another name.
pub fn run_worker_binary() -> ExitCode {
    if let Some(code) = sandbox_init() {
        return code;
    }
    let mut args: Vec<String> = std::env::args().collect();
    args.insert(1, "worker".into());
    let cli = Cli::parse_from(args);
    execute(cli)
}

fn execute(cli: Cli) -> ExitCode {
    crate::telemetry::init_logging();
    // Install the metrics recorder before anything records.
    let _ = crate::telemetry::prometheus();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let url = cli.db.url();
    if url.starts_with("sqlite://") {
        std::fs::create_dir_all(&cli.db.data_dir)
            .with_context(|| format!("cannot create {}", cli.db.data_dir.display()))?;
    }
    let db = Database::connect(&url, cli.db.db_max_connections).await?;
    let store = Store::new(db.store.clone(), db.backend);
    match cli.command {
        Command::Migrate => {
            db.migrate().await?;
            println!("migrations applied ({})", db.backend);
        }
        Command::Up { mut api, worker } => {
            api.runner_policy = cli.runner.policy();
            db.migrate().await?;
            ensure_admin_key(&store).await?;
            let stop = shutdown_signal();
            let runner = build_runner(cli.runner.runner, &worker, &cli.db).await?;
            let server = serve_api(&store, &api, stop.clone(), true).await?;
            let worker = {
                let (db, stop) = (db.clone(), stop.clone());
                tokio::spawn(async move { crate::worker::run(&db, &worker, runner, stop).await })
            };
            supervise_up(server, worker, stop).await?;
        }
        Command::Serve { mut api } => {
            api.runner_policy = cli.runner.policy();
            let stop = shutdown_signal();
            serve_api(&store, &api, stop, false).await?.wait().await?;
        }
        Command::Worker { worker } => {
            let stop = shutdown_signal();
            let runner = build_runner(cli.runner.runner, &worker, &cli.db).await?;
            let health = Server::bind(
                worker.worker_listen,
                crate::http::health_router(store.clone()),
                stop.clone(),
            )
            .await?;
            let result = crate::worker::run(&db, &worker, runner, stop.clone()).await;
            stop.cancel();
            health.wait().await?;
            result?;
        }
        Command::ApiKey(ApiKeyCommand::Create {
            name,
            permissions,
            expires_in,
        }) => {
            let permissions =
                crate::auth::parse_permissions(&permissions).map_err(anyhow::Error::msg)?;
            let expires_at = expires_in.map(|d| crate::store::now_ms() + d.as_millis() as i64);
            let issued = crate::auth::issue_key(&store, &name, &permissions, expires_at).await?;
            println!("{}", issued.key);
        }
        Command::Project(ProjectCommand::Add {
            name,
            path,
            description,
            repository,
        }) => {
            let project = crate::projects::register_with(
                &store,
                cli.runner.policy(),
                crate::projects::NewProjectRequest {
                    name,
                    path,
                    description,
                    container: None,
                    workflow: None,
                    repository,
                    github: None,
                },
            )
            .await?;
            println!("{}", project.id);
        }
    }
    db.close().await;
    Ok(())
}

/// On a database with no API key, creates an admin key and prints it once.
async fn ensure_admin_key(store: &Store) -> anyhow::Result<()> {
    if store.count_api_keys().await? == 0 {
        let issued = crate::auth::issue_key(store, "admin", &[Permission::Admin], None).await?;
        println!("admin api key: {}", issued.key);
    }
    Ok(())
}

async fn build_runner(
    kind: RunnerKind,
    args: &WorkerArgs,
    db: &DatabaseArgs,
) -> anyhow::Result<Arc<dyn Runner>> {
    match kind {
        RunnerKind::Process | RunnerKind::Host => {
            let work_dir = args
                .work_dir
                .clone()
                .unwrap_or_else(|| db.data_dir.join("runs"));
            std::fs::create_dir_all(&work_dir)
                .with_context(|| format!("cannot create {}", work_dir.display()))?;
            // bwrap binds and the proxy socket need an absolute path.
            let work_dir = std::path::absolute(&work_dir)
                .with_context(|| format!("cannot resolve {}", work_dir.display()))?;
            let mut command = args.agent_command();
            let Some(program) = command.first_mut() else {
                anyhow::bail!("--agent-command must not be empty");
            };
            // A relative path would be resolved in the run's workspace.
            if program.contains('/') {
                *program = std::fs::canonicalize(&*program)
                    .with_context(|| format!("agent command {program}"))?
                    .display()
                    .to_string();
            }
            let isolation = if kind == RunnerKind::Host {
                tracing::warn!(
                    "--runner host: agents run without any isolation, as this worker's user \
                     (trusted local use only)"
                );
                Isolation::Host
            } else {
                let init = std::env::current_exe().context("cannot find the ccs binary")?;
                let sandbox = Sandbox {
                    bwrap: args.sandbox.bwrap.clone(),
                    init,
                    ro_binds: args.sandbox.ro_binds.clone(),
                    rw_binds: args.sandbox.rw_binds.clone(),
                };
                sandbox.check().await.map_err(|e| {
                    anyhow::anyhow!("the process runner's bubblewrap sandbox cannot start: {e}")
                })?;
                Isolation::Sandbox {
                    sandbox,
                    egress: egress_settings(args)?,
                }
            };
            Ok(Arc::new(ProcessRunner {
                command,
                work_dir,
                pass_env: args.pass_env.clone(),
                isolation,
            }))
        }
        RunnerKind::Docker => {
            let work_dir = args
                .work_dir
                .clone()
                .unwrap_or_else(|| db.data_dir.join("runs"));
            // Bind mounts need absolute paths.
            let work_dir = std::path::absolute(&work_dir)
                .with_context(|| format!("cannot resolve {}", work_dir.display()))?;
            let command = args.agent_command();
            if command.is_empty() {
                anyhow::bail!("--agent-command must not be empty");
            }
            // The pass-through variables are read once, now.
            let pass_env = args
                .pass_env
                .iter()
                .filter_map(|name| Some((name.clone(), std::env::var(name).ok()?)))
                .collect();
            let config = crate::runner::docker::DockerRunnerConfig {
                docker_host: args.docker.docker_host.clone(),
                command,
                default_image: args.docker.agent_image.clone(),
                work_dir,
                pass_env,
                allow_root: args.docker.allow_root_containers,
                extra_hosts: args.docker.add_hosts.clone(),
                inspect_dir: args.docker.inspect_dir.clone(),
            };
            let runner = crate::runner::docker::DockerRunner::connect(config)
                .await
                .context("the docker runner cannot start")?;
            Ok(Arc::new(runner))
        }
    }
}

/// The egress settings of a worker's runs.
pub fn egress_settings(args: &WorkerArgs) -> anyhow::Result<EgressSettings> {
    let hosts = crate::runner::docker::parse_extra_hosts(&args.docker.add_hosts)
        .map_err(|e| anyhow::anyhow!("--docker-add-host: {e}"))?;
    Ok(EgressSettings {
        model_hosts: args.egress.model_hosts(),
        hosts,
        allow_cidrs: args.egress.allow_cidrs.clone(),
    })
}

/// Binds the API ([`crate::http::app`]) on `api.listen` and serves it
/// until `stop`; with `sign_in_link` (`ccs up`), prints a one-time
/// dashboard sign-in link.
async fn serve_api(
    store: &Store,
    api: &ApiArgs,
    stop: CancellationToken,
    sign_in_link: bool,
) -> anyhow::Result<Server> {
    let server = Server::bind(api.listen, crate::http::app(store.clone(), api), stop).await?;
    tracing::info!(addr = %server.addr, "API listening");
    println!("listening on http://{}", server.addr);
    if sign_in_link && let Some(path) = crate::ui::issue_sign_in_link(store).await? {
        println!(
            "dashboard sign-in link (one use, 15 minutes): http://{}{}{path}",
            server.addr, api.ui.prefix
        );
    }
    Ok(server)
}

/// `ccs up`: the API and the worker pool live and die together. When one
/// of them stops before a shutdown was asked for (it failed to start, it
/// failed, it panicked), the other is stopped too and `up` fails, so no
/// API goes on accepting jobs that nobody runs.
async fn supervise_up(
    server: Server,
    worker: tokio::task::JoinHandle<anyhow::Result<()>>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let worker_result = |joined: Result<anyhow::Result<()>, tokio::task::JoinError>| {
        joined
            .context("the worker panicked")
            .and_then(|r| r.context("the worker failed"))
    };
    let server_wait = server.wait();
    tokio::pin!(server_wait);
    tokio::pin!(worker);
    tokio::select! {
        api = &mut server_wait => {
            let early = !stop.is_cancelled();
            stop.cancel();
            let worker = worker_result(worker.await);
            api?;
            worker?;
            anyhow::ensure!(!early, "the API stopped; the worker was stopped with it");
        }
        joined = &mut worker => {
            let early = !stop.is_cancelled();
            stop.cancel();
            let api = server_wait.await;
            worker_result(joined)?;
            api?;
            anyhow::ensure!(!early, "the worker stopped; the API was stopped with it");
        }
    }
    Ok(())
}

/// A token cancelled on SIGTERM or SIGINT.
fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}
