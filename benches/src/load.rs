//! A closed-loop load generator: `concurrency` clients, each sending its
//! next request as soon as the previous one answered, until `requests` were
//! sent or `time_limit` passed — bounded in count and in time.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::stats::Percentiles;

/// The shape of one load run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub concurrency: usize,
    pub requests: usize,
    pub time_limit: Duration,
}

/// What a load run measured.
#[derive(Debug)]
pub struct LoadResult {
    pub ok: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    /// From the first request sent to the last answer.
    pub elapsed: Duration,
    /// Latency of the successful requests.
    pub latency: Percentiles,
    /// Whether `time_limit` cut the run short.
    pub timed_out: bool,
}

impl LoadResult {
    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `op(i)` for `i` in `0..load.requests` from `load.concurrency`
/// tasks. `op` returns `Err(description)` for a failed request.
pub async fn run<F, Fut>(load: Load, op: F) -> LoadResult
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + load.time_limit;
    let mut clients = Vec::with_capacity(load.concurrency);
    for _ in 0..load.concurrency {
        let op = op.clone();
        let next = next.clone();
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut first_error = None;
            let mut timed_out = false;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= load.requests {
                    break;
                }
                if Instant::now() >= deadline {
                    timed_out = true;
                    break;
                }
                let sent = Instant::now();
                match op(i).await {
                    Ok(()) => latencies.push(sent.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (latencies, errors, first_error, timed_out)
        }));
    }
    let mut latencies = Vec::with_capacity(load.requests);
    let mut result = LoadResult {
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latency: Percentiles::default(),
        timed_out: false,
    };
    for client in clients {
        match client.await {
            Ok((l, errors, first_error, timed_out)) => {
                latencies.extend(l);
                result.errors += errors;
                if result.first_error.is_none() {
                    result.first_error = first_error;
                }
                result.timed_out |= timed_out;
            }
            Err(e) => {
                result.errors += 1;
                result
                    .first_error
                    .get_or_insert(format!("client task: {e}"));
            }
        }
    }
    result.elapsed = start.elapsed();
    result.ok = latencies.len();
    result.latency = Percentiles::of(latencies);
    result
}
