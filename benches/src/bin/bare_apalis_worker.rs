//! A bare apalis worker: the floor `ccs worker` is measured against.
//!
//! The same apalis releases, storage, queue (`ccs::executions`), payload,
//! connection pool, buffer size, concurrency and poll interval as
//! `ccs worker` — and a handler that only notes when it got the job and
//! returns `Ok`. No execution row is touched, no agent runs, no log is
//! written. On SIGTERM/SIGINT it stops and writes `<execution id> <epoch
//! ms>` per job it ran to `--record`, for the benchmark's latency and
//! drain numbers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use apalis::prelude::*;
use apalis_core::backend::poll_strategy::{IntervalStrategy, StrategyBuilder};
use ccs::db::{Database, QueuePool};
use ccs::jobs::Job;
use ccs::jobs::execute::ExecuteJob;
use clap::Parser;

const EXECUTIONS: &str = ExecuteJob::QUEUE;

#[derive(Debug, Parser)]
#[command(about = "A minimal apalis worker on ccs's queue, for benchmarks")]
struct Args {
    /// Database URL: sqlite://…, mysql://… or postgres://….
    #[arg(long, env = "CCS_DATABASE_URL")]
    database_url: String,
    /// Jobs run at once; also apalis's buffer size (as in `ccs worker`).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How often an idle worker polls.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// Where to write what was run, on exit.
    #[arg(long)]
    record: PathBuf,
    /// PostgreSQL: LISTEN for apalis's insert notifications as well as poll
    /// (`PostgresStorage::new_with_notify`; ccs uses `new_with_config`).
    #[arg(long)]
    postgres_notify: bool,
}

/// When each job reached the handler: `(execution id, epoch ms)`.
#[derive(Default)]
struct Seen(Mutex<Vec<(String, i64)>>);

async fn handle(job: ExecuteJob, seen: Data<Arc<Seen>>) -> Result<(), BoxDynError> {
    let at = ccs::store::now_ms();
    if let Ok(mut s) = seen.0.lock() {
        s.push((job.execution_id, at));
    }
    Ok(())
}

fn main() -> ExitCode {
    ccs_bench::run_main(run(Args::parse()))
}

async fn run(args: Args) -> anyhow::Result<()> {
    // ccs's pools (same size and options), so only the worker differs.
    let db = Database::connect(&args.database_url, 16).await?;
    let concurrency = args.concurrency.max(1);
    // ccs's defaults: 10 s heartbeat, orphans handed back after 3 missed.
    let config = apalis_sql::config::Config::new(EXECUTIONS)
        .set_keep_alive(Duration::from_secs(10))
        .set_buffer_size(concurrency)
        .set_reenqueue_orphaned_after(Duration::from_secs(30))
        .with_poll_interval(
            StrategyBuilder::new()
                .apply(IntervalStrategy::new(args.poll_interval))
                .build(),
        );
    let seen = Arc::new(Seen::default());
    let name = format!(
        "bare-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let signal = async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        Ok::<(), std::io::Error>(())
    };
    macro_rules! run_worker {
        ($backend:expr) => {
            WorkerBuilder::new(name.as_str())
                .backend($backend)
                .data(seen.clone())
                .concurrency(concurrency)
                .build(handle)
                .run_until(signal)
                .await
        };
    }
    let result = match &db.queue {
        QueuePool::Sqlite(pool) => run_worker!(
            apalis_sqlite::SqliteStorage::<ExecuteJob, (), ()>::new_with_config(pool, &config)
        ),
        QueuePool::Postgres(pool) if args.postgres_notify => run_worker!(
            apalis_postgres::PostgresStorage::<ExecuteJob>::new_with_notify(pool, &config)
        ),
        QueuePool::Postgres(pool) => run_worker!(
            apalis_postgres::PostgresStorage::<ExecuteJob>::new_with_config(pool, &config)
        ),
        QueuePool::MySql(pool) => run_worker!(
            apalis_mysql::MySqlStorage::<ExecuteJob, (), ()>::new_with_config(pool, &config)
        ),
    };
    let lines: String = seen
        .0
        .lock()
        .map(|s| s.iter().map(|(id, at)| format!("{id} {at}\n")).collect())
        .unwrap_or_default();
    std::fs::write(&args.record, lines)
        .with_context(|| format!("write {}", args.record.display()))?;
    db.close().await;
    result.context("worker failed")
}
