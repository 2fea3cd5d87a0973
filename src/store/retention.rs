//! Deleting what finished long ago, one bounded batch per statement
//! (`retention.sql` per backend). Called by the retention job
//! ([`crate::jobs::retention`]); each call is safe to repeat and to run on
//! several workers at once (a row is deleted once).

use super::{Result, Store};
use crate::jobs::Job;

/// What retention deletes. The execution and workflow rows themselves
/// (their status, cost, result: the summaries) are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retained {
    /// Log rows of executions finished before the cutoff.
    Logs,
    /// Event rows of workflow runs finished before the cutoff.
    WorkflowEvents,
    /// Workspace packs of executions finished before the cutoff (a workflow
    /// step's only once its run has finished).
    Packs,
    /// apalis job rows `Done` before the cutoff, every queue.
    Jobs,
}

impl Retained {
    pub const ALL: [Retained; 4] = [
        Retained::Logs,
        Retained::WorkflowEvents,
        Retained::Packs,
        Retained::Jobs,
    ];

    /// The `table` label of `ccs_retention_deleted_rows_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Retained::Logs => "logs",
            Retained::WorkflowEvents => "workflow_events",
            Retained::Packs => "execution_changes",
            Retained::Jobs => "jobs",
        }
    }

    fn query(self) -> &'static str {
        match self {
            Retained::Logs => "retention_logs",
            Retained::WorkflowEvents => "retention_workflow_events",
            Retained::Packs => "retention_packs",
            Retained::Jobs => "retention_jobs",
        }
    }
}

impl Store {
    /// Deletes at most `batch` rows of `what` that finished before
    /// `cutoff_ms` (epoch milliseconds); how many it deleted.
    pub async fn purge_batch(&self, what: Retained, cutoff_ms: i64, batch: i64) -> Result<u64> {
        // apalis keeps its own times: epoch seconds.
        let cutoff = if what == Retained::Jobs {
            cutoff_ms / 1000
        } else {
            cutoff_ms
        };
        let done = sqlx::query(self.q(what.query()))
            .bind(cutoff)
            .bind(batch)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Enqueues `job` to run at `run_at_secs` (epoch seconds) unless its
    /// queue already holds a job with `key` (in any state): `true` when
    /// this call enqueued it. How a job is scheduled once fleet-wide.
    pub async fn insert_job_once<J: Job>(
        &self,
        job: &J,
        key: &str,
        run_at_secs: i64,
    ) -> Result<bool> {
        let done = sqlx::query(self.q("job_insert_once"))
            .bind(job.encode())
            .bind(ulid::Ulid::new().to_string())
            .bind(J::QUEUE)
            .bind(J::MAX_ATTEMPTS)
            .bind(run_at_secs)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
