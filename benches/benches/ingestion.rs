//! Ingestion: authenticated `POST /webhook/execute` → `202`, per backend.
//!
//! An in-process API (ccs's [`ccs::http::app`]) on 127.0.0.1 port 0 over a fresh,
//! migrated database with no worker running: jobs just accumulate. 64
//! keep-alive HTTP clients (reqwest) send a fixed number of requests after
//! a warm-up; each phase is also bounded in time.
//!
//! Baseline, same run, same database, same pool (ccs's 16 connections) and
//! same concurrency: plain single-row autocommit `INSERT`s through sqlx into
//! a table shaped like `executions`. A webhook request costs more than that
//! one commit — key lookup, key-use update (a second commit), project
//! lookup, the execution+job transaction, the read-back — so the ratio says
//! how much of the database's commit rate ccs turns into accepted jobs.
//!
//! Run: `scripts/bench.sh`, or `cargo bench -p ccs-bench --bench ingestion
//! -- --requests 3000` with `CCS_TEST_MYSQL_URL`/`CCS_TEST_POSTGRES_URL` set.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ccs::db::Backend;
use ccs::http::Server;
use ccs::settings::ApiArgs;
use ccs_bench::cpu::{self, CpuMeter, CpuUse};
use ccs_bench::databases::Servers;
use ccs_bench::fixture::{POOL_SIZE, Service};
use ccs_bench::load::{self, Load, LoadResult};
use ccs_bench::report::{self, Table};
use ccs_bench::stats::ms;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Webhook ingestion per backend, beside plain INSERT commits")]
struct Args {
    #[command(flatten)]
    servers: Servers,
    /// Measured requests per backend and path (after the warm-up).
    #[arg(long, env = "CCS_BENCH_REQUESTS", default_value_t = 3000)]
    requests: usize,
    /// Requests before measuring (connections, caches, pools).
    #[arg(long, default_value_t = 300)]
    warmup: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Longest a measured phase may run; it stops early past this.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    time_limit: Duration,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The prompt of every submission (what the test agent would run).
const PROMPT: &str = "@cost=0 ingestion benchmark";

fn main() -> ExitCode {
    ccs_bench::run_main(run(Args::parse()))
}

async fn run(args: Args) -> anyhow::Result<()> {
    println!("## Ingestion ({})", report::machine());
    println!(
        "\n{} clients, {} requests per phase after {} warm-up, pool of {POOL_SIZE} connections",
        args.concurrency, args.requests, args.warmup
    );
    let mut table = Table::new(
        "Ingestion: POST /webhook/execute vs plain INSERT commits",
        &[
            "backend",
            "path",
            "ok",
            "errors",
            "req/s",
            "p50 ms",
            "p99 ms",
            "vs baseline",
            "bench process CPU ms/req",
            "db CPU ms/req",
            "machine busy %",
        ],
    );
    for (backend, admin) in args.servers.selected()? {
        eprintln!("ingestion: {backend} …");
        let service = Service::create(backend, admin.as_deref()).await?;
        let baseline = baseline_inserts(&service, &args).await?;
        let webhook = webhook_requests(&service, &args).await?;
        service.drop_database().await?;
        for (path, (result, cpu)) in [
            ("sqlx INSERT (baseline)", &baseline),
            ("POST /webhook/execute", &webhook),
        ] {
            if let Some(e) = &result.first_error {
                eprintln!("{backend} {path}: {} errors, first: {e}", result.errors);
            }
            let mut ok = result.ok.to_string();
            if result.timed_out {
                ok.push_str(" (time limit)");
            }
            table.row(vec![
                backend.name().into(),
                path.into(),
                ok,
                result.errors.to_string(),
                report::rate(result.rate()),
                ms(result.latency.p50),
                ms(result.latency.p99),
                report::ratio(result.rate(), baseline.0.rate()),
                cpu::ms_per(cpu.own, result.ok),
                cpu.database
                    .map_or("in-process".into(), |db| cpu::ms_per(db, result.ok)),
                format!("{:.0}", cpu.machine_busy),
            ]);
        }
    }
    println!("{}", table.render());
    Ok(())
}

/// Plain single-row INSERT commits into a table shaped like `executions`.
async fn baseline_inserts(service: &Service, args: &Args) -> anyhow::Result<(LoadResult, CpuUse)> {
    let backend = service.db.backend;
    let pool = service.store.pool().clone();
    sqlx::query(create_baseline_table(backend))
        .execute(&pool)
        .await?;
    let project_id = service.project_id;
    let insert = move |_| {
        let pool = pool.clone();
        async move {
            sqlx::query(insert_baseline_row(backend))
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(project_id)
                .bind("queued")
                .bind(PROMPT)
                .bind("webhook")
                .bind(None::<String>)
                .bind(ccs::store::now_ms())
                .execute(&pool)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    let insert = Arc::new(insert);
    let warm = insert.clone();
    load::run(args.warmup_load(), move |i| warm(i)).await;
    let meter = CpuMeter::start(backend);
    let result = load::run(args.load(), move |i| insert(i)).await;
    Ok((result, meter.finish()))
}

/// Authenticated webhook submissions against an in-process API.
async fn webhook_requests(service: &Service, args: &Args) -> anyhow::Result<(LoadResult, CpuUse)> {
    let api = ApiArgs {
        listen: "127.0.0.1:0".parse()?,
        max_body_bytes: 1024 * 1024,
        max_prompt_bytes: 256 * 1024,
        rate_limits: Default::default(),
        github_webhook_secret: None,
        ui: ccs::ui::UiConfig::default(),
        runner_policy: Default::default(),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let server = Server::bind(
        api.listen,
        ccs::http::app(service.store.clone(), &api),
        stop.clone(),
    )
    .await?;
    let addr = server.addr;
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let url: Arc<str> = format!("http://{addr}/webhook/execute").into();
    let key: Arc<str> = service.admin_key.clone().into();
    let body = bytes_of(&serde_json::json!({
        "projectId": service.project_id,
        "prompt": PROMPT,
        "source": "webhook",
    }));
    let submit = move |_| {
        let (client, url, key, body) = (client.clone(), url.clone(), key.clone(), body.clone());
        async move {
            let res = client
                .post(&*url)
                .bearer_auth(&*key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = res.status();
            // Read the body so the connection goes back to the pool.
            let text = res.text().await.map_err(|e| e.to_string())?;
            if status == reqwest::StatusCode::ACCEPTED {
                Ok(())
            } else {
                Err(format!("{status}: {text}"))
            }
        }
    };
    let submit = Arc::new(submit);
    let warm = submit.clone();
    load::run(args.warmup_load(), move |i| warm(i)).await;
    let meter = CpuMeter::start(service.db.backend);
    let result = load::run(args.load(), move |i| submit(i)).await;
    let cpu = meter.finish();
    stop.cancel();
    server.wait().await?;
    Ok((result, cpu))
}

impl Args {
    fn load(&self) -> Load {
        Load {
            concurrency: self.concurrency,
            requests: self.requests,
            time_limit: self.time_limit,
        }
    }

    fn warmup_load(&self) -> Load {
        Load {
            requests: self.warmup,
            ..self.load()
        }
    }
}

fn bytes_of(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// A table with the columns of an `executions` row that a submission
/// fills, without its foreign keys or secondary indexes.
fn create_baseline_table(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "CREATE TABLE bench_rows (id TEXT PRIMARY KEY, project_id INTEGER NOT NULL, \
             status TEXT NOT NULL, prompt TEXT NOT NULL, source TEXT NOT NULL, \
             idempotency_key TEXT, created_at INTEGER NOT NULL)"
        }
        Backend::MySql => {
            "CREATE TABLE bench_rows (id VARCHAR(36) PRIMARY KEY, project_id BIGINT NOT NULL, \
             status VARCHAR(32) NOT NULL, prompt MEDIUMTEXT NOT NULL, source VARCHAR(64) NOT NULL, \
             idempotency_key VARCHAR(200), created_at BIGINT NOT NULL) \
             ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"
        }
        Backend::Postgres => {
            "CREATE TABLE bench_rows (id VARCHAR(36) PRIMARY KEY, project_id BIGINT NOT NULL, \
             status VARCHAR(32) NOT NULL, prompt TEXT NOT NULL, source VARCHAR(64) NOT NULL, \
             idempotency_key VARCHAR(200), created_at BIGINT NOT NULL)"
        }
    }
}

fn insert_baseline_row(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite | Backend::MySql => {
            "INSERT INTO bench_rows (id, project_id, status, prompt, source, idempotency_key, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
        }
        Backend::Postgres => {
            "INSERT INTO bench_rows (id, project_id, status, prompt, source, idempotency_key, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        }
    }
}
