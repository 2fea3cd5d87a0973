//! Job `ccs::retention`: deletes what finished long ago, in bounded batches.
//!
//! **What goes**: log rows of executions, event rows of workflow runs, and
//! workspace packs, of what finished more than `--retention` ago (default
//! 30 days), and apalis job rows `Done` that long ago (every queue). The
//! execution and workflow rows themselves stay: status, cost, result,
//! error, times — the summaries the API, the budget history and the
//! dashboard show. Counted in `ccs_retention_deleted_rows_total{table}`.
//!
//! **Once fleet-wide, every [`RUN_EVERY`]**: time is cut into slots of
//! [`RUN_EVERY`]; the job of slot *n* carries the idempotency key
//! `retention-n` and is due when the slot starts. Every worker process, when
//! it starts, enqueues the current slot's job ([`schedule`]), and each run
//! first enqueues the next slot's; the queue's unique index on
//! (queue, idempotency key) makes all but the first insert of a slot a
//! no-op, so one job per slot exists however many workers there are, and
//! one worker claims it.
//!
//! **Bounded**: each statement deletes at most [`BATCH`] rows, and one run
//! at most [`MAX_BATCHES`] batches per table; what is left waits for the
//! next slot.
//!
//! **Crash**: every statement is idempotent (it deletes rows that match, and
//! a deleted row no longer matches); a run that dies is retried by apalis
//! (the reaper hands its job back) and picks up where the data is.

use std::sync::Arc;
use std::time::Duration;

use crate::queue::JobRef;
use crate::store::{Retained, Store, now_ms};
use crate::worker::WorkerEnv;

/// How often retention runs (one slot).
pub const RUN_EVERY: Duration = Duration::from_secs(3600);

/// Rows one statement deletes at most.
pub const BATCH: i64 = 1000;

/// Batches one run deletes at most per table.
pub const MAX_BATCHES: u32 = 100;

/// Delete what finished more than `--retention` ago: the payload of queue
/// `ccs::retention`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionJob {
    /// The slot (epoch seconds / [`RUN_EVERY`]) this run belongs to.
    pub slot: i64,
}

impl super::Job for RetentionJob {
    const QUEUE: &'static str = "ccs::retention";

    async fn run(self, _job: JobRef, env: Arc<WorkerEnv>) -> anyhow::Result<()> {
        enqueue(&env.store, self.slot + 1).await?;
        let cutoff_ms = now_ms() - env.limits.retention.as_millis() as i64;
        let deleted = purge(&env.store, cutoff_ms, BATCH, MAX_BATCHES).await?;
        tracing::info!(slot = self.slot, deleted, "retention run done");
        Ok(())
    }
}

/// Enqueues the current slot's retention job, unless some worker did.
pub async fn schedule(store: &Store) -> Result<(), crate::store::StoreError> {
    let now = now_ms() / 1000;
    enqueue(store, now / RUN_EVERY.as_secs() as i64).await
}

async fn enqueue(store: &Store, slot: i64) -> Result<(), crate::store::StoreError> {
    let at = slot * RUN_EVERY.as_secs() as i64;
    store
        .insert_job_once(&RetentionJob { slot }, &format!("retention-{slot}"), at)
        .await?;
    Ok(())
}

/// Deletes, table by table, batches of at most `batch` rows of what
/// finished before `cutoff_ms`, until a batch comes back short or
/// `max_batches` were deleted; the number of rows deleted.
pub async fn purge(
    store: &Store,
    cutoff_ms: i64,
    batch: i64,
    max_batches: u32,
) -> Result<u64, crate::store::StoreError> {
    let mut total = 0;
    for what in Retained::ALL {
        for _ in 0..max_batches {
            let n = store.purge_batch(what, cutoff_ms, batch).await?;
            metrics::counter!("ccs_retention_deleted_rows_total", "table" => what.as_str())
                .increment(n);
            total += n;
            if n < batch as u64 {
                break;
            }
        }
    }
    Ok(total)
}
