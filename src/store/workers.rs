//! Which workers are alive, from apalis's workers table.
//!
//! apalis writes the table: each worker process registers under its id
//! ([`crate::worker::new_worker_id`]) and refreshes `last_seen` every
//! heartbeat. ccs only reads it: a worker whose last heartbeat is older than
//! the dead-after window is dead. The Docker runner's orphan sweep
//! ([`crate::runner::Runner::reap_orphans`]) removes the containers such
//! workers left, and only theirs.

use super::{Result, Store, text};

impl Store {
    /// Ids of the workers whose last heartbeat is younger than
    /// `alive_within_secs`. A worker not listed is dead (or never started).
    pub async fn live_worker_ids(&self, alive_within_secs: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(self.q("worker_live_ids"))
            .bind(alive_within_secs)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| text(r, "id")).collect()
    }
}
