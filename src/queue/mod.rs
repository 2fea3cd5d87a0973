//! The apalis queues of ccs: their names, their payloads, and the reaper.
//!
//! | queue | payload | produced by | consumed by |
//! |---|---|---|---|
//! | [`EXECUTIONS`] | [`ExecuteJob`] (an execution id) | the API, in the same transaction as the execution row ([`crate::store::Store::create_execution`]) | [`crate::jobs::execute`] in worker processes |
//! | [`WORKFLOW_STEPS`] | [`WorkflowStepJob`] (run id, step number) | the API (first step) and the previous step's job, each in the transaction that creates the step ([`crate::store::Store::route_step`]) | [`crate::jobs::workflow_step`] |
//!
//! Job rows live in apalis's own tables (`Jobs` on SQLite, `apalis.jobs` on
//! PostgreSQL, `jobs` on MySQL/MariaDB). Workers claim them through the
//! apalis storage of the backend: `FOR UPDATE SKIP LOCKED` on MariaDB and
//! PostgreSQL, a single `UPDATE … RETURNING` on SQLite (one writer at a
//! time). A payload carries only ids; the state lives in ccs's tables, which
//! is what makes handlers idempotent.
//!
//! **Crash safety.** A worker heartbeats every `heartbeat_interval`; when it
//! misses `missed_heartbeats` of them (killed, frozen, partitioned), the
//! [`reaper`] of any live worker hands its claimed jobs back (`Pending`,
//! attempts + 1) and another worker runs them again.
//!
//! **Waking.** SQLite and MariaDB workers poll every `poll_interval`. On
//! PostgreSQL, workers LISTEN: apalis's insert trigger notifies them of a
//! due job, and [`pg_wake`] of a job that became due later (apalis's own
//! poll there backs off to minutes when idle).

pub mod pg_wake;
pub mod reaper;

use serde::{Deserialize, Serialize};

/// The queue of single-agent executions.
pub const EXECUTIONS: &str = "ccs::executions";

/// The queue of workflow steps.
pub const WORKFLOW_STEPS: &str = "ccs::workflow-steps";

/// How many times apalis may hand out one job. ccs records failures of the
/// agent on the execution itself (the job succeeds); a job is retried only
/// when its handler could not reach the database or its worker died.
pub const MAX_ATTEMPTS: i32 = 25;

/// The apalis job a handler is running: its id, and the worker that
/// claimed it (the job row's `lock_by`). Admission hands a job back to the
/// queue by these ([`crate::store::Store::reschedule_job`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    pub id: String,
    pub claimed_by: String,
}

/// Run one execution. Payload of [`EXECUTIONS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteJob {
    pub execution_id: String,
}

impl ExecuteJob {
    /// The bytes apalis's JSON codec stores for this payload.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a struct of strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Run step `step` of workflow run `workflow_id`. Payload of
/// [`WORKFLOW_STEPS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStepJob {
    pub workflow_id: String,
    pub step: i64,
}

impl WorkflowStepJob {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_the_json_apalis_decodes() {
        let job = ExecuteJob {
            execution_id: "e1".into(),
        };
        let bytes = job.encode();
        assert_eq!(bytes, br#"{"executionId":"e1"}"#);
        let back: ExecuteJob = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, job);
    }
}
