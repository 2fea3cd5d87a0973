//! Logging and Prometheus metrics, set up once per process.
//!
//! Every metric family is described in [`METRICS`] (its `# HELP` line; the
//! list `docs/metrics.md` documents, with labels). Code records through the
//! `metrics` macros; `/metrics` of every process serves [`render`].
//!
//! `ccs_execution_cost_usd_total` is a counter of fractional dollars, which
//! the `metrics` crate's integer counters cannot hold: it is summed here in
//! micro-dollars and rendered by [`render`] as a Prometheus counter.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric family ccs exports: name, kind, help text.
pub const METRICS: &[(&str, Kind, &str)] = &[
    (
        "ccs_webhook_requests_total",
        Kind::Counter,
        "Webhook requests, by endpoint path and HTTP status.",
    ),
    (
        "ccs_github_deliveries_total",
        Kind::Counter,
        "Signed GitHub deliveries accepted on POST /webhook/github, by outcome (queued, ignored, duplicate).",
    ),
    (
        "ccs_jobs_enqueued_total",
        Kind::Counter,
        "Jobs written to a queue, by queue.",
    ),
    (
        "ccs_queue_depth",
        Kind::Gauge,
        "Jobs in the queue tables by queue and apalis state, read on each scrape.",
    ),
    (
        "ccs_job_duration_seconds",
        Kind::Histogram,
        "Wall-clock time of an execution from admission to its recorded end, by queue.",
    ),
    (
        COST_METRIC,
        Kind::Counter,
        "Cost in US dollars of the executions this process finished.",
    ),
    (
        "ccs_executions_finished_total",
        Kind::Counter,
        "Executions this process brought to an end, by final status.",
    ),
    (
        "ccs_jobs_reenqueued_total",
        Kind::Counter,
        "Jobs the reaper handed back because their worker stopped heartbeating.",
    ),
    (
        "ccs_worker_restarts_total",
        Kind::Counter,
        "Times the supervisor restarted a stopped apalis worker, by queue.",
    ),
    (
        "ccs_admission_waits_total",
        Kind::Counter,
        "Jobs handed back to their queue at admission, by reason (concurrency, start_rate).",
    ),
    (
        "ccs_rate_limited_total",
        Kind::Counter,
        "Requests refused with 429 by an ingestion rate limit, by scope.",
    ),
    (
        "ccs_orphans_removed_total",
        Kind::Counter,
        "Agents (containers, process groups) of dead workers removed, by runner.",
    ),
    (
        "ccs_retention_deleted_rows_total",
        Kind::Counter,
        "Rows of what finished long ago deleted by the retention job, by table.",
    ),
    (
        "ccs_workflows_started_total",
        Kind::Counter,
        "Workflow runs started.",
    ),
];

const COST_METRIC: &str = "ccs_execution_cost_usd_total";

/// `ccs_execution_cost_usd_total`, in micro-dollars.
static COST_MICRO_USD: AtomicU64 = AtomicU64::new(0);

/// Installs the tracing subscriber (`RUST_LOG`, default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,apalis=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The process's Prometheus recorder (installed on first use).
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("ccs_job_duration_seconds".into()),
                &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0],
            )
            .and_then(|b| b.set_buckets(&[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]));
        match builder.and_then(|b| b.install_recorder()) {
            Ok(handle) => {
                describe();
                handle
            }
            // Another recorder is installed (tests): render an empty registry.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

/// Gives the installed recorder the `# HELP` text of every family.
fn describe() {
    for &(name, kind, help) in METRICS {
        match kind {
            // Rendered by `render` itself.
            Kind::Counter if name == COST_METRIC => {}
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

/// Adds an execution's cost to `ccs_execution_cost_usd_total` (a negative
/// or non-finite amount adds nothing: a counter only goes up).
pub fn record_cost(usd: f64) {
    if usd.is_finite() && usd > 0.0 {
        COST_MICRO_USD.fetch_add((usd * 1e6).round() as u64, Ordering::Relaxed);
    }
}

/// The process's metrics in Prometheus text format: what `/metrics` serves.
pub fn render() -> String {
    let mut text = prometheus().render();
    let micros = COST_MICRO_USD.load(Ordering::Relaxed);
    let help = METRICS
        .iter()
        .find(|(name, _, _)| *name == COST_METRIC)
        .map(|(_, _, help)| *help)
        .unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "# HELP {COST_METRIC} {help}\n# TYPE {COST_METRIC} counter\n{COST_METRIC} {}.{:06}\n",
        micros / 1_000_000,
        micros % 1_000_000
    ));
    text
}

/// The job states of apalis's jobs tables, as `ccs_queue_depth` labels them.
pub const JOB_STATES: [&str; 6] = ["pending", "queued", "running", "done", "failed", "killed"];

/// Sets `ccs_queue_depth{queue,state}` from the jobs tables (on scrape):
/// every registered queue ([`crate::jobs::KINDS`]) in every state, zero
/// included, so a queue that empties reads 0 rather than its last count.
pub async fn refresh_queue_depth(store: &crate::store::Store) {
    match store.queue_counts().await {
        Ok(counts) => {
            for queue in crate::jobs::queues() {
                for state in JOB_STATES {
                    let n: i64 = counts
                        .iter()
                        .filter(|(q, s, _)| q == queue && s.eq_ignore_ascii_case(state))
                        .map(|(_, _, n)| n)
                        .sum();
                    metrics::gauge!("ccs_queue_depth", "queue" => queue, "state" => state)
                        .set(n as f64);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "queue depth unavailable"),
    }
}
