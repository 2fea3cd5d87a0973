//! GitHub webhook deliveries (`github_deliveries`).
//!
//! Who writes what: the API inserts a delivery **together with its
//! `ccs::inbound-events` job in one transaction**
//! ([`Store::record_github_delivery`]) — or alone, marked `ignored`, for an
//! event ccs does not handle; the primary key on the delivery id makes a
//! redelivery write nothing. The inbound-events job
//! ([`crate::jobs::github_event`]) reads the delivery and records its
//! outcome once ([`Store::finish_github_delivery`], guarded by
//! `status = 'queued'`).

use serde::Serialize;
use sqlx::any::AnyRow;

use super::{DEADLOCK_RETRIES, Result, Store, StoreError, get, now_ms, opt_text, text};

/// What happened to a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Stored with its job; the job has not finished it yet.
    Queued,
    /// An event ccs does not handle: recorded, nothing enqueued.
    Ignored,
    /// The job turned it into runs, or found nothing to do.
    Processed,
    /// The job could not act on it (the outcome says why).
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Ignored => "ignored",
            Self::Processed => "processed",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "queued" => Self::Queued,
            "ignored" => Self::Ignored,
            "processed" => Self::Processed,
            "failed" => Self::Failed,
            other => return Err(StoreError::Corrupt(format!("delivery status {other:?}"))),
        })
    }
}

/// A verified delivery to record.
#[derive(Debug, Clone)]
pub struct NewGithubDelivery {
    /// `X-GitHub-Delivery`.
    pub delivery_id: String,
    /// `X-GitHub-Event`.
    pub event: String,
    pub action: Option<String>,
    /// `owner/name`.
    pub repository: Option<String>,
    /// The login of the user or bot that caused the event.
    pub sender: Option<String>,
    pub installation_id: Option<i64>,
    /// The raw body (kept only for a queued delivery).
    pub payload: Option<String>,
    /// `Queued` (a job is enqueued with it) or `Ignored`.
    pub status: DeliveryStatus,
    /// Why it was ignored.
    pub outcome: Option<String>,
}

/// A stored delivery.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GithubDelivery {
    pub delivery_id: String,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub sender: Option<String>,
    pub installation_id: Option<i64>,
    #[serde(skip)]
    pub payload: Option<String>,
    pub status: DeliveryStatus,
    pub outcome: Option<String>,
    pub received_at: i64,
    pub processed_at: Option<i64>,
}

impl GithubDelivery {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(Self {
            delivery_id: text(r, "delivery_id")?,
            event: text(r, "event")?,
            action: opt_text(r, "action")?,
            repository: opt_text(r, "repository")?,
            sender: opt_text(r, "sender")?,
            installation_id: get(r, "installation_id")?,
            payload: opt_text(r, "payload")?,
            status: DeliveryStatus::parse(&text(r, "status")?)?,
            outcome: opt_text(r, "outcome")?,
            received_at: get(r, "received_at")?,
            processed_at: get(r, "processed_at")?,
        })
    }
}

impl Store {
    /// Records a delivery and, when it is `Queued`, enqueues its
    /// inbound-events job in the same transaction. Returns `false` (and
    /// writes nothing) when the delivery id was recorded before: a
    /// redelivery.
    pub async fn record_github_delivery(&self, new: &NewGithubDelivery) -> Result<bool> {
        let mut attempt = 1;
        loop {
            match self.try_record_github_delivery(new).await {
                Err(e) if e.is_retryable() && attempt < DEADLOCK_RETRIES => attempt += 1,
                other => return other,
            }
        }
    }

    async fn try_record_github_delivery(&self, new: &NewGithubDelivery) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(self.q("github_delivery_insert"))
            .bind(&new.delivery_id)
            .bind(&new.event)
            .bind(&new.action)
            .bind(&new.repository)
            .bind(&new.sender)
            .bind(new.installation_id)
            .bind(&new.payload)
            .bind(new.status.as_str())
            .bind(&new.outcome)
            .bind(now_ms())
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => {}
            Err(e) if StoreError::is_unique_violation(&e) => {
                tx.rollback().await?;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
        if new.status == DeliveryStatus::Queued {
            let job = crate::jobs::github_event::InboundEventJob {
                delivery_id: new.delivery_id.clone(),
            };
            self.insert_job(&mut tx, &job, None).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn github_delivery(&self, delivery_id: &str) -> Result<Option<GithubDelivery>> {
        let row = sqlx::query(self.q("github_delivery_by_id"))
            .bind(delivery_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| GithubDelivery::from_row(&r)).transpose()
    }

    /// The newest deliveries first.
    pub async fn github_deliveries(&self, limit: i64) -> Result<Vec<GithubDelivery>> {
        let rows = sqlx::query(self.q("github_delivery_list"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(GithubDelivery::from_row).collect()
    }

    /// Records the job's outcome of a queued delivery. Returns `false` when
    /// it was finished before (the job ran twice): the first outcome stands.
    pub async fn finish_github_delivery(
        &self,
        delivery_id: &str,
        status: DeliveryStatus,
        outcome: &str,
    ) -> Result<bool> {
        let changed = sqlx::query(self.q("github_delivery_finish"))
            .bind(status.as_str())
            .bind(outcome)
            .bind(now_ms())
            .bind(delivery_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }
}

/// What a delivery started, and where it answers (`github_runs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubRun {
    pub delivery_id: String,
    pub project_id: i64,
    pub repository: String,
    pub number: i64,
    pub is_pull_request: bool,
    pub installation_id: Option<i64>,
    pub execution_id: Option<String>,
    pub workflow_id: Option<String>,
    pub tracking_comment_id: Option<i64>,
    /// The last state written into the tracking comment.
    pub answered: Option<String>,
}

impl GithubRun {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(Self {
            delivery_id: text(r, "delivery_id")?,
            project_id: get(r, "project_id")?,
            repository: text(r, "repository")?,
            number: get(r, "number")?,
            is_pull_request: get::<i32>(r, "is_pull_request")
                .or_else(|_| get::<i64>(r, "is_pull_request").map(|v| v as i32))?
                != 0,
            installation_id: get(r, "installation_id")?,
            execution_id: opt_text(r, "execution_id")?,
            workflow_id: opt_text(r, "workflow_id")?,
            tracking_comment_id: get(r, "tracking_comment_id")?,
            answered: opt_text(r, "answered")?,
        })
    }
}

impl Store {
    /// The project that answers for `owner/name` (the oldest, when several
    /// name it).
    pub async fn project_by_repository(&self, repository: &str) -> Result<Option<super::Project>> {
        let row = sqlx::query(self.q("project_by_repository"))
            .bind(repository)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| super::Project::from_row(&r)).transpose()
    }

    /// Records what a delivery started and enqueues the job that answers in
    /// its thread, in one transaction. `false` (nothing written): it was
    /// recorded before.
    pub async fn insert_github_run(
        &self,
        run: &GithubRun,
        answer: &crate::jobs::github_answer::GithubAnswerJob,
    ) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(self.q("github_run_insert"))
            .bind(&run.delivery_id)
            .bind(run.project_id)
            .bind(&run.repository)
            .bind(run.number)
            .bind(i32::from(run.is_pull_request))
            .bind(run.installation_id)
            .bind(&run.execution_id)
            .bind(&run.workflow_id)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => {}
            Err(e) if StoreError::is_unique_violation(&e) => {
                tx.rollback().await?;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
        self.insert_job(&mut tx, answer, None).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn github_run(&self, delivery_id: &str) -> Result<Option<GithubRun>> {
        let row = sqlx::query(self.q("github_run_by_delivery"))
            .bind(delivery_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| GithubRun::from_row(&r)).transpose()
    }

    /// Sets the tracking comment once; returns the one that stands.
    pub async fn set_github_tracking_comment(
        &self,
        delivery_id: &str,
        comment_id: i64,
    ) -> Result<Option<i64>> {
        sqlx::query(self.q("github_run_set_tracking"))
            .bind(comment_id)
            .bind(now_ms())
            .bind(delivery_id)
            .execute(&self.pool)
            .await?;
        Ok(self
            .github_run(delivery_id)
            .await?
            .and_then(|r| r.tracking_comment_id))
    }

    /// Remembers the last state written into the tracking comment.
    pub async fn set_github_answered(&self, delivery_id: &str, answered: &str) -> Result<()> {
        sqlx::query(self.q("github_run_set_answered"))
            .bind(answered)
            .bind(now_ms())
            .bind(delivery_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Executions started from thread `number` of `repository` that have
    /// not ended.
    pub async fn active_github_executions(
        &self,
        repository: &str,
        number: i64,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(self.q("github_runs_active_in_thread"))
            .bind(repository)
            .bind(number)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| text(r, "execution_id")).collect()
    }
}
