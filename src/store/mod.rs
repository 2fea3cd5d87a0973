//! The service's own tables, behind one interface for all three backends.
//!
//! [`Store`] is the only code that writes SQL. Every statement is a named
//! query in `src/store/sql/<backend>/` (`-- name: …` blocks), so each
//! backend's SQL can be read, diffed and EXPLAINed on its own; the Rust code
//! is shared. Rows cross the boundary through sqlx's `Any` driver, which is
//! why every time is an epoch-millisecond `BIGINT` and every flag an integer.
//!
//! Who writes what:
//! * the API inserts projects, API keys, and an execution **together with
//!   its queue job in one transaction** ([`Store::create_execution`]): a
//!   `202` means both are committed, and a crash leaves neither;
//! * workers move executions through their states (each transition guarded
//!   by the state it comes from, so a job that runs twice cannot finish an
//!   execution twice) and append log rows;
//! * `tests/store_conformance.rs` runs every method against every backend.

mod github;
pub mod limits;
mod models;
mod queries;
mod retention;
pub mod ui;
mod workers;
mod workflows;

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row as _};

use crate::db::Backend;
pub use github::*;
pub use models::*;
use queries::Queries;
pub use retention::Retained;
pub use workflows::*;

/// Errors of the store. Constraint violations the caller can act on have
/// their own variants; everything else is `Database`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{what} {value:?} already exists")]
    Conflict { what: &'static str, value: String },
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Self::Unavailable(e)
            }
            sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => {
                Self::Unavailable(e)
            }
            other => Self::Database(other),
        }
    }
}

impl StoreError {
    fn is_unique_violation(e: &sqlx::Error) -> bool {
        matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
    }

    /// A deadlock or serialization failure: the transaction was rolled back
    /// and may simply be run again (SQLSTATE 40001, PostgreSQL's 40P01).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(db))
            if matches!(db.code().as_deref(), Some("40001" | "40P01")))
    }
}

/// Attempts of a transaction that a deadlock rolled back.
const DEADLOCK_RETRIES: u32 = 3;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Milliseconds since the Unix epoch, the unit of every stored time.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The store: a pool plus the SQL of its backend.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    sql: &'static Queries,
}

impl Store {
    pub fn new(pool: AnyPool, backend: Backend) -> Self {
        Self {
            pool,
            backend,
            sql: Queries::for_backend(backend),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn q(&self, name: &str) -> &'static str {
        self.sql.get(name)
    }

    /// One round trip; fails fast when the database is unreachable.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query(self.q("ping")).execute(&self.pool).await?;
        Ok(())
    }

    // ----- projects -------------------------------------------------------

    pub async fn create_project(&self, p: &NewProject) -> Result<Project> {
        let now = now_ms();
        let result = sqlx::query(self.q("project_insert"))
            .bind(&p.name)
            .bind(&p.path)
            .bind(&p.description)
            .bind(&p.container_yaml)
            .bind(&p.workflow_yaml)
            .bind(now)
            .bind(now)
            .bind(&p.repository)
            .bind(&p.github_config)
            .execute(&self.pool)
            .await;
        match result {
            Ok(_) => {}
            Err(e) if StoreError::is_unique_violation(&e) => {
                return Err(StoreError::Conflict {
                    what: "project",
                    value: p.name.clone(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        self.project_by_name(&p.name)
            .await?
            .ok_or(StoreError::NotFound("project"))
    }

    pub async fn project(&self, id: i64) -> Result<Option<Project>> {
        let row = sqlx::query(self.q("project_by_id"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Project::from_row(&r)).transpose()
    }

    pub async fn project_by_name(&self, name: &str) -> Result<Option<Project>> {
        let row = sqlx::query(self.q("project_by_name"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Project::from_row(&r)).transpose()
    }

    pub async fn projects(&self) -> Result<Vec<Project>> {
        let rows = sqlx::query(self.q("project_list"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Project::from_row).collect()
    }

    // ----- API keys -------------------------------------------------------

    pub async fn create_api_key(&self, k: &NewApiKey) -> Result<ApiKeyRecord> {
        sqlx::query(self.q("api_key_insert"))
            .bind(&k.name)
            .bind(&k.key_hash)
            .bind(&k.key_prefix)
            .bind(Permission::join(&k.permissions))
            .bind(k.expires_at)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        self.api_key_by_hash(&k.key_hash)
            .await?
            .ok_or(StoreError::NotFound("api key"))
    }

    pub async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query(self.q("api_key_by_hash"))
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| ApiKeyRecord::from_row(&r)).transpose()
    }

    /// Records one use of a key (last use and count).
    pub async fn touch_api_key(&self, id: i64) -> Result<()> {
        sqlx::query(self.q("api_key_touch"))
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn count_api_keys(&self) -> Result<i64> {
        let row = sqlx::query(self.q("api_key_count"))
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    // ----- executions -----------------------------------------------------

    /// Inserts an execution and its queue job in one transaction.
    ///
    /// With an idempotency key already used for the project, nothing is
    /// written and the existing execution comes back with `created: false`.
    /// A transaction rolled back by a deadlock (MariaDB's gap locks against
    /// apalis's `SKIP LOCKED` fetch) is run again, up to
    /// [`DEADLOCK_RETRIES`] times.
    pub async fn create_execution(&self, new: &NewExecution) -> Result<Created<Execution>> {
        let mut attempt = 1;
        loop {
            match self.try_create_execution(new).await {
                Err(e) if e.is_retryable() && attempt < DEADLOCK_RETRIES => {
                    tracing::debug!(attempt, error = %e, "enqueue deadlocked; retrying");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn try_create_execution(&self, new: &NewExecution) -> Result<Created<Execution>> {
        let id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(self.q("execution_insert"))
            .bind(&id)
            .bind(new.project_id)
            .bind(&new.workflow_id)
            .bind(ExecutionStatus::Queued.as_str())
            .bind(&new.prompt)
            .bind(&new.source)
            .bind(&new.idempotency_key)
            .bind(new.api_key_id)
            .bind(now_ms())
            .bind(&new.resume_from)
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => {}
            // The idempotency key was used before (or concurrently, by a
            // transaction that committed first): answer with that execution.
            Err(e) if StoreError::is_unique_violation(&e) && new.idempotency_key.is_some() => {
                tx.rollback().await?;
                let key = new.idempotency_key.as_deref().unwrap_or_default();
                let existing = self
                    .execution_by_idempotency_key(new.project_id, key)
                    .await?
                    .ok_or(StoreError::NotFound("execution"))?;
                return Ok(Created {
                    value: existing,
                    created: false,
                });
            }
            Err(e) => return Err(e.into()),
        }
        let job = crate::jobs::execute::ExecuteJob {
            execution_id: id.clone(),
        };
        self.insert_job(&mut tx, &job, None).await?;
        tx.commit().await?;
        let value = self
            .execution(&id)
            .await?
            .ok_or(StoreError::NotFound("execution"))?;
        Ok(Created {
            value,
            created: true,
        })
    }

    /// Writes one apalis job row of `job`'s kind, due now, inside the
    /// caller's transaction.
    async fn insert_job<J: crate::jobs::Job>(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        job: &J,
        idempotency_key: Option<&str>,
    ) -> Result<()> {
        sqlx::query(self.q("job_insert"))
            .bind(job.encode())
            .bind(ulid::Ulid::new().to_string())
            .bind(J::QUEUE)
            .bind(J::MAX_ATTEMPTS)
            .bind(idempotency_key)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn execution(&self, id: &str) -> Result<Option<Execution>> {
        let row = sqlx::query(self.q("execution_by_id"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Execution::from_row(&r)).transpose()
    }

    async fn execution_by_idempotency_key(
        &self,
        project_id: i64,
        key: &str,
    ) -> Result<Option<Execution>> {
        let row = sqlx::query(self.q("execution_by_idempotency_key"))
            .bind(project_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Execution::from_row(&r)).transpose()
    }

    pub async fn executions(&self, limit: i64) -> Result<Vec<Execution>> {
        let rows = sqlx::query(self.q("execution_list"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Execution::from_row).collect()
    }

    /// Claims an execution for a run attempt: `queued` (or `running`, when
    /// the previous attempt's worker died) becomes `running` with the
    /// attempt counted. Returns `None` when the execution is already
    /// terminal, so a job that runs twice does nothing the second time.
    pub async fn start_execution(&self, id: &str, worker_id: &str) -> Result<Option<Execution>> {
        let changed = sqlx::query(self.q("execution_start"))
            .bind(worker_id)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        self.execution(id).await
    }

    /// Records the end of attempt `attempt` of a run. Only a `running`
    /// execution still on that attempt can finish (the attempt's **fence**:
    /// a stale attempt, overtaken by a newer one, records nothing), so the
    /// first outcome recorded is the one that stands. In the same
    /// transaction the execution's budget reservation settles to its cost
    /// (see [`limits`]), so it settles exactly once.
    pub async fn finish_execution(
        &self,
        id: &str,
        attempt: i64,
        outcome: &Outcome,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(self.q("execution_finish"))
            .bind(outcome.status.as_str())
            .bind(&outcome.result)
            .bind(&outcome.error)
            .bind(outcome.cost_usd)
            .bind(i32::from(outcome.cost_estimated))
            .bind(outcome.num_turns)
            .bind(&outcome.session_id)
            .bind(outcome.exit_code)
            .bind(outcome.duration_ms)
            .bind(&outcome.validation)
            .bind(now_ms())
            .bind(id)
            .bind(attempt)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 1 {
            self.settle_reservation(&mut tx, id, outcome.cost_usd.unwrap_or_default())
                .await?;
            if let Some(session) = &outcome.session {
                sqlx::query(self.q("execution_session_insert"))
                    .bind(id)
                    .bind(&session.session_id)
                    .bind(session.transcript_gz.clone())
                    .bind(session.transcript_gz.len() as i64)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(packed) = &outcome.changes {
                sqlx::query(self.q("execution_changes_insert"))
                    .bind(id)
                    .bind(packed.clone())
                    .bind(packed.len() as i64)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(changed == 1)
    }

    /// The packed workspace changes an execution kept for the next workflow
    /// step ([`crate::runner::changes`]), if it kept any.
    pub async fn execution_changes(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query(self.q("execution_changes_get"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get::<Vec<u8>, _>("packed")?),
            None => None,
        })
    }

    /// The Claude Code session an execution left for a later run to resume
    /// ([`crate::runner::session`]), if it left one.
    pub async fn execution_session(
        &self,
        id: &str,
    ) -> Result<Option<crate::runner::session::Session>> {
        let row = sqlx::query(self.q("execution_session_get"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(crate::runner::session::Session {
                session_id: r.try_get::<String, _>("session_id")?,
                transcript_gz: r.try_get::<Vec<u8>, _>("transcript")?,
            }),
            None => None,
        })
    }

    /// Whether an execution left a session to resume.
    pub async fn has_execution_session(&self, id: &str) -> Result<bool> {
        let row = sqlx::query(self.q("execution_session_exists"))
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Whether an execution kept packed workspace changes.
    pub async fn has_execution_changes(&self, id: &str) -> Result<bool> {
        let row = sqlx::query(self.q("execution_changes_exists"))
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Cancels an execution: a queued one ends now; a running one is
    /// flagged and its worker stops it. Returns the state after the call.
    pub async fn cancel_execution(&self, id: &str) -> Result<Option<Execution>> {
        sqlx::query(self.q("execution_cancel_queued"))
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        sqlx::query(self.q("execution_request_cancel"))
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.execution(id).await
    }

    /// Whether someone asked for this execution to stop.
    pub async fn cancel_requested(&self, id: &str) -> Result<bool> {
        let row = sqlx::query(self.q("execution_cancel_requested"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<i64, _>(0)? != 0,
            None => false,
        })
    }

    /// Counts of executions per status.
    pub async fn execution_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(self.q("execution_counts"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((text(r, "status")?, r.try_get::<i64, _>(1)?)))
            .collect()
    }

    // ----- logs -----------------------------------------------------------

    /// The next free log sequence number of an execution.
    pub async fn next_log_seq(&self, execution_id: &str) -> Result<i64> {
        let row = sqlx::query(self.q("log_max_seq"))
            .bind(execution_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.map_or(1, |m| m + 1))
    }

    /// Appends a log row of attempt `attempt`, if the execution is still
    /// `running` on that attempt (its fence); `false` when it is not — the
    /// attempt was overtaken or the execution ended, and must stop.
    pub async fn append_log(
        &self,
        execution_id: &str,
        attempt: i64,
        line: &LogLine,
    ) -> Result<bool> {
        let mut q = sqlx::query(self.q("log_insert"))
            .bind(execution_id)
            .bind(attempt)
            .bind(line.seq)
            .bind(line.at)
            .bind(&line.kind)
            .bind(&line.text);
        if self.backend != Backend::Postgres {
            // `?` placeholders cannot be repeated.
            q = q.bind(execution_id).bind(attempt);
        }
        Ok(q.execute(&self.pool).await?.rows_affected() == 1)
    }

    pub async fn logs(
        &self,
        execution_id: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<LogLine>> {
        let rows = sqlx::query(self.q("log_list"))
            .bind(execution_id)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(LogLine::from_row).collect()
    }

    /// One page of an execution's log: the rows after `after_seq`, at most
    /// `limit` of them and no more text than `max_bytes` (but always at
    /// least one row). Read a few rows at a time, so a page of long lines
    /// never holds more than `max_bytes` plus a few rows in memory. The
    /// second value: whether the page was cut (more rows may follow).
    pub async fn log_page(
        &self,
        execution_id: &str,
        after_seq: i64,
        limit: i64,
        max_bytes: usize,
    ) -> Result<(Vec<LogLine>, bool)> {
        const BATCH: i64 = 16;
        let mut page: Vec<LogLine> = Vec::new();
        let mut bytes = 0;
        let mut after = after_seq;
        loop {
            let want = BATCH.min(limit - page.len() as i64);
            if want <= 0 {
                return Ok((page, true));
            }
            let rows = self.logs(execution_id, after, want).await?;
            let last = rows.len() < want as usize;
            for row in rows {
                if !page.is_empty() && bytes + row.text.len() > max_bytes {
                    return Ok((page, true));
                }
                bytes += row.text.len();
                after = row.seq;
                page.push(row);
            }
            if last {
                return Ok((page, false));
            }
        }
    }

    // ----- queue ----------------------------------------------------------

    /// Jobs per queue and apalis status (`Pending`, `Queued`, `Running`,
    /// `Done`, `Failed`, `Killed`).
    pub async fn queue_counts(&self) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query(self.q("queue_counts"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    text(r, "job_type")?,
                    text(r, "status")?,
                    r.try_get::<i64, _>(2)?,
                ))
            })
            .collect()
    }

    /// Hands back jobs claimed by workers that stopped heartbeating for
    /// `dead_after_secs`, or whose worker row is gone. See
    /// [`crate::queue::reaper`].
    pub async fn reenqueue_orphaned_jobs(&self, queue: &str, dead_after_secs: i64) -> Result<u64> {
        // Look first without locking: in the usual case nothing is orphaned,
        // and the locking UPDATE would only contend with the workers' fetch.
        let row = sqlx::query(self.q("job_orphans_count"))
            .bind(dead_after_secs)
            .bind(queue)
            .fetch_one(&self.pool)
            .await?;
        if row.try_get::<i64, _>(0)? == 0 {
            return Ok(0);
        }
        let n = sqlx::query(self.q("job_reenqueue_orphaned"))
            .bind(dead_after_secs)
            .bind(queue)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n)
    }

    // ----- audit ----------------------------------------------------------

    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> Result<()> {
        sqlx::query(self.q("audit_insert"))
            .bind(now_ms())
            .bind(actor)
            .bind(action)
            .bind(subject)
            .bind(detail)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A value and whether this call created it (idempotent inserts).
#[derive(Debug, Clone)]
pub struct Created<T> {
    pub value: T,
    pub created: bool,
}

fn get<'r, T>(row: &'r AnyRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(col)
        .map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}

/// A text column. MySQL reports `TEXT` columns as `BLOB` through the `Any`
/// driver, so bytes are accepted too (and must be UTF-8).
fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>> {
    match row.try_get::<Option<String>, _>(col) {
        Ok(v) => Ok(v),
        Err(_) => {
            let bytes: Option<Vec<u8>> = get(row, col)?;
            bytes
                .map(|b| {
                    String::from_utf8(b)
                        .map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
                })
                .transpose()
        }
    }
}

fn text(row: &AnyRow, col: &str) -> Result<String> {
    opt_text(row, col)?.ok_or_else(|| StoreError::Corrupt(format!("column {col} is NULL")))
}
