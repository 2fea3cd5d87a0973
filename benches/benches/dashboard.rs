//! Dashboard pages over 100,000 executions, per backend: the time from
//! request to the last byte of the executions list (first page, a filtered
//! page with a prompt search, a deep cursor page), one execution's page
//! (200 log lines), and the overview, each through an in-process API
//! ([`ccs::http::app`]) on 127.0.0.1, signed in with a session cookie.
//!
//! Baseline, same run and database: `GET /readyz` (one database round trip
//! through the same server), so the table says what a page costs beyond
//! reaching the database at all. Target: under 50 ms each (issue #14).
//!
//! Run: `cargo bench -p ccs-bench --bench dashboard` with
//! `CCS_TEST_MYSQL_URL`/`CCS_TEST_POSTGRES_URL` set (`scripts/bench.sh`).

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ccs::db::Backend;
use ccs::http::Server;
use ccs::settings::ApiArgs;
use ccs_bench::databases::Servers;
use ccs_bench::fixture::Service;
use ccs_bench::report::{self, Table};
use ccs_bench::stats::{Percentiles, ms};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Dashboard page times over 100k executions, beside GET /readyz")]
struct Args {
    #[command(flatten)]
    servers: Servers,
    /// Executions in the database.
    #[arg(long, env = "CCS_BENCH_EXECUTIONS", default_value_t = 100_000)]
    executions: usize,
    /// Measured requests per page (after 3 warm-up requests).
    #[arg(long, default_value_t = 30)]
    requests: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const STATUSES: [&str; 5] = ["succeeded", "succeeded", "failed", "cancelled", "timed_out"];

fn main() -> ExitCode {
    ccs_bench::run_main(run(Args::parse()))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut table = Table::new(
        &format!(
            "Dashboard pages over {} executions (ms per request, sequential)",
            args.executions
        ),
        &["backend", "page", "p50", "p99", "baseline /readyz p50"],
    );
    for (backend, admin) in args.servers.selected()? {
        let service = Service::create(backend, admin.as_deref()).await?;
        let target = seed(&service, backend, args.executions).await?;
        measure(&service, &args, &target, &mut table).await?;
        plans(&service, backend).await?;
        service.drop_database().await?;
    }
    println!("{}", report::machine());
    println!("{}", table.render());
    Ok(())
}

/// Inserts `n` finished executions over the last 7 days in batches, and
/// 200 log lines for one of them; returns that one's id.
async fn seed(service: &Service, backend: Backend, n: usize) -> anyhow::Result<String> {
    let now = ccs::store::now_ms();
    let pool = service.store.pool();
    let span = 7 * 86_400_000i64;
    let mut target = String::new();
    for start in (0..n).step_by(1000) {
        let mut sql = String::from(
            "INSERT INTO executions (id, project_id, status, prompt, source, attempts, \
             cost_usd, created_at, started_at, finished_at) VALUES ",
        );
        for i in start..(start + 1000).min(n) {
            let created = now - span + (i as i64 * span / n as i64);
            let id = uuid::Uuid::now_v7().to_string();
            if i == n / 2 {
                target = id.clone();
            }
            if i > start {
                sql.push(',');
            }
            let _ = write!(
                sql,
                "('{id}', {p}, '{s}', 'seeded prompt {i} fix the flaky test', '{src}', 1, 0.01, {created}, {st}, {fin})",
                p = service.project_id,
                s = STATUSES[i % STATUSES.len()],
                src = if i % 7 == 0 { "github" } else { "api" },
                st = created + 500 + (i as i64 % 900),
                fin = created + 30_000,
            );
        }
        sqlx::query(&sql).execute(pool).await?;
    }
    for seq in 1..=200 {
        let line = match seq % 3 {
            0 => r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t","content":"ok"}]}}"#.to_owned(),
            _ => format!(
                r#"{{"type":"assistant","message":{{"id":"m{seq}","content":[{{"type":"text","text":"step {seq}"}},{{"type":"tool_use","id":"t","name":"Read","input":{{"file_path":"a.rs"}}}}],"usage":{{"input_tokens":10,"output_tokens":5}}}}}}"#
            ),
        };
        let kind = if seq % 3 == 0 { "user" } else { "assistant" };
        let sql = match backend {
            Backend::Postgres => {
                "INSERT INTO logs (execution_id, attempt, seq, at, kind, text) VALUES ($1, 1, $2, $3, $4, $5)"
            }
            _ => {
                "INSERT INTO logs (execution_id, attempt, seq, at, kind, text) VALUES (?, 1, ?, ?, ?, ?)"
            }
        };
        sqlx::query(sql)
            .bind(&target)
            .bind(seq as i64)
            .bind(now)
            .bind(kind)
            .bind(line)
            .execute(pool)
            .await?;
    }
    Ok(target)
}

async fn measure(
    service: &Service,
    args: &Args,
    target: &str,
    table: &mut Table,
) -> anyhow::Result<()> {
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
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let res = client
        .post(format!("{base}/ui/login"))
        .form(&[("key", service.admin_key.as_str())])
        .send()
        .await?;
    anyhow::ensure!(res.status() == 303, "sign-in failed: {}", res.status());
    let cookie = res.headers()["set-cookie"]
        .to_str()?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    // A cursor deep in the list: the 1000th row's.
    let deep = {
        let rows = service
            .store
            .execution_page(&Default::default(), None, 1000)
            .await?;
        let last = rows.last().ok_or_else(|| anyhow::anyhow!("no rows"))?;
        format!("{}_{}", last.created_at, last.id)
    };
    let timed = |path: String| {
        let (client, cookie, base) = (client.clone(), cookie.clone(), base.clone());
        async move {
            let mut sample = Vec::new();
            for i in 0..args.requests + 3 {
                let t = Instant::now();
                let res = client
                    .get(format!("{base}{path}"))
                    .header("cookie", &cookie)
                    .send()
                    .await?;
                anyhow::ensure!(res.status() == 200, "{path}: {}", res.status());
                res.bytes().await?;
                if i >= 3 {
                    sample.push(t.elapsed());
                }
            }
            Ok::<Percentiles, anyhow::Error>(Percentiles::of(sample))
        }
    };
    let baseline = timed("/readyz".into()).await?;
    let backend = service.store.backend();
    for (name, path) in [
        ("executions, first page", "/ui/executions".to_owned()),
        (
            "executions, failed + prompt search",
            "/ui/executions?status=failed&q=flaky".to_owned(),
        ),
        (
            "executions, page 21 (cursor)",
            format!("/ui/executions?before={deep}"),
        ),
        (
            "execution (200 log lines)",
            format!("/ui/executions/{target}"),
        ),
        ("overview", "/ui/".to_owned()),
    ] {
        let p = timed(path).await?;
        table.row(vec![
            backend.to_string(),
            name.to_owned(),
            ms(p.p50),
            ms(p.p99),
            ms(baseline.p50),
        ]);
    }
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), server.wait()).await;
    Ok(())
}

/// The plans of the executions page's queries as the database chose them
/// with 100k rows: printed for `docs/dashboard-query-plans.md`.
async fn plans(service: &Service, backend: Backend) -> anyhow::Result<()> {
    use sqlx::Row as _;
    let (explain, like) = match backend {
        Backend::Sqlite => ("EXPLAIN QUERY PLAN", "LIKE"),
        Backend::MySql => ("EXPLAIN FORMAT=JSON", "LIKE"),
        Backend::Postgres => ("EXPLAIN", "ILIKE"),
    };
    let page = "SELECT * FROM executions WHERE (NULL IS NULL OR status = NULL) \
        AND (NULL IS NULL OR project_id = NULL) AND (NULL IS NULL OR source = NULL) \
        AND created_at >= 0 AND created_at < 9223372036854775807 \
        AND (NULL IS NULL OR prompt LIKE NULL) \
        AND (created_at < 9223372036854775807 OR (created_at = 9223372036854775807 AND id < '')) \
        ORDER BY created_at DESC, id DESC LIMIT 51"
        .to_owned();
    let search = format!(
        "SELECT * FROM executions WHERE ('failed' IS NULL OR status = 'failed') \
        AND (NULL IS NULL OR project_id = NULL) AND (NULL IS NULL OR source = NULL) \
        AND created_at >= 0 AND created_at < 9223372036854775807 \
        AND ('%flaky%' IS NULL OR prompt {like} '%flaky%' ESCAPE '!') \
        AND (created_at < 9223372036854775807 OR (created_at = 9223372036854775807 AND id < '')) \
        ORDER BY created_at DESC, id DESC LIMIT 51"
    );
    let counts =
        "SELECT status, COUNT(*) AS n FROM executions WHERE created_at >= 0 GROUP BY status"
            .to_owned();
    let failures = "SELECT * FROM executions WHERE finished_at IS NOT NULL \
        AND status IN ('failed', 'timed_out', 'budget_exceeded') ORDER BY finished_at DESC LIMIT 10"
        .to_owned();
    println!("### {backend}\n");
    for (name, sql) in [
        ("executions page", page),
        ("failed + prompt search", search),
        ("counts per state", counts),
        ("last failures", failures),
    ] {
        let rows = sqlx::query(&format!("{explain} {sql}"))
            .fetch_all(service.store.pool())
            .await?;
        println!("{name}:\n```");
        for r in &rows {
            let col = if backend == Backend::Sqlite { 3 } else { 0 };
            let text = r
                .try_get::<String, _>(col)
                .or_else(|_| {
                    r.try_get::<Vec<u8>, _>(col)
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                })
                .unwrap_or_default();
            println!("{text}");
        }
        println!("```\n");
    }
    Ok(())
}
