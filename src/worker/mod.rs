//! The worker process: claims jobs from the apalis queues and runs them.
//!
//! One apalis worker per queue, over the apalis storage of the configured
//! backend, with a concurrency limit (`--concurrency`). Claiming is
//! apalis's: `FOR UPDATE SKIP LOCKED` on MariaDB and PostgreSQL. Beside it
//! run the heartbeat (apalis's, every `--heartbeat-interval`) and ccs's
//! [`crate::queue::reaper`].
//!
//! **Shutdown** (SIGTERM/SIGINT, or the `stop` token): the worker stops
//! claiming at once; running jobs get `--shutdown-grace` to finish; then
//! [`WorkerEnv::shutdown`] fires, their agents are killed and their jobs
//! fail back to the queue (retried by another worker). A worker needs no
//! API process; it only needs the database.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use apalis::prelude::*;
use apalis_core::backend::poll_strategy::{IntervalStrategy, StrategyBuilder};
use tokio_util::sync::CancellationToken;

use crate::db::{Database, QueuePool};
use crate::queue::{EXECUTIONS, ExecuteJob};
use crate::runner::Runner;
use crate::runner::stream_json::PriceTable;
use crate::settings::WorkerArgs;
use crate::store::Store;

/// What every job handler of a worker process can use.
pub struct WorkerEnv {
    /// The service's tables.
    pub store: Store,
    /// How agents run (process or Docker).
    pub runner: Arc<dyn Runner>,
    /// This process's name in apalis's workers table and on executions.
    pub worker_id: String,
    /// Wall-clock limit when a project sets none.
    pub default_timeout: Duration,
    /// Prices for running cost estimates.
    pub prices: PriceTable,
    /// Fires when the shutdown grace period is over: running agents stop.
    pub shutdown: CancellationToken,
    /// The service's secrets, for `${NAME}` in project `env` values.
    pub secrets: Arc<crate::secrets::Secrets>,
}

/// A unique, readable worker id: host, pid and a random suffix.
pub fn new_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut id = format!("{host}-{}-{suffix}", std::process::id());
    // apalis-mysql's workers.id is VARCHAR(36).
    if id.len() > 36 {
        id = id[id.len() - 36..].to_owned();
    }
    id
}

/// Runs a worker pool until `stop` fires, then shuts down gracefully.
///
/// If the apalis worker fails (the database went away, say), it is started
/// again after [`RESTART_DELAY`] under a **new** worker id: the jobs the
/// failed incarnation had claimed then belong to a worker that no longer
/// heartbeats, and the reaper hands them back.
pub async fn run(
    db: &Database,
    args: &WorkerArgs,
    runner: Arc<dyn Runner>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let store = Store::new(db.store.clone(), db.backend);
    let secrets = Arc::new(args.load_secrets()?);
    let heartbeat = args.heartbeat();
    let reaper_stop = CancellationToken::new();
    let reaper = tokio::spawn(crate::queue::reaper::run(
        store.clone(),
        heartbeat,
        reaper_stop.clone(),
    ));
    // Containers (and the like) of dead workers: removed now and then.
    let own_ids = Arc::new(std::sync::Mutex::new(Vec::new()));
    let orphans = tokio::spawn(crate::runner::orphans::run(
        store.clone(),
        runner.clone(),
        heartbeat,
        own_ids.clone(),
        reaper_stop.clone(),
    ));
    // Stop claiming on `stop`; after the grace period, stop running agents.
    let shutdown = CancellationToken::new();
    {
        let (stop, shutdown, grace) = (stop.clone(), shutdown.clone(), args.shutdown_grace);
        tokio::spawn(async move {
            stop.cancelled().await;
            tokio::time::sleep(grace).await;
            shutdown.cancel();
        });
    }
    let result = loop {
        let env = Arc::new(WorkerEnv {
            store: store.clone(),
            runner: runner.clone(),
            worker_id: new_worker_id(),
            default_timeout: args.default_timeout,
            prices: PriceTable::default(),
            shutdown: shutdown.clone(),
            secrets: secrets.clone(),
        });
        if let Ok(mut ids) = own_ids.lock() {
            ids.push(env.worker_id.clone());
        }
        tracing::info!(
            worker.id = %env.worker_id,
            backend = %db.backend,
            concurrency = args.concurrency,
            "worker started"
        );
        let result = run_once(db, args, env.clone(), stop.clone()).await;
        match result {
            Ok(()) => {
                tracing::info!(worker.id = %env.worker_id, "worker stopped");
                break Ok(());
            }
            Err(e) if stop.is_cancelled() => break Err(e),
            Err(e) => {
                tracing::error!(worker.id = %env.worker_id, error = %e, "worker failed; restarting");
                metrics::counter!("ccs_worker_restarts_total").increment(1);
                tokio::select! {
                    _ = stop.cancelled() => break Ok(()),
                    _ = tokio::time::sleep(RESTART_DELAY) => {}
                }
            }
        }
    };
    reaper_stop.cancel();
    let _ = reaper.await;
    let _ = orphans.await;
    result.context("worker failed")
}

/// Pause before a failed apalis worker is started again.
pub const RESTART_DELAY: Duration = Duration::from_secs(1);

/// One incarnation of the apalis worker, until `stop` or an error.
async fn run_once(
    db: &Database,
    args: &WorkerArgs,
    env: Arc<WorkerEnv>,
    stop: CancellationToken,
) -> Result<(), WorkerError> {
    let heartbeat = args.heartbeat();
    let concurrency = args.concurrency.max(1);
    // One configuration for the three apalis storages (apalis-sql's).
    let config = apalis_sql::config::Config::new(EXECUTIONS)
        .set_keep_alive(heartbeat.interval)
        .set_buffer_size(concurrency)
        .set_reenqueue_orphaned_after(heartbeat.dead_after())
        .with_poll_interval(
            StrategyBuilder::new()
                .apply(IntervalStrategy::new(args.poll_interval))
                .build(),
        );
    let signal = async move {
        stop.cancelled().await;
        Ok::<(), std::io::Error>(())
    };
    let worker_id = env.worker_id.clone();
    macro_rules! run_worker {
        ($backend:expr) => {
            WorkerBuilder::new(worker_id.as_str())
                .backend($backend)
                .data(env)
                .concurrency(concurrency)
                .build(execute_job)
                .run_until(signal)
                .await
        };
    }
    match &db.queue {
        QueuePool::Sqlite(pool) => run_worker!(
            apalis_sqlite::SqliteStorage::<ExecuteJob, (), ()>::new_with_config(pool, &config)
        ),
        QueuePool::Postgres(pool) => run_worker!(
            apalis_postgres::PostgresStorage::<ExecuteJob>::new_with_config(pool, &config)
        ),
        QueuePool::MySql(pool) => run_worker!(
            apalis_mysql::MySqlStorage::<ExecuteJob, (), ()>::new_with_config(pool, &config)
        ),
    }
}

/// The apalis entry point of [`crate::jobs::execute`].
async fn execute_job(job: ExecuteJob, env: Data<Arc<WorkerEnv>>) -> Result<(), BoxDynError> {
    let env: Arc<WorkerEnv> = (*env).clone();
    crate::jobs::execute::handle(&job.execution_id, env)
        .await
        .map_err(|e| {
            tracing::warn!(execution.id = %job.execution_id, error = %e, "job will be retried");
            Box::new(e) as BoxDynError
        })
}
