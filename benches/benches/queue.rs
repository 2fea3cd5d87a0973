//! Queue: how fast worker processes drain the executions queue, and how
//! long a job waits for an idle worker — `ccs worker` beside a bare apalis
//! worker on the same database, in the same run.
//!
//! * **Drain.** A fresh database gets `--jobs` executions through
//!   [`Store::create_execution`](ccs::store::Store::create_execution) with
//!   no worker running; then 1, 2 or 4 worker processes start. The rate is
//!   jobs / (moment every job row is `Done` − first job started). `ccs
//!   worker` runs the test agent (`target/release/ccs-test-agent`, prompt
//!   `@cost=0`: it prints init, one assistant message and a result, and
//!   exits), so each job does everything a real one does — claim the
//!   execution, copy the project, spawn the agent, store its log lines,
//!   record the outcome — except wait for a model. The bare worker
//!   (`src/bin/bare_apalis_worker.rs`) claims the same rows and returns
//!   `Ok`.
//! * **Latency.** One worker process, idle, polling; executions enqueued one
//!   at a time at random gaps; enqueue (`executions.created_at`, taken just
//!   before the enqueue transaction) to start (`executions.started_at` for
//!   ccs, the bare handler's own clock reading), in ms.
//! * **Fetch plan** (MariaDB): `EXPLAIN` and `ANALYZE` of apalis-mysql's
//!   fetch query over a few `jobs` tables (4,000 rows with and without a
//!   backlog, 100,000 with a few ready), as apalis runs it and forced onto
//!   `idx_jobs_fetch`: plan, rows read, locks held, a concurrent fetch.
//!
//! Every process: `--concurrency` jobs at once (= apalis buffer size),
//! `--poll-interval`, ccs's pool of 16 connections.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ccs::db::{Backend, QueuePool};
use ccs::jobs::Job;
use ccs::jobs::execute::ExecuteJob;
use ccs::store::{Store, now_ms};
use ccs_bench::cpu::{self, CpuMeter, CpuUse};
use ccs_bench::databases::{Servers, jobs_table, workers_table};
use ccs_bench::fixture::Service;
use ccs_bench::load::{self, Load};
use ccs_bench::processes::{Binaries, WorkerProcess, WorkerShape, read_record};
use ccs_bench::report::{self, Table};
use ccs_bench::stats::{Percentiles, ms};
use clap::Parser;
use rand::Rng as _;
use sqlx::Row as _;

const EXECUTIONS: &str = ExecuteJob::QUEUE;

#[derive(Debug, Parser)]
#[command(about = "Queue drain and enqueue-to-start latency, ccs worker vs bare apalis")]
struct Args {
    #[command(flatten)]
    servers: Servers,
    /// Jobs per drain measurement.
    #[arg(long, env = "CCS_BENCH_JOBS", default_value_t = 1000)]
    jobs: usize,
    /// Worker process counts to drain with.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    workers: Vec<usize>,
    /// Jobs one worker process runs at once (and its apalis buffer size).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Poll interval of every worker (ccs's default).
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// Jobs per latency measurement.
    #[arg(long, default_value_t = 100)]
    latency_jobs: usize,
    /// How long the worker sits idle before the first latency job (0: skip).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    idle: Duration,
    /// Longest one drain may take; a drain cut short reports what it did.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    time_limit: Duration,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Which worker a measurement runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum System {
    /// `ccs worker` with the test agent.
    Ccs,
    /// `bare-apalis-worker`.
    Bare,
    /// `bare-apalis-worker --postgres-notify`.
    BareNotify,
}

/// What one drain measured.
struct Drain {
    done: usize,
    seconds: f64,
    /// ccs: executions that did not end `succeeded`; bare: jobs run twice.
    anomalies: usize,
    /// CPU used from the start of the workers to their exit.
    cpu: CpuUse,
}

impl Drain {
    fn rate(&self) -> f64 {
        self.done as f64 / self.seconds.max(1e-9)
    }
}

/// What one latency measurement saw.
struct Latency {
    /// The first job, enqueued after the worker sat idle for `--idle`.
    after_idle_ms: Option<i64>,
    /// The jobs that followed at short random gaps.
    spaced: Percentiles,
}

/// The prompt of every job: the test agent answers at once, at no cost.
const PROMPT: &str = "@cost=0 queue benchmark";

fn main() -> ExitCode {
    ccs_bench::run_main(run(Args::parse()))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let bins = Binaries::beside(Path::new(env!("CARGO_BIN_EXE_bare-apalis-worker")))?;
    let shape = WorkerShape {
        concurrency: args.concurrency,
        poll_interval: args.poll_interval,
    };
    println!("## Queue ({})", report::machine());
    println!(
        "\n{} jobs per drain; every worker process: concurrency {} (= buffer size), \
         poll interval {:?}; ccs runs {} with prompt {PROMPT:?}",
        args.jobs,
        args.concurrency,
        args.poll_interval,
        bins.test_agent.display()
    );
    let mut drains = Table::new(
        "Queue drain: jobs per second",
        &[
            "backend",
            "processes",
            "worker",
            "jobs/s",
            "vs bare",
            "worker CPU ms/job",
            "db CPU ms/job",
            "machine busy %",
        ],
    );
    let mut latencies = Table::new(
        "Enqueue to start, idle workers (1 process), ms",
        &[
            "backend",
            "ccs p50",
            "ccs p99",
            "bare p50",
            "bare p99",
            "samples",
            "after idle: ccs / bare",
        ],
    );
    let mut plans = Vec::new();
    for (backend, admin) in args.servers.selected()? {
        for &workers in &args.workers {
            let mut results = Vec::new();
            for system in [System::Ccs, System::Bare] {
                eprintln!("queue: {backend}, {workers} {system:?} worker process(es) …");
                let d = drain(
                    &bins,
                    shape,
                    system,
                    backend,
                    admin.as_deref(),
                    workers,
                    &args,
                )
                .await
                .with_context(|| format!("{backend} {system:?} drain"))?;
                let mut cell = report::rate(d.rate());
                if d.done < args.jobs {
                    cell.push_str(&format!(" ({} of {} done)", d.done, args.jobs));
                }
                if d.anomalies > 0 {
                    cell.push_str(&format!(" ({} anomalies)", d.anomalies));
                }
                results.push((cell, d));
            }
            let bare_rate = results[1].1.rate();
            for ((cell, d), name) in results.iter().zip(["ccs worker", "bare apalis"]) {
                drains.row(vec![
                    backend.name().into(),
                    workers.to_string(),
                    name.into(),
                    cell.clone(),
                    report::ratio(d.rate(), bare_rate),
                    cpu::ms_per(d.cpu.children, d.done),
                    d.cpu
                        .database
                        .map_or("in-process".into(), |db| cpu::ms_per(db, d.done)),
                    format!("{:.0}", d.cpu.machine_busy),
                ]);
            }
        }
        eprintln!("queue: {backend}, latency …");
        let ccs = latency(&bins, shape, System::Ccs, backend, admin.as_deref(), &args).await?;
        let bare = latency(&bins, shape, System::Bare, backend, admin.as_deref(), &args).await?;
        let idle = |l: &Latency| l.after_idle_ms.map_or("–".into(), |v| v.to_string());
        latencies.row(vec![
            backend.name().into(),
            ms(ccs.spaced.p50),
            ms(ccs.spaced.p99),
            ms(bare.spaced.p50),
            ms(bare.spaced.p99),
            format!("{} / {}", ccs.spaced.count, bare.spaced.count),
            format!("{} / {}", idle(&ccs), idle(&bare)),
        ]);
        if backend == Backend::Postgres {
            // What apalis-postgres's LISTEN/NOTIFY storage would change.
            let notify = latency(
                &bins,
                shape,
                System::BareNotify,
                backend,
                admin.as_deref(),
                &args,
            )
            .await?;
            latencies.row(vec![
                "postgres, bare with LISTEN/NOTIFY".into(),
                "–".into(),
                "–".into(),
                ms(notify.spaced.p50),
                ms(notify.spaced.p99),
                format!("– / {}", notify.spaced.count),
                format!("– / {}", idle(&notify)),
            ]);
        }
        if backend == Backend::MySql {
            eprintln!("queue: {backend}, fetch plan …");
            plans.push(fetch_plan(admin.as_deref()).await?);
        }
    }
    println!("{}", drains.render());
    println!("{}", latencies.render());
    for plan in plans {
        println!("{plan}");
    }
    Ok(())
}

/// Enqueues `args.jobs`, starts `workers` processes, waits for every job
/// row to be `Done`.
async fn drain(
    bins: &Binaries,
    shape: WorkerShape,
    system: System,
    backend: Backend,
    admin: Option<&str>,
    workers: usize,
    args: &Args,
) -> anyhow::Result<Drain> {
    let service = Service::create(backend, admin).await?;
    enqueue_many(&service, args.jobs).await?;
    let dir = tempfile::tempdir()?;
    let meter = CpuMeter::start(backend);
    let mut procs = Vec::new();
    for i in 0..workers {
        procs.push(spawn(bins, shape, system, &service, dir.path(), i)?);
    }
    let done = wait_done(&service, args.jobs, args.time_limit).await?;
    let finished_at = now_ms();
    for p in procs {
        p.stop().await?;
    }
    let cpu = meter.finish();
    let (first_start, anomalies) = match system {
        System::Ccs => {
            let pool = service.store.pool();
            let first: Option<i64> = sqlx::query("SELECT MIN(started_at) FROM executions")
                .fetch_one(pool)
                .await?
                .try_get(0)?;
            let unsucceeded: i64 =
                sqlx::query("SELECT COUNT(*) FROM executions WHERE status <> 'succeeded'")
                    .fetch_one(pool)
                    .await?
                    .try_get(0)?;
            (first, unsucceeded as usize)
        }
        System::Bare | System::BareNotify => {
            let mut seen = Vec::new();
            for i in 0..workers {
                seen.extend(read_record(&record_path(dir.path(), i))?);
            }
            let distinct = seen
                .iter()
                .map(|(id, _)| id)
                .collect::<std::collections::HashSet<_>>()
                .len();
            (seen.iter().map(|(_, at)| *at).min(), seen.len() - distinct)
        }
    };
    if done < args.jobs {
        print_logs(dir.path(), workers);
    }
    service.drop_database().await?;
    let first_start = first_start.context("no job started")?;
    Ok(Drain {
        done,
        seconds: (finished_at - first_start) as f64 / 1000.0,
        anomalies,
        cpu,
    })
}

/// One idle worker process: first one job after `--idle` seconds of
/// nothing, then `--latency-jobs` one at a time at random gaps.
async fn latency(
    bins: &Binaries,
    shape: WorkerShape,
    system: System,
    backend: Backend,
    admin: Option<&str>,
    args: &Args,
) -> anyhow::Result<Latency> {
    let service = Service::create(backend, admin).await?;
    let dir = tempfile::tempdir()?;
    let worker = spawn(bins, shape, system, &service, dir.path(), 0)?;
    wait_registered(&service, 1).await?;
    // Let it settle into its idle poll loop.
    tokio::time::sleep(shape.poll_interval * 2).await;
    let mut expected = 0;
    let mut probe = None;
    if !args.idle.is_zero() {
        tokio::time::sleep(args.idle).await;
        probe = Some(service.enqueue(PROMPT).await?);
        expected += 1;
        wait_done(&service, expected, Duration::from_secs(120)).await?;
    }
    let gap_ms = 20..(20 + shape.poll_interval.as_millis() as u64);
    for _ in 0..args.latency_jobs {
        service.enqueue(PROMPT).await?;
        expected += 1;
        let gap = rand::rng().random_range(gap_ms.clone());
        tokio::time::sleep(Duration::from_millis(gap)).await;
    }
    wait_done(&service, expected, Duration::from_secs(60)).await?;
    worker.stop().await?;
    let rows = sqlx::query("SELECT id, created_at, started_at FROM executions")
        .fetch_all(service.store.pool())
        .await?;
    let mut created = HashMap::new();
    let mut started = HashMap::new();
    for r in &rows {
        let id = text_column(r, 0)?;
        created.insert(id.clone(), r.try_get::<i64, _>(1)?);
        if let Some(at) = r.try_get::<Option<i64>, _>(2)?
            && system == System::Ccs
        {
            started.insert(id, at);
        }
    }
    if system != System::Ccs {
        // The first time the handler saw each job.
        for (id, at) in read_record(&record_path(dir.path(), 0))? {
            started.entry(id).or_insert(at);
        }
    }
    service.drop_database().await?;
    let wait = |id: &String| Some(started.get(id)? - created.get(id)?);
    let after_idle_ms = probe.as_ref().and_then(wait);
    let spaced = created
        .keys()
        .filter(|id| Some(*id) != probe.as_ref())
        .filter_map(wait);
    Ok(Latency {
        after_idle_ms,
        spaced: Percentiles::of_millis(spaced),
    })
}

fn spawn(
    bins: &Binaries,
    shape: WorkerShape,
    system: System,
    service: &Service,
    dir: &Path,
    i: usize,
) -> anyhow::Result<WorkerProcess> {
    let log = dir.join(format!("worker-{i}.log"));
    match system {
        System::Ccs => {
            let work_dir = dir.join(format!("runs-{i}"));
            std::fs::create_dir_all(&work_dir)?;
            WorkerProcess::ccs(bins, &service.db.url, shape, &work_dir, &log)
        }
        System::Bare | System::BareNotify => WorkerProcess::bare(
            bins,
            &service.db.url,
            shape,
            &record_path(dir, i),
            &log,
            system == System::BareNotify,
        ),
    }
}

fn record_path(dir: &Path, i: usize) -> std::path::PathBuf {
    dir.join(format!("bare-{i}.record"))
}

/// `n` executions through `Store::create_execution`, 16 at a time.
async fn enqueue_many(service: &Service, n: usize) -> anyhow::Result<()> {
    let store: Store = service.store.clone();
    let project_id = service.project_id;
    let result = load::run(
        Load {
            concurrency: 16,
            requests: n,
            time_limit: Duration::from_secs(300),
        },
        move |_| {
            let store = store.clone();
            async move {
                store
                    .create_execution(&ccs::store::NewExecution {
                        project_id,
                        workflow_id: None,
                        prompt: PROMPT.into(),
                        source: "bench".into(),
                        idempotency_key: None,
                        api_key_id: None,
                        resume_from: None,
                    })
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        },
    )
    .await;
    anyhow::ensure!(
        result.ok == n,
        "enqueued {} of {n}: {:?}",
        result.ok,
        result.first_error
    );
    Ok(())
}

/// Polls (every 20 ms) until `n` job rows are `Done` or `limit` passes;
/// returns how many are.
async fn wait_done(service: &Service, n: usize, limit: Duration) -> anyhow::Result<usize> {
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE job_type = '{EXECUTIONS}' AND status = 'Done'",
        jobs_table(service.db.backend)
    );
    let start = Instant::now();
    loop {
        let done: i64 = sqlx::query(&sql)
            .fetch_one(service.store.pool())
            .await?
            .try_get(0)?;
        if done as usize >= n || start.elapsed() >= limit {
            return Ok(done as usize);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `n` workers registered in apalis's workers table.
async fn wait_registered(service: &Service, n: usize) -> anyhow::Result<()> {
    let sql = format!("SELECT COUNT(*) FROM {}", workers_table(service.db.backend));
    let start = Instant::now();
    loop {
        let count: i64 = sqlx::query(&sql)
            .fetch_one(service.store.pool())
            .await?
            .try_get(0)?;
        if count as usize >= n {
            return Ok(());
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "workers did not register within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A text column (MySQL may hand text to `Any` as bytes).
fn text_column(row: &sqlx::any::AnyRow, i: usize) -> Result<String, sqlx::Error> {
    match row.try_get::<String, _>(i) {
        Ok(s) => Ok(s),
        Err(_) => {
            let bytes: Vec<u8> = row.try_get(i)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
    }
}

fn print_logs(dir: &Path, workers: usize) {
    for i in 0..workers {
        let log = std::fs::read_to_string(dir.join(format!("worker-{i}.log"))).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        eprintln!("--- worker {i} log (last lines) ---");
        for line in tail.iter().rev() {
            eprintln!("{line}");
        }
    }
}

/// apalis-mysql 1.0.0-rc.8's `queries/backend/fetch_next.sql`, verbatim;
/// its three parameters are filled in by [`fetch_plan`].
const APALIS_MYSQL_FETCH_NEXT: &str = "SELECT * FROM jobs WHERE job_type = ? AND ( \
     ( status = 'Pending' AND lock_by IS NULL ) \
     OR ( status = 'Failed' AND attempts < max_attempts ) ) \
     AND ( run_at IS NULL OR run_at <= ? ) \
     ORDER BY priority DESC, run_at ASC, id ASC LIMIT ? FOR UPDATE SKIP LOCKED";

/// A `jobs` table the fetch plan is looked at over.
struct PlanCase {
    label: &'static str,
    /// Rows of `ccs::executions`, `run_at` one second apart up to now.
    rows: usize,
    /// Of which ready to run (3 in 4 `Pending`, 1 in 4 `Failed` with
    /// attempts left), spread evenly; the rest `Done`.
    ready: usize,
}

const PLAN_CASES: [PlanCase; 3] = [
    PlanCase {
        label: "4,000 rows, 400 ready",
        rows: 4000,
        ready: 400,
    },
    PlanCase {
        label: "4,000 rows, none ready (idle poll)",
        rows: 4000,
        ready: 0,
    },
    PlanCase {
        label: "100,000 rows, 12 ready",
        rows: 100_000,
        ready: 12,
    },
];

/// apalis-mysql's fetch query on MariaDB over a few `jobs` tables: the plan
/// (`EXPLAIN`), the rows it really read (`ANALYZE`), the row locks one fetch
/// holds, what a second fetch gets meanwhile, and how long one takes — as
/// apalis runs it and with `FORCE INDEX (idx_jobs_fetch)`.
async fn fetch_plan(admin: Option<&str>) -> anyhow::Result<String> {
    let service = Service::create(Backend::MySql, admin).await?;
    let QueuePool::MySql(pool) = &service.database.queue else {
        anyhow::bail!("not a MySQL pool");
    };
    let query = APALIS_MYSQL_FETCH_NEXT
        .replacen('?', &format!("'{EXECUTIONS}'"), 1)
        .replacen('?', "NOW()", 1)
        .replacen('?', "4", 1);
    let forced = query.replacen("FROM jobs", "FROM jobs FORCE INDEX (idx_jobs_fetch)", 1);
    let mut out = String::from(
        "\n### MariaDB: apalis-mysql's fetch query (job_type, run_at <= NOW(), LIMIT 4)\n",
    );
    out.push_str(&format!("\n```sql\n{query}\n```\n"));
    let mut summary = Table::new(
        "MariaDB fetch plans",
        &[
            "jobs table",
            "index hint",
            "type",
            "key",
            "rows (estimate)",
            "ANALYZE r_rows",
            "row locks held",
            "concurrent fetch got",
            "fetch ms",
        ],
    );
    for (i, case) in PLAN_CASES.iter().enumerate() {
        fill_jobs(pool, case.rows, case.ready).await?;
        for (hint, q) in [
            ("none (as apalis runs it)", &query),
            ("idx_jobs_fetch", &forced),
        ] {
            let mut row = vec![case.label.to_owned(), hint.to_owned()];
            row.extend(plan_summary(pool, q).await?);
            summary.row(row);
        }
        if i == 0 {
            out.push_str(&explain(pool, "EXPLAIN", &query, case.label).await?);
        }
    }
    out.push_str(&summary.render());
    service.drop_database().await?;
    Ok(out)
}

/// Empties `jobs` and fills it for a [`PlanCase`], then `ANALYZE TABLE`.
async fn fill_jobs(pool: &sqlx::MySqlPool, rows: usize, ready: usize) -> anyhow::Result<()> {
    sqlx::query("TRUNCATE TABLE jobs").execute(pool).await?;
    let every = rows.checked_div(ready).unwrap_or(usize::MAX);
    for start in (0..rows).step_by(500) {
        let values: Vec<String> = (start..(start + 500).min(rows))
            .map(|n| {
                let (status, attempts) = match (n % every, (n / every) % 4) {
                    (0, 3) => ("Failed", 1),
                    (0, _) => ("Pending", 0),
                    _ => ("Done", 1),
                };
                format!(
                    "('{id}', '{EXECUTIONS}', '{status}', {attempts}, 25, \
                     NOW() - INTERVAL {age} SECOND, 0, '{{}}')",
                    id = uuid::Uuid::new_v4(),
                    age = rows - n,
                )
            })
            .collect();
        sqlx::query(&format!(
            "INSERT INTO jobs (id, job_type, status, attempts, max_attempts, run_at, priority, \
             job) VALUES {}",
            values.join(", ")
        ))
        .execute(pool)
        .await?;
    }
    sqlx::query("ANALYZE TABLE jobs").execute(pool).await?;
    Ok(())
}

/// type, key, estimated rows, rows read, locks held, rows a concurrent
/// fetch got, and the median time of five fetches (each rolled back).
async fn plan_summary(pool: &sqlx::MySqlPool, query: &str) -> anyhow::Result<Vec<String>> {
    let plan = sqlx::query(&format!("EXPLAIN {query}"))
        .fetch_one(pool)
        .await?;
    let mut tx = pool.begin().await?;
    let analyzed = sqlx::query(&format!("ANALYZE {query}"))
        .fetch_one(&mut *tx)
        .await?;
    tx.rollback().await?;

    // One fetch holds its transaction open while a second one runs.
    let mut first = pool.begin().await?;
    sqlx::query(query).fetch_all(&mut *first).await?;
    let locks = sqlx::query("SELECT MAX(trx_rows_locked) FROM information_schema.innodb_trx")
        .fetch_one(pool)
        .await?;
    let mut second = pool.begin().await?;
    let got_second = sqlx::query(query).fetch_all(&mut *second).await?.len();
    second.rollback().await?;
    first.rollback().await?;

    let mut times = Vec::new();
    for _ in 0..5 {
        let mut tx = pool.begin().await?;
        let start = Instant::now();
        sqlx::query(query).fetch_all(&mut *tx).await?;
        times.push(start.elapsed());
        tx.rollback().await?;
    }
    times.sort();
    Ok(vec![
        column(&plan, "type"),
        column(&plan, "key"),
        column(&plan, "rows"),
        column(&analyzed, "r_rows"),
        mysql_cell(&locks, 0),
        got_second.to_string(),
        ms(times[2]),
    ])
}

/// A cell of an `EXPLAIN`/`ANALYZE` row by column name.
fn column(row: &sqlx::mysql::MySqlRow, name: &str) -> String {
    use sqlx::Column as _;
    row.columns()
        .iter()
        .position(|c| c.name() == name)
        .map_or_else(|| "?".into(), |i| mysql_cell(row, i))
}

/// One `EXPLAIN`/`ANALYZE` as a Markdown table (ANALYZE runs the query, so
/// inside a transaction that is rolled back).
async fn explain(
    pool: &sqlx::MySqlPool,
    verb: &str,
    query: &str,
    label: &str,
) -> anyhow::Result<String> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(&format!("{verb} {query}"))
        .fetch_all(&mut *tx)
        .await?;
    tx.rollback().await?;
    let Some(first) = rows.first() else {
        return Ok(format!("\n{verb}: no rows\n"));
    };
    use sqlx::Column as _;
    let names: Vec<String> = first
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let header: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut table = Table::new(&format!("{verb}, {label}"), &header);
    for row in &rows {
        table.row((0..names.len()).map(|i| mysql_cell(row, i)).collect());
    }
    Ok(table.render())
}

/// Any EXPLAIN cell as text.
fn mysql_cell(row: &sqlx::mysql::MySqlRow, i: usize) -> String {
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return v.unwrap_or_else(|| "NULL".into());
    }
    if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
        return v.map_or_else(
            || "NULL".into(),
            |b| String::from_utf8_lossy(&b).into_owned(),
        );
    }
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return v.map_or_else(|| "NULL".into(), |n| n.to_string());
    }
    if let Ok(v) = row.try_get::<Option<u64>, _>(i) {
        return v.map_or_else(|| "NULL".into(), |n| n.to_string());
    }
    if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
        return v.map_or_else(|| "NULL".into(), |n| format!("{n:.2}"));
    }
    "?".into()
}
