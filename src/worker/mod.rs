//! The worker process: claims jobs from the apalis queues and runs them.
//!
//! One apalis worker per registered job kind ([`crate::jobs::KINDS`]),
//! over the apalis storage of the configured backend, with a concurrency
//! limit (`--concurrency`). Claiming is apalis's: `FOR UPDATE SKIP
//! LOCKED` on MariaDB and PostgreSQL. Beside them run the heartbeat
//! (apalis's, every `--heartbeat-interval`), ccs's [`crate::queue::reaper`]
//! and, on PostgreSQL, [`crate::queue::pg_wake`].
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
use crate::jobs::{Job, JobKind};
use crate::runner::Runner;
use crate::runner::stream_json::PriceTable;
use crate::settings::{LimitArgs, WorkerArgs};
use crate::store::Store;
use futures::FutureExt as _;
use futures::future::BoxFuture;

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
    /// Prices for running cost estimates (`--price-table`).
    pub prices: PriceTable,
    /// Fleet-wide limits and budgets: the service's defaults (see
    /// [`crate::limits`]).
    pub limits: LimitArgs,
    /// Fires when the shutdown grace period is over: running agents stop.
    pub shutdown: CancellationToken,
    /// The service's secrets, for `${NAME}` in project `env` values.
    pub secrets: Arc<crate::secrets::Secrets>,
    /// GitHub's API, as this service (`None`: no credentials configured).
    pub github: Option<Arc<crate::github::Github>>,
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

/// Runs a worker pool until `stop` fires, then shuts down gracefully: one
/// supervised apalis worker per registered job kind
/// ([`crate::jobs::KINDS`], [`supervise`]), the reaper, and the
/// orphan sweep of the runner.
pub async fn run(
    db: &Database,
    args: &WorkerArgs,
    runner: Arc<dyn Runner>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let store = Store::new(db.store.clone(), db.backend);
    let prices = match &args.limits.price_table {
        Some(path) => crate::limits::budget::load_price_table(path)?,
        None => PriceTable::default(),
    };
    let secrets = Arc::new(args.load_secrets()?);
    let heartbeat = args.heartbeat();
    let reaper_stop = CancellationToken::new();
    let reaper = tokio::spawn(crate::queue::reaper::run(
        store.clone(),
        heartbeat,
        reaper_stop.clone(),
    ));
    // PostgreSQL: notify the listening workers of jobs that became due.
    let waker = match &db.queue {
        QueuePool::Postgres(pool) => Some(tokio::spawn(crate::queue::pg_wake::run(
            pool.clone(),
            args.poll_interval,
            reaper_stop.clone(),
        ))),
        _ => None,
    };
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
    if let Err(e) = crate::jobs::retention::schedule(&store).await {
        tracing::warn!(error = %e, "could not schedule the retention job; the next start will");
    }
    let base = WorkerEnv {
        store: store.clone(),
        runner: runner.clone(),
        worker_id: String::new(),
        default_timeout: args.default_timeout,
        prices,
        limits: args.limits.clone(),
        shutdown: shutdown.clone(),
        secrets,
        github: crate::github::Github::from_args(&args.github)?.map(Arc::new),
    };
    let result = futures::future::try_join_all(
        crate::jobs::KINDS
            .iter()
            .map(|kind| supervise(db, args, kind, &base, &own_ids, stop.clone())),
    )
    .await
    .map(|_| ());
    reaper_stop.cancel();
    let _ = reaper.await;
    let _ = orphans.await;
    if let Some(waker) = waker {
        let _ = waker.await;
    }
    result
}

/// Pause before a stopped apalis worker is started again.
pub const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Keeps one apalis worker of job kind `kind` running until `stop`.
///
/// An apalis worker ends when its fetch stream fails (the database went
/// away, a busy SQLite file) — its heartbeat may even go on. Whatever the
/// reason, while `stop` has not fired it is started again after
/// [`RESTART_DELAY`] under a **new** worker id: the jobs the old one had
/// claimed then belong to a worker that no longer heartbeats, and the
/// reaper hands them back.
async fn supervise(
    db: &Database,
    args: &WorkerArgs,
    kind: &JobKind,
    base: &WorkerEnv,
    own_ids: &std::sync::Mutex<Vec<String>>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let env = Arc::new(WorkerEnv {
            store: base.store.clone(),
            runner: base.runner.clone(),
            worker_id: new_worker_id(),
            default_timeout: base.default_timeout,
            prices: base.prices.clone(),
            limits: base.limits.clone(),
            shutdown: base.shutdown.clone(),
            secrets: base.secrets.clone(),
            github: base.github.clone(),
        });
        if let Ok(mut ids) = own_ids.lock() {
            ids.push(env.worker_id.clone());
        }
        tracing::info!(
            worker.id = %env.worker_id,
            queue = kind.queue,
            backend = %db.backend,
            concurrency = args.concurrency,
            "worker started"
        );
        // apalis-postgres's listener panics when it cannot connect (the
        // database is down as the worker starts): that is one more way for
        // a worker to stop, and it is restarted like any other.
        let result = std::panic::AssertUnwindSafe((kind.work)(db, args, env.clone(), stop.clone()))
            .catch_unwind()
            .await
            .map(|r| r.map_err(anyhow::Error::from))
            .unwrap_or_else(|panic| {
                let why = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                Err(anyhow::anyhow!("the apalis worker panicked: {why}"))
            });
        if stop.is_cancelled() {
            tracing::info!(worker.id = %env.worker_id, queue = kind.queue, "worker stopped");
            return result.context("worker failed");
        }
        match result {
            Ok(()) => tracing::warn!(
                worker.id = %env.worker_id,
                queue = kind.queue,
                "worker stopped fetching; restarting"
            ),
            Err(e) => tracing::error!(
                worker.id = %env.worker_id,
                queue = kind.queue,
                error = %e,
                "worker failed; restarting"
            ),
        }
        metrics::counter!("ccs_worker_restarts_total", "queue" => kind.queue).increment(1);
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(RESTART_DELAY) => {}
        }
    }
}

/// How a [`JobKind`] runs one apalis worker: [`work`] of its job type.
pub(crate) type Work = for<'a> fn(
    &'a Database,
    &'a WorkerArgs,
    Arc<WorkerEnv>,
    CancellationToken,
) -> BoxFuture<'a, Result<(), WorkerError>>;

/// One apalis worker for job type `J`, until `stop`, an error, or its end.
pub(crate) fn work<'a, J: Job>(
    db: &'a Database,
    args: &'a WorkerArgs,
    env: Arc<WorkerEnv>,
    stop: CancellationToken,
) -> BoxFuture<'a, Result<(), WorkerError>> {
    Box::pin(run_queue::<J>(db, args, env, stop))
}

async fn run_queue<J: Job>(
    db: &Database,
    args: &WorkerArgs,
    env: Arc<WorkerEnv>,
    stop: CancellationToken,
) -> Result<(), WorkerError> {
    let heartbeat = args.heartbeat();
    let concurrency = args.concurrency.max(1);
    // Each worker gets a poll strategy of its own: apalis's `MultiStrategy`
    // clones share their strategies, and the first fetcher to start drains
    // them, which would leave another one never polling again.
    let config = apalis_sql::config::Config::new(J::QUEUE)
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
    let builder = WorkerBuilder::new(env.worker_id.as_str());
    match &db.queue {
        QueuePool::Sqlite(pool) => {
            let storage = apalis_sqlite::SqliteStorage::<J, (), ()>::new_with_config(pool, &config);
            builder
                .backend(storage)
                .data(env.clone())
                .concurrency(concurrency)
                .build(entry::<J>)
                .run_until(signal)
                .await
        }
        QueuePool::Postgres(pool) => {
            // LISTEN/NOTIFY: apalis's polling fetcher here backs off to
            // minutes when idle (see crate::queue::pg_wake).
            let storage = apalis_postgres::PostgresStorage::<J>::new_with_notify(pool, &config);
            builder
                .backend(storage)
                .data(env.clone())
                .concurrency(concurrency)
                .build(entry::<J>)
                .run_until(signal)
                .await
        }
        QueuePool::MySql(pool) => {
            let storage = apalis_mysql::MySqlStorage::<J, (), ()>::new_with_config(pool, &config);
            builder
                .backend(storage)
                .data(env.clone())
                .concurrency(concurrency)
                .build(entry::<J>)
                .run_until(signal)
                .await
        }
    }
}

/// The apalis entry point of every job kind: runs [`Job::run`] with the
/// apalis job it came in (its id and the worker that claimed it).
async fn entry<J: Job>(
    job: J,
    env: Data<Arc<WorkerEnv>>,
    task_id: TaskId<ulid::Ulid>,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    let env: Arc<WorkerEnv> = (*env).clone();
    let job_ref = crate::queue::JobRef {
        id: task_id.to_string(),
        claimed_by: worker.name().clone(),
    };
    let payload = job.clone();
    job.run(job_ref.clone(), env).await.map_err(|e| {
        tracing::warn!(
            queue = J::QUEUE,
            job.id = %job_ref.id,
            ?payload,
            error = %e,
            "job will be retried"
        );
        e.into()
    })
}
