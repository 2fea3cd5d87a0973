//! The orphan sweep: removing what runs of dead workers left behind.
//!
//! A worker killed with SIGKILL cannot clean up: with the Docker runner its
//! containers keep running, owned by the daemon. Every worker process runs
//! this sweep once at start and then every dead-after window (heartbeat
//! interval × missed heartbeats). It lists what runs left on the host
//! ([`Runner::leftovers`]: containers and networks, labelled with their
//! worker and execution) and removes a leftover when
//!
//! * its worker is not alive — not among the workers whose heartbeat in
//!   apalis's table is younger than the window ([`Store::live_worker_ids`]),
//!   nor one of this process's own ids (alive before apalis registers them);
//! * and its execution is in this deployment's database: several
//!   deployments may share a Docker host, and another's workers are not in
//!   our table.
//!
//! A worker that just died still looks alive until its heartbeat ages past
//! the window, so its containers go at the first sweep after that. When the
//! database cannot be read the round is skipped: nothing is removed without
//! knowing who is alive. Several workers sweeping at once do no harm (a
//! container removed twice is simply not found the second time). Nothing is
//! kept between rounds, so a crash of the sweeper loses nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::{Leftover, Runner};
use crate::queue::reaper::Heartbeat;
use crate::store::{Store, StoreError};

/// Runs until `stop` fires. `own_ids` are the worker ids of this process.
pub async fn run(
    store: Store,
    runner: Arc<dyn Runner>,
    heartbeat: Heartbeat,
    own_ids: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
) {
    let window = heartbeat.dead_after();
    let mut tick = tokio::time::interval(window.max(std::time::Duration::from_secs(1)));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let own: Vec<String> = own_ids.lock().map(|ids| ids.clone()).unwrap_or_default();
        match sweep(&store, runner.as_ref(), heartbeat, &own).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(removed = n, "removed what dead workers left running");
                metrics::counter!("ccs_orphans_removed_total", "runner" => runner.name())
                    .increment(n as u64);
            }
            Err(e) => tracing::warn!(error = %e, "orphan sweep skipped"),
        }
    }
}

/// Why a sweep round did nothing.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("cannot read the database: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runner(#[from] super::RunnerError),
}

/// One round: removes the leftovers of dead workers of this deployment;
/// returns how many were removed.
///
/// # Errors
///
/// The database or the runner's host could not be read; nothing was removed
/// after that.
pub async fn sweep(
    store: &Store,
    runner: &dyn Runner,
    heartbeat: Heartbeat,
    own_ids: &[String],
) -> Result<usize, SweepError> {
    let mut leftovers = runner.leftovers().await?;
    if leftovers.is_empty() {
        return Ok(0);
    }
    let alive_within = i64::try_from(heartbeat.dead_after().as_secs())
        .unwrap_or(i64::MAX)
        .max(1);
    let mut live = store.live_worker_ids(alive_within).await?;
    live.extend(own_ids.iter().cloned());
    leftovers.retain(|l| !live.contains(&l.worker_id));
    let mut ours: HashMap<String, bool> = HashMap::new();
    let mut orphans: Vec<Leftover> = Vec::new();
    for leftover in leftovers {
        let known = match ours.get(&leftover.execution_id) {
            Some(known) => *known,
            None => {
                let known = store.execution(&leftover.execution_id).await?.is_some();
                ours.insert(leftover.execution_id.clone(), known);
                known
            }
        };
        if known {
            orphans.push(leftover);
        }
    }
    // Containers before the networks they are attached to.
    orphans.sort_by_key(|l| l.kind);
    let mut removed = 0;
    for orphan in &orphans {
        if runner.remove_leftover(orphan).await? {
            removed += 1;
            tracing::info!(
                kind = ?orphan.kind,
                id = %orphan.id,
                execution.id = %orphan.execution_id,
                worker.id = %orphan.worker_id,
                "removed a leftover of a dead worker"
            );
        }
    }
    Ok(removed)
}
