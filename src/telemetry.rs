//! Logging and Prometheus metrics, set up once per process.
//!
//! Metric names (all `ccs_`-prefixed, documented in `docs/metrics.md`):
//! `ccs_webhook_requests_total{endpoint,status}`, `ccs_jobs_enqueued_total{queue}`,
//! `ccs_queue_depth{queue,state}` (refreshed on scrape),
//! `ccs_job_duration_seconds{queue}`, `ccs_execution_cost_usd_total`,
//! `ccs_executions_finished_total{status}`, `ccs_jobs_reenqueued_total`,
//! `ccs_http_requests_total{method,route,status}`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

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
            Ok(handle) => handle,
            // Another recorder is installed (tests): render an empty registry.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

/// Adds an execution's cost to `ccs_execution_cost_usd_total`.
pub fn record_cost(usd: f64) {
    metrics::gauge!("ccs_execution_cost_usd_total").increment(usd);
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
