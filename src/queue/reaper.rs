//! The reaper: hands back jobs whose worker died.
//!
//! Every worker process runs one reaper task. Each `heartbeat_interval` it
//! re-enqueues the jobs of every registered queue ([`crate::jobs::KINDS`])
//! that are claimed (`Queued` or `Running`) by a worker whose last heartbeat is older than
//! `heartbeat_interval × missed_heartbeats`, or by a worker row that no
//! longer exists. The statement is a single `UPDATE` per backend
//! (`job_reenqueue_orphaned` in `src/store/sql/`), so several reapers
//! racing do no harm: a job is handed back once.
//!
//! apalis runs a similar sweep of its own; ccs keeps this one because
//! apalis-mysql's compares a `TIMESTAMP` with `UNIX_TIMESTAMP()` (never
//! true) and no backend's handles a deleted worker row.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Heartbeat settings shared by the apalis storages and the reaper.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    pub interval: Duration,
    pub missed: u32,
}

impl Heartbeat {
    /// How long a worker may stay silent before its jobs are handed back.
    pub fn dead_after(&self) -> Duration {
        self.interval * self.missed
    }
}

/// Runs until `stop` is cancelled.
pub async fn run(store: Store, heartbeat: Heartbeat, stop: CancellationToken) {
    let dead_after = heartbeat.dead_after().as_secs().max(1) as i64;
    let mut tick = tokio::time::interval(heartbeat.interval);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for queue in crate::jobs::queues() {
            match store.reenqueue_orphaned_jobs(queue, dead_after).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(queue, jobs = n, "re-enqueued jobs of dead workers");
                    metrics::counter!("ccs_jobs_reenqueued_total").increment(n);
                }
                Err(e) => tracing::warn!(error = %e, "reaper could not reach the database"),
            }
        }
    }
}
