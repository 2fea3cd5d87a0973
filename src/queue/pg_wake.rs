//! PostgreSQL: workers are woken when a job becomes due, not polled.
//!
//! apalis-postgres's polling fetcher ignores the configured poll interval
//! and backs off while the queue is idle (doubling from 1 s to 5 min), so
//! after a quiet spell a new job could wait minutes. On PostgreSQL ccs
//! therefore runs apalis's LISTEN/NOTIFY storage
//! (`PostgresStorage::new_with_notify`): apalis's `notify_new_jobs` trigger
//! notifies `apalis::job::insert` when a due job is inserted, and every
//! listening worker claims the notified id at once (an `UPDATE … WHERE
//! status = 'Pending'`, so a job is claimed once however many hear of it).
//!
//! The trigger misses jobs that **become** due later: a job inserted with a
//! later `run_at` (a workflow step's retry backoff), a job admission hands
//! back with a delay, a job the reaper hands back (it sets `run_at` to now).
//! This task covers them: every poll interval each worker process sends the
//! same notification for each pending job of the registered queues
//! ([`crate::jobs::KINDS`]) whose `run_at`
//! passed within the last two intervals (`sql/postgres/wake.sql`). A job is
//! notified at most a few times, so listeners never pile up notifications;
//! what is still missed (a failed job apalis retries, a notification a
//! worker consumed as it died) is left to apalis's own backing-off poll.
//!
//! Produced: by the worker process ([`crate::worker::run`]) on PostgreSQL
//! only. Crash: nothing to lose; the next tick of any worker notifies again.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const WAKE: &str = include_str!("../store/sql/postgres/wake.sql");

/// Runs until `stop`: every `interval`, notifies the jobs that became due.
pub async fn run(pool: PgPool, interval: Duration, stop: CancellationToken) {
    let interval = interval.max(Duration::from_millis(20));
    // Two intervals of overlap: a late tick misses nothing.
    let window_secs = (interval * 2).as_secs_f64();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match sqlx::query(WAKE)
            .bind(window_secs)
            .bind(crate::jobs::queues())
            .execute(&pool)
            .await
        {
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "cannot wake workers for due jobs"),
        }
    }
}
