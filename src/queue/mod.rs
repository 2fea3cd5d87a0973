//! How ccs uses apalis's queues: job rows, claiming, crash safety, waking.
//! The job kinds themselves (queue names, payloads, handlers, retry
//! policies) are registered in [`crate::jobs`].
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

/// The apalis job a handler is running: its id, and the worker that
/// claimed it (the job row's `lock_by`). Admission hands a job back to the
/// queue by these ([`crate::store::Store::reschedule_job`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    pub id: String,
    pub claimed_by: String,
}
