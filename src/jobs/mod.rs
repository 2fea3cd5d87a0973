//! Job kinds: one file per queue, one list of them all.
//!
//! A job kind is a payload type implementing [`Job`]: it names its apalis
//! queue ([`Job::QUEUE`]), its retry policy ([`Job::MAX_ATTEMPTS`]) and its
//! handler ([`Job::run`]). [`KINDS`] lists every registered kind, and
//! everything that works on queues reads that list and names no job:
//!
//! | reader | what it does per kind |
//! |---|---|
//! | the worker supervisor ([`crate::worker::run`]) | one supervised apalis worker over the backend's storage |
//! | the reaper ([`crate::queue::reaper`]) | hands back the jobs of dead workers |
//! | the PostgreSQL wake-up ([`crate::queue::pg_wake`]) | notifies listeners of jobs that became due |
//! | `/metrics` ([`crate::telemetry::refresh_queue_depth`]) | `ccs_queue_depth{queue,state}`, zero included |
//!
//! | queue | payload | produced by | handler |
//! |---|---|---|---|
//! | `ccs::executions` | [`execute::ExecuteJob`] (an execution id) | the API, in the transaction that creates the execution ([`crate::store::Store::create_execution`]) | [`execute`] |
//! | `ccs::workflow-steps` | [`workflow_step::WorkflowStepJob`] (run id, step number) | the run's start and the previous step's routing, in the transaction that creates the step ([`crate::store::Store::route_step`]) | [`workflow_step`] |
//! | `ccs::inbound-events` | [`github_event::InboundEventJob`] (a GitHub delivery id) | `POST /webhook/github`, in the transaction that records the delivery ([`crate::store::Store::record_github_delivery`]) | [`github_event`] |
//! | `ccs::github-answers` | [`github_answer::GithubAnswerJob`] (a GitHub delivery id) | the inbound-events job, with the run's `github_runs` row ([`crate::store::Store::insert_github_run`]) | [`github_answer`] |
//!
//! A payload carries ids only; the state lives in ccs's tables, which is
//! what makes handlers idempotent: apalis may deliver a job twice (a worker
//! killed after the work, before the ack) and the outcome must be the same.
//!
//! # Adding a queue
//!
//! 1. A new file `src/jobs/<name>.rs` with its `//!` docs (who produces,
//!    who consumes, what happens on a crash), the payload and its handler:
//!
//!    ```ignore
//!    #[derive(Debug, Clone, Serialize, Deserialize)]
//!    #[serde(rename_all = "camelCase")]
//!    pub struct PurgeJob { pub day: String }
//!
//!    impl Job for PurgeJob {
//!        const QUEUE: &'static str = "ccs::purge";
//!        async fn run(self, job: JobRef, env: Arc<WorkerEnv>) -> anyhow::Result<()> {
//!            // idempotent: safe to run twice
//!            Ok(())
//!        }
//!    }
//!    ```
//!
//! 2. One line in [`KINDS`]: `JobKind::of::<purge::PurgeJob>(),` (and
//!    `pub mod purge;` above it).
//!
//! Producers enqueue it inside their own transaction with the store's
//! `insert_job` (see [`crate::store`]), so the job exists exactly when the
//! rows it is about do. An `Err` from [`Job::run`] makes apalis run the job
//! again, up to [`Job::MAX_ATTEMPTS`] deliveries in all.

pub mod execute;
pub mod github_answer;
pub mod github_event;
pub mod retention;
pub mod workflow_step;

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::queue::JobRef;
use crate::worker::WorkerEnv;

/// How many times apalis may hand out one job unless its kind says
/// otherwise. ccs records failures of the agent on the execution itself
/// (the job succeeds); a job is retried only when its handler could not
/// reach the database or its worker died.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 25;

/// One job kind: the payload of one apalis queue, and what runs it.
pub trait Job:
    Serialize + DeserializeOwned + Debug + Clone + Send + Sync + Unpin + 'static
{
    /// The queue's name: apalis's `job_type` column. Stable: job rows in
    /// the database carry it.
    const QUEUE: &'static str;

    /// The retry policy: how many times apalis may hand out one job.
    const MAX_ATTEMPTS: i32 = DEFAULT_MAX_ATTEMPTS;

    /// Runs the job, claimed by worker `job.claimed_by`. Must be
    /// idempotent. An `Err` hands the job back for another attempt.
    fn run(
        self,
        job: JobRef,
        env: Arc<WorkerEnv>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// The bytes apalis's JSON codec stores for this payload.
    fn encode(&self) -> Vec<u8> {
        // A payload of ids and numbers serialises without fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A registered job kind, as the code that runs queues sees it.
#[derive(Clone, Copy)]
pub struct JobKind {
    /// [`Job::QUEUE`].
    pub queue: &'static str,
    /// [`Job::MAX_ATTEMPTS`].
    pub max_attempts: i32,
    /// Runs one apalis worker of this kind ([`crate::worker`]).
    pub(crate) work: crate::worker::Work,
}

impl JobKind {
    /// The registration of job type `J`.
    pub const fn of<J: Job>() -> Self {
        Self {
            queue: J::QUEUE,
            max_attempts: J::MAX_ATTEMPTS,
            work: crate::worker::work::<J>,
        }
    }
}

impl Debug for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobKind")
            .field("queue", &self.queue)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

/// Every job kind a worker process runs. Adding a queue: one line here.
pub static KINDS: &[JobKind] = &[
    JobKind::of::<execute::ExecuteJob>(),
    JobKind::of::<workflow_step::WorkflowStepJob>(),
    JobKind::of::<github_event::InboundEventJob>(),
    JobKind::of::<github_answer::GithubAnswerJob>(),
    JobKind::of::<retention::RetentionJob>(),
];

/// The queue names of [`KINDS`].
pub fn queues() -> Vec<&'static str> {
    KINDS.iter().map(|kind| kind.queue).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_unique_and_namespaced() {
        let mut names = queues();
        assert!(names.iter().all(|q| q.starts_with("ccs::")), "{names:?}");
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KINDS.len());
    }

    #[test]
    fn payload_is_the_json_apalis_decodes() {
        let job = execute::ExecuteJob {
            execution_id: "e1".into(),
        };
        let bytes = job.encode();
        assert_eq!(bytes, br#"{"executionId":"e1"}"#);
        let back: execute::ExecuteJob = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, job);
    }
}
