//! What the dashboard ([`crate::ui`]) reads and writes: its sign-in
//! sessions and one-time links, the executions page (filters and a cursor),
//! the overview's per-minute series, workers, and apalis jobs of one queue
//! and state (with retry, kill and delete of one job).
//!
//! Sessions live in `ui_sessions` (migration 0050): the API is stateless,
//! so any replica accepts a cookie any other one issued, and deleting the
//! row signs the browser out everywhere. Only SHA-256 hashes of the session
//! and link tokens are stored.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{ApiKeyRecord, Execution, Result, Store, WorkflowRun, get, now_ms, opt_text, text};

/// The filters of the executions page; `None` means "any".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionFilter {
    pub status: Option<String>,
    pub project_id: Option<i64>,
    pub source: Option<String>,
    /// Created at or after (epoch ms).
    pub from_ms: Option<i64>,
    /// Created before (epoch ms).
    pub to_ms: Option<i64>,
    /// Text the prompt contains (case-insensitive).
    pub prompt: Option<String>,
}

/// Where a page of executions starts: strictly older than this row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: String,
}

impl Cursor {
    /// `<created_at>_<id>`, as it appears in a `?before=` link.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.created_at, self.id)
    }

    pub fn parse(s: &str) -> Option<Cursor> {
        let (at, id) = s.split_once('_')?;
        Some(Cursor {
            created_at: at.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

/// One point of a per-minute series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinutePoint {
    /// Minutes since the epoch.
    pub minute: i64,
    pub value: i64,
    /// The worst value of the minute, where the series has one.
    pub max: i64,
}

/// A row of apalis's workers table.
#[derive(Debug, Clone)]
pub struct WorkerRow {
    pub id: String,
    pub worker_type: String,
    pub last_seen_ms: Option<i64>,
    pub started_ms: Option<i64>,
}

/// A row of apalis's jobs table, as the queues page shows it.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: String,
    pub queue: String,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at_ms: Option<i64>,
    pub last_result: Option<String>,
    pub lock_by: Option<String>,
    pub done_at_ms: Option<i64>,
    /// The job's arguments (ccs writes JSON), lossily decoded.
    pub args: String,
}

/// What can be done to one queued job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    /// A failed or killed job runs again now, its attempts reset.
    Retry,
    /// A pending job will not run.
    Kill,
    /// A job no worker holds is removed.
    Delete,
}

impl JobAction {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "retry" => Some(Self::Retry),
            "kill" => Some(Self::Kill),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Kill => "kill",
            Self::Delete => "delete",
        }
    }
}

/// `%text%` for `LIKE … ESCAPE '!'`, with the pattern characters escaped.
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '!') {
            p.push('!');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Store {
    // ----- sessions -------------------------------------------------------

    pub async fn create_ui_session(
        &self,
        token_hash: &str,
        api_key_id: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(self.q("ui_session_insert"))
            .bind(token_hash)
            .bind(api_key_id)
            .bind(now_ms())
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The key a live (unexpired) session acts as.
    pub async fn ui_session_key(&self, token_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query(self.q("ui_session_key"))
            .bind(token_hash)
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| ApiKeyRecord::from_row(&r)).transpose()
    }

    pub async fn delete_ui_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query(self.q("ui_session_delete"))
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes expired sessions; returns how many.
    pub async fn purge_ui_sessions(&self) -> Result<u64> {
        Ok(sqlx::query(self.q("ui_session_purge"))
            .bind(now_ms())
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    pub async fn create_sign_in_link(
        &self,
        token_hash: &str,
        api_key_id: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(self.q("ui_link_insert"))
            .bind(token_hash)
            .bind(api_key_id)
            .bind(now_ms())
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Uses a one-time sign-in link: the key it signs in as, the first
    /// time only and before it expires.
    pub async fn use_sign_in_link(&self, token_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let now = now_ms();
        let changed = sqlx::query(self.q("ui_link_use"))
            .bind(now)
            .bind(token_hash)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if changed != 1 {
            return Ok(None);
        }
        let row = sqlx::query(self.q("ui_link_key"))
            .bind(token_hash)
            .fetch_one(&self.pool)
            .await?;
        self.api_key(row.try_get::<i64, _>(0)?).await
    }

    pub async fn api_key(&self, id: i64) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query(self.q("ui_api_key_by_id"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| ApiKeyRecord::from_row(&r)).transpose()
    }

    /// Every key, newest first (without secrets: only hashes are stored).
    pub async fn api_keys_for_ui(&self) -> Result<Vec<ApiKeyRecord>> {
        let rows = sqlx::query(self.q("ui_api_keys"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ApiKeyRecord::from_row).collect()
    }

    /// The oldest live admin key, if any.
    pub async fn first_admin_key(&self) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query(self.q("ui_first_admin_key"))
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| ApiKeyRecord::from_row(&r)).transpose()
    }

    // ----- executions page ------------------------------------------------

    /// Up to `limit` executions matching `f`, newest first, older than
    /// `before` when given.
    pub async fn execution_page(
        &self,
        f: &ExecutionFilter,
        before: Option<&Cursor>,
        limit: i64,
    ) -> Result<Vec<Execution>> {
        let pattern = f.prompt.as_deref().map(like_pattern);
        let (before_at, before_id) = match before {
            Some(c) => (c.created_at, c.id.as_str()),
            None => (i64::MAX, ""),
        };
        let rows = sqlx::query(self.q("ui_execution_page"))
            .bind(f.status.clone())
            .bind(f.status.clone())
            .bind(f.project_id)
            .bind(f.project_id)
            .bind(f.source.clone())
            .bind(f.source.clone())
            .bind(f.from_ms.unwrap_or(0))
            .bind(f.to_ms.unwrap_or(i64::MAX))
            .bind(pattern.clone())
            .bind(pattern)
            .bind(before_at)
            .bind(before_at)
            .bind(before_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Execution::from_row).collect()
    }

    /// Executions per status under `f` (its status filter aside).
    pub async fn execution_page_counts(&self, f: &ExecutionFilter) -> Result<Vec<(String, i64)>> {
        let pattern = f.prompt.as_deref().map(like_pattern);
        let rows = sqlx::query(self.q("ui_execution_page_counts"))
            .bind(f.project_id)
            .bind(f.project_id)
            .bind(f.source.clone())
            .bind(f.source.clone())
            .bind(f.from_ms.unwrap_or(0))
            .bind(f.to_ms.unwrap_or(i64::MAX))
            .bind(pattern.clone())
            .bind(pattern)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((text(r, "status")?, get::<i64>(r, "n")?)))
            .collect()
    }

    /// The sources executions came from (for the filter's choices).
    pub async fn execution_sources(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(self.q("ui_execution_sources"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| text(r, "source")).collect()
    }

    // ----- overview -------------------------------------------------------

    /// Executions finished per minute since `since_ms`.
    pub async fn finished_per_minute(&self, since_ms: i64) -> Result<Vec<MinutePoint>> {
        let rows = sqlx::query(self.q("ui_finished_per_minute"))
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let n: i64 = get(r, "n")?;
                Ok(MinutePoint {
                    minute: get(r, "minute")?,
                    value: n,
                    max: n,
                })
            })
            .collect()
    }

    /// Mean and worst enqueue→start latency (ms) per minute since `since_ms`.
    pub async fn start_latency_per_minute(&self, since_ms: i64) -> Result<Vec<MinutePoint>> {
        let rows = sqlx::query(self.q("ui_start_latency_per_minute"))
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(MinutePoint {
                    minute: get(r, "minute")?,
                    value: get::<Option<i64>>(r, "mean_ms")?.unwrap_or_default(),
                    max: get::<Option<i64>>(r, "max_ms")?.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The most recent failed, timed-out or over-budget executions.
    pub async fn last_failures(&self, limit: i64) -> Result<Vec<Execution>> {
        let rows = sqlx::query(self.q("ui_last_failures"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Execution::from_row).collect()
    }

    /// Executions running now.
    pub async fn running_executions(&self) -> Result<Vec<Execution>> {
        let rows = sqlx::query(self.q("ui_running"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Execution::from_row).collect()
    }

    /// apalis's workers, most recently seen first.
    pub async fn workers(&self) -> Result<Vec<WorkerRow>> {
        let rows = sqlx::query(self.q("ui_workers"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(WorkerRow {
                    id: text(r, "id")?,
                    worker_type: text(r, "worker_type")?,
                    last_seen_ms: get(r, "last_seen_ms")?,
                    started_ms: get(r, "started_ms")?,
                })
            })
            .collect()
    }

    // ----- queues ---------------------------------------------------------

    /// One queue's jobs in one apalis status, newest first.
    pub async fn jobs(&self, queue: &str, status: &str, limit: i64) -> Result<Vec<JobRow>> {
        let rows = sqlx::query(self.q("ui_jobs"))
            .bind(queue)
            .bind(status)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_row).collect()
    }

    /// Applies `action` to one job of `queue`; whether it changed a row
    /// (a job in a state the action does not apply to is left alone).
    pub async fn job_action(&self, queue: &str, id: &str, action: JobAction) -> Result<bool> {
        let name = match action {
            JobAction::Retry => "ui_job_retry",
            JobAction::Kill => "ui_job_kill",
            JobAction::Delete => "ui_job_delete",
        };
        let n = sqlx::query(self.q(name))
            .bind(id)
            .bind(queue)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    // ----- workflows ------------------------------------------------------

    /// The newest workflow runs.
    pub async fn workflow_runs(&self, limit: i64) -> Result<Vec<WorkflowRun>> {
        let rows = sqlx::query(self.q("ui_workflow_list"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(WorkflowRun::from_row).collect()
    }
}

fn job_row(r: &AnyRow) -> Result<JobRow> {
    let args: Option<Vec<u8>> = get(r, "job")?;
    Ok(JobRow {
        id: text(r, "id")?,
        queue: text(r, "job_type")?,
        status: text(r, "status")?,
        attempts: get(r, "attempts")?,
        max_attempts: get(r, "max_attempts")?,
        run_at_ms: get(r, "run_at_ms")?,
        last_result: opt_text(r, "last_result")?,
        lock_by: opt_text(r, "lock_by")?,
        done_at_ms: get(r, "done_at_ms")?,
        args: String::from_utf8_lossy(&args.unwrap_or_default()).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let c = Cursor {
            created_at: 1_700_000_000_123,
            id: "0190-abc_def".into(),
        };
        assert_eq!(Cursor::parse(&c.encode()), Some(c));
        assert_eq!(Cursor::parse("nope"), None);
        assert_eq!(Cursor::parse("x_1"), None);
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off!"), "%50!%!_off!!%");
        assert_eq!(like_pattern("fix"), "%fix%");
    }
}
