//! Workflow runs, their steps and their events.
//!
//! A run is a row of `workflows`; each step is a row of `agent_executions`
//! (numbered by `step`) pointing at the execution that runs its agent. The
//! step's queue job is inserted in the **same transaction** as the step row
//! and its execution ([`Store::create_workflow_run`] for the first step,
//! [`Store::route_step`] for every later one), and `route_step` only acts on
//! a step not yet `routed`: so the next step is enqueued exactly once, even
//! when a worker dies between finishing a step and enqueuing the next, or a
//! step job runs twice.
//!
//! Control (pause, resume, cancel, approve, reject) is a guarded status
//! change plus its effect on the waiting step, each in one transaction.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Result, Store, StoreError, get, now_ms, opt_text, text};
use crate::jobs::Job as _;
use crate::jobs::workflow_step::WorkflowStepJob;
use crate::store::ExecutionStatus;

/// The statuses of a workflow run, as the API shows them.
pub mod run_status {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const PAUSED: &str = "paused";
    pub const AWAITING_APPROVAL: &str = "awaiting_approval";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const CANCELLED: &str = "cancelled";
    pub const BUDGET_EXCEEDED: &str = "budget_exceeded";

    pub fn is_terminal(status: &str) -> bool {
        matches!(status, SUCCEEDED | FAILED | CANCELLED)
    }
}

/// The statuses of a step row.
pub mod step_status {
    /// Enqueued; its job will run it.
    pub const QUEUED: &str = "queued";
    /// Created while the run was paused; resume enqueues it.
    pub const PENDING: &str = "pending";
    /// Waits for approve/reject.
    pub const AWAITING_APPROVAL: &str = "awaiting_approval";
    pub const RUNNING: &str = "running";
    pub const REJECTED: &str = "rejected";
    pub const CANCELLED: &str = "cancelled";
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRun {
    pub id: String,
    pub project_id: i64,
    pub status: String,
    pub current_agent: Option<String>,
    pub iteration: i64,
    pub cost_usd: f64,
    /// Context and outputs: a JSON object of strings.
    pub context: String,
    pub source: String,
    pub error: Option<String>,
    pub definition: String,
    pub consecutive_failures: i64,
    pub steps_run: i64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl WorkflowRun {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(Self {
            id: text(r, "id")?,
            project_id: get(r, "project_id")?,
            status: text(r, "status")?,
            current_agent: opt_text(r, "current_agent")?,
            iteration: get(r, "iteration")?,
            cost_usd: get(r, "cost_usd")?,
            context: text(r, "context")?,
            source: text(r, "source")?,
            error: opt_text(r, "error")?,
            definition: opt_text(r, "definition")?.unwrap_or_default(),
            consecutive_failures: get(r, "consecutive_failures")?,
            steps_run: get(r, "steps_run")?,
            created_at: get(r, "created_at")?,
            started_at: get(r, "started_at")?,
            finished_at: get(r, "finished_at")?,
        })
    }
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRow {
    pub step: i64,
    pub agent: String,
    pub iteration: i64,
    pub attempt: i64,
    pub execution_id: String,
    pub status: String,
    pub cost_usd: f64,
    pub output: Option<String>,
    pub routed: bool,
}

impl StepRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(Self {
            step: get(r, "step")?,
            agent: text(r, "agent")?,
            iteration: get(r, "iteration")?,
            attempt: get(r, "attempt")?,
            execution_id: text(r, "execution_id")?,
            status: text(r, "status")?,
            cost_usd: get(r, "cost_usd")?,
            output: opt_text(r, "output")?,
            routed: get::<i64>(r, "routed")? != 0,
        })
    }
}

/// A step to create: its row, its execution and (unless it waits) its job.
#[derive(Debug, Clone)]
pub struct NewStep {
    pub agent: String,
    pub iteration: i64,
    pub attempt: i64,
    /// The agent's prompt with `${…}` already filled in.
    pub prompt: String,
    /// Its execution's wall-clock limit (what `maxRuntime` leaves).
    pub timeout_ms: Option<i64>,
    /// Wait before the job may start (retry backoff).
    pub delay_secs: i64,
    pub needs_approval: bool,
    /// The execution whose packed workspace changes this step starts from
    /// (see [`crate::runner::changes`]); `None`: the project as it is.
    pub base_execution_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewWorkflowRun {
    pub project_id: i64,
    pub definition: String,
    /// JSON object of strings.
    pub context: String,
    pub source: String,
    pub first: NewStep,
}

/// What finishing a step writes.
#[derive(Debug, Clone)]
pub struct StepEnd {
    /// The step's final status (its execution's).
    pub status: String,
    pub cost_usd: f64,
    pub output: Option<String>,
    /// Variables after the step (JSON object).
    pub context: String,
    pub consecutive_failures: i64,
    pub then: StepThen,
    /// A notification to record (onError: notify).
    pub notify: Option<String>,
}

#[derive(Debug, Clone)]
pub enum StepThen {
    Next(NewStep),
    /// The run pauses as `budget_exceeded`; this step waits for resume.
    PauseForBudget(NewStep),
    Finish {
        status: String,
        error: Option<String>,
    },
}

/// One entry of a run's event stream.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkflowEvent {
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    pub data: serde_json::Value,
}

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

impl Store {
    /// Creates a run with its first step, execution and job, atomically.
    pub async fn create_workflow_run(&self, new: &NewWorkflowRun) -> Result<WorkflowRun> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        let status = if new.first.needs_approval {
            run_status::AWAITING_APPROVAL
        } else {
            run_status::QUEUED
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(self.q("workflow_insert"))
            .bind(&id)
            .bind(new.project_id)
            .bind(status)
            .bind(&new.first.agent)
            .bind(&new.context)
            .bind(&new.source)
            .bind(&new.definition)
            .bind(now)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        self.insert_step(&mut tx, &id, new.project_id, 1, &new.first, false)
            .await?;
        self.add_event(
            &mut tx,
            &id,
            "run_created",
            serde_json::json!({ "status": status }),
        )
        .await?;
        tx.commit().await?;
        self.workflow(&id)
            .await?
            .ok_or(StoreError::NotFound("workflow"))
    }

    /// Inserts step `step` of a run: execution, step row and (unless it waits)
    /// its job, inside the caller's transaction.
    async fn insert_step(
        &self,
        tx: &mut Tx<'_>,
        workflow_id: &str,
        project_id: i64,
        step: i64,
        new: &NewStep,
        paused: bool,
    ) -> Result<()> {
        let execution_id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        sqlx::query(self.q("workflow_execution_insert"))
            .bind(&execution_id)
            .bind(project_id)
            .bind(workflow_id)
            .bind(ExecutionStatus::Queued.as_str())
            .bind(&new.prompt)
            .bind("workflow")
            .bind(new.timeout_ms)
            .bind(now)
            .bind(&new.base_execution_id)
            .execute(&mut **tx)
            .await?;
        let status = if new.needs_approval {
            step_status::AWAITING_APPROVAL
        } else if paused {
            step_status::PENDING
        } else {
            step_status::QUEUED
        };
        sqlx::query(self.q("workflow_step_insert"))
            .bind(workflow_id)
            .bind(&new.agent)
            .bind(new.iteration)
            .bind(new.attempt)
            .bind(&execution_id)
            .bind(status)
            .bind(step)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        if status == step_status::QUEUED {
            self.insert_step_job(tx, workflow_id, step, new.delay_secs)
                .await?;
        }
        self.add_event(
            tx,
            workflow_id,
            "step_queued",
            serde_json::json!({
                "step": step, "agent": new.agent, "attempt": new.attempt,
                "iteration": new.iteration, "status": status, "executionId": execution_id,
            }),
        )
        .await?;
        Ok(())
    }

    async fn insert_step_job(
        &self,
        tx: &mut Tx<'_>,
        workflow_id: &str,
        step: i64,
        delay_secs: i64,
    ) -> Result<()> {
        let job = WorkflowStepJob {
            workflow_id: workflow_id.to_owned(),
            step,
        };
        sqlx::query(self.q("job_insert_at"))
            .bind(job.encode())
            .bind(ulid::Ulid::new().to_string())
            .bind(WorkflowStepJob::QUEUE)
            .bind(WorkflowStepJob::MAX_ATTEMPTS)
            .bind(delay_secs)
            .execute(&mut **tx)
            .await?;
        metrics::counter!("ccs_jobs_enqueued_total", "queue" => WorkflowStepJob::QUEUE)
            .increment(1);
        Ok(())
    }

    /// Appends an event with the run's next sequence number.
    async fn add_event(
        &self,
        tx: &mut Tx<'_>,
        workflow_id: &str,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<()> {
        let row = sqlx::query(self.q("workflow_event_max_seq"))
            .bind(workflow_id)
            .fetch_one(&mut **tx)
            .await?;
        let seq = row.try_get::<Option<i64>, _>(0)?.unwrap_or(0) + 1;
        sqlx::query(self.q("workflow_event_insert"))
            .bind(workflow_id)
            .bind(seq)
            .bind(now_ms())
            .bind(kind)
            .bind(data.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn workflow(&self, id: &str) -> Result<Option<WorkflowRun>> {
        let row = sqlx::query(self.q("workflow_by_id"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| WorkflowRun::from_row(&r)).transpose()
    }

    pub async fn workflow_steps(&self, id: &str) -> Result<Vec<StepRow>> {
        let rows = sqlx::query(self.q("workflow_steps"))
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(StepRow::from_row).collect()
    }

    pub async fn workflow_step(&self, id: &str, step: i64) -> Result<Option<StepRow>> {
        let row = sqlx::query(self.q("workflow_step"))
            .bind(id)
            .bind(step)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| StepRow::from_row(&r)).transpose()
    }

    /// Marks a queued step as running (and the run with it); false when the
    /// run is paused or over, in which case the step is parked or dropped.
    pub async fn start_step(&self, id: &str, step: &StepRow) -> Result<StartStep> {
        let mut tx = self.pool.begin().await?;
        let run = self.lock_run(&mut tx, id).await?;
        let outcome = match run.status.as_str() {
            s if run_status::is_terminal(s) => {
                self.set_step_status(&mut tx, id, step.step, step_status::CANCELLED)
                    .await?;
                StartStep::RunOver
            }
            run_status::PAUSED => {
                self.set_step_status(&mut tx, id, step.step, step_status::PENDING)
                    .await?;
                self.add_event(
                    &mut tx,
                    id,
                    "step_parked",
                    serde_json::json!({ "step": step.step }),
                )
                .await?;
                StartStep::Parked
            }
            _ => {
                if step.status == step_status::QUEUED {
                    self.set_step_status(&mut tx, id, step.step, step_status::RUNNING)
                        .await?;
                    sqlx::query(self.q("workflow_mark_running"))
                        .bind(&step.agent)
                        .bind(step.iteration)
                        .bind(now_ms())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    self.add_event(
                        &mut tx,
                        id,
                        "step_started",
                        serde_json::json!({
                            "step": step.step, "agent": step.agent, "attempt": step.attempt,
                            "executionId": step.execution_id,
                        }),
                    )
                    .await?;
                }
                StartStep::Go
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn set_step_status(
        &self,
        tx: &mut Tx<'_>,
        id: &str,
        step: i64,
        status: &str,
    ) -> Result<()> {
        sqlx::query(self.q("workflow_step_set_status"))
            .bind(status)
            .bind(id)
            .bind(step)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Takes the run's row lock (a no-op write), then reads it: decisions
    /// made in this transaction see every committed pause or cancel.
    async fn lock_run(&self, tx: &mut Tx<'_>, id: &str) -> Result<WorkflowRun> {
        sqlx::query(self.q("workflow_touch"))
            .bind(now_ms())
            .bind(id)
            .execute(&mut **tx)
            .await?;
        let row = sqlx::query(self.q("workflow_by_id"))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(StoreError::NotFound("workflow"))?;
        WorkflowRun::from_row(&row)
    }

    /// Records a finished step and enqueues what follows, in one
    /// transaction. Returns false when the step was already routed (the
    /// job ran twice): then nothing is written.
    pub async fn route_step(&self, id: &str, step: &StepRow, end: &StepEnd) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let run = self.lock_run(&mut tx, id).await?;
        let changed = sqlx::query(self.q("workflow_step_finish"))
            .bind(&end.status)
            .bind(end.cost_usd)
            .bind(&end.output)
            .bind(now_ms())
            .bind(id)
            .bind(step.step)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        self.add_event(
            &mut tx,
            id,
            "step_finished",
            serde_json::json!({
                "step": step.step, "agent": step.agent, "status": end.status,
                "costUsd": end.cost_usd, "executionId": step.execution_id,
            }),
        )
        .await?;
        if let Some(message) = &end.notify {
            sqlx::query(self.q("workflow_notification_insert"))
                .bind(run.project_id)
                .bind("workflow")
                .bind(format!(
                    "workflow {id}: step {} needs attention",
                    step.agent
                ))
                .bind(message)
                .bind(format!("workflow:{id}:step:{}", step.step))
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        let (status, error, current) = match &end.then {
            _ if run_status::is_terminal(&run.status) => {
                (run.status.clone(), run.error.clone(), None)
            }
            StepThen::Finish { status, error } => (status.clone(), error.clone(), None),
            StepThen::PauseForBudget(next) => {
                self.insert_step(&mut tx, id, run.project_id, step.step + 1, next, true)
                    .await?;
                let error = format!(
                    "step {} exceeded its budget; resume to retry it",
                    step.agent
                );
                (
                    run_status::BUDGET_EXCEEDED.to_owned(),
                    Some(error),
                    Some(next.agent.clone()),
                )
            }
            StepThen::Next(next) => {
                let paused = run.status == run_status::PAUSED;
                self.insert_step(&mut tx, id, run.project_id, step.step + 1, next, paused)
                    .await?;
                let status = if next.needs_approval && !paused {
                    run_status::AWAITING_APPROVAL
                } else if paused {
                    run_status::PAUSED
                } else {
                    run_status::RUNNING
                };
                (status.to_owned(), None, Some(next.agent.clone()))
            }
        };
        let finished_at = run_status::is_terminal(&status).then(now_ms);
        sqlx::query(self.q("workflow_after_step"))
            .bind(&status)
            .bind(&error)
            .bind(&current)
            .bind(&end.context)
            .bind(end.cost_usd)
            .bind(end.consecutive_failures)
            .bind(finished_at)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if status != run.status {
            self.add_event(
                &mut tx,
                id,
                &format!("run_{status}"),
                serde_json::json!({ "status": status, "error": error }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Pause: no new step starts; a running one finishes.
    pub async fn pause_workflow(&self, id: &str) -> Result<Control> {
        self.control(
            id,
            &[run_status::QUEUED, run_status::RUNNING],
            run_status::PAUSED,
            "run_paused",
        )
        .await
    }

    /// Resume a paused run: its parked step is enqueued (or waits for
    /// approval again).
    pub async fn resume_workflow(&self, id: &str) -> Result<Control> {
        let mut tx = self.pool.begin().await?;
        let run = self.lock_run(&mut tx, id).await?;
        if run.status != run_status::PAUSED && run.status != run_status::BUDGET_EXCEEDED {
            tx.rollback().await?;
            return Ok(Control::NotAllowed(run.status));
        }
        let steps = self.steps_in(&mut tx, id).await?;
        let mut status = run_status::RUNNING;
        for s in steps.iter().filter(|s| !s.routed) {
            if s.status == step_status::AWAITING_APPROVAL {
                status = run_status::AWAITING_APPROVAL;
            } else if s.status == step_status::PENDING {
                self.set_step_status(&mut tx, id, s.step, step_status::QUEUED)
                    .await?;
                self.insert_step_job(&mut tx, id, s.step, 0).await?;
            }
        }
        self.set_run_status(&mut tx, id, status, None).await?;
        self.add_event(
            &mut tx,
            id,
            "run_resumed",
            serde_json::json!({ "status": status }),
        )
        .await?;
        tx.commit().await?;
        Ok(Control::Done)
    }

    /// Approve the step that waits: it is enqueued.
    pub async fn approve_workflow(&self, id: &str) -> Result<Control> {
        let mut tx = self.pool.begin().await?;
        let run = self.lock_run(&mut tx, id).await?;
        if run.status != run_status::AWAITING_APPROVAL {
            tx.rollback().await?;
            return Ok(Control::NotAllowed(run.status));
        }
        for s in self
            .steps_in(&mut tx, id)
            .await?
            .iter()
            .filter(|s| !s.routed)
        {
            if s.status == step_status::AWAITING_APPROVAL {
                self.set_step_status(&mut tx, id, s.step, step_status::QUEUED)
                    .await?;
                self.insert_step_job(&mut tx, id, s.step, 0).await?;
            }
        }
        self.set_run_status(&mut tx, id, run_status::RUNNING, None)
            .await?;
        self.add_event(&mut tx, id, "run_approved", serde_json::json!({}))
            .await?;
        tx.commit().await?;
        Ok(Control::Done)
    }

    /// Reject the step that waits: the run ends, cancelled.
    pub async fn reject_workflow(&self, id: &str) -> Result<Control> {
        let mut tx = self.pool.begin().await?;
        let run = self.lock_run(&mut tx, id).await?;
        if run.status != run_status::AWAITING_APPROVAL {
            tx.rollback().await?;
            return Ok(Control::NotAllowed(run.status));
        }
        self.end_open_steps(&mut tx, id, step_status::REJECTED)
            .await?;
        self.set_run_status(
            &mut tx,
            id,
            run_status::CANCELLED,
            Some("rejected by a reviewer"),
        )
        .await?;
        self.add_event(&mut tx, id, "run_rejected", serde_json::json!({}))
            .await?;
        tx.commit().await?;
        Ok(Control::Done)
    }

    /// Cancel: the run ends; a waiting step never runs, a running one is
    /// stopped (its execution is flagged for its worker).
    pub async fn cancel_workflow(&self, id: &str) -> Result<Control> {
        let mut tx = self.pool.begin().await?;
        let run = self.lock_run(&mut tx, id).await?;
        if run_status::is_terminal(&run.status) {
            tx.rollback().await?;
            return Ok(Control::NotAllowed(run.status));
        }
        self.end_open_steps(&mut tx, id, step_status::CANCELLED)
            .await?;
        self.set_run_status(&mut tx, id, run_status::CANCELLED, Some("cancelled"))
            .await?;
        self.add_event(&mut tx, id, "run_cancelled", serde_json::json!({}))
            .await?;
        tx.commit().await?;
        Ok(Control::Done)
    }

    /// Steps not yet routed: waiting ones end with `status`; their
    /// executions are cancelled (queued) or flagged (running).
    async fn end_open_steps(&self, tx: &mut Tx<'_>, id: &str, status: &str) -> Result<()> {
        for s in self.steps_in(tx, id).await?.iter().filter(|s| !s.routed) {
            if s.status != step_status::RUNNING {
                self.set_step_status(tx, id, s.step, status).await?;
            }
            sqlx::query(self.q("execution_cancel_queued"))
                .bind(now_ms())
                .bind(&s.execution_id)
                .execute(&mut **tx)
                .await?;
            sqlx::query(self.q("execution_request_cancel"))
                .bind(&s.execution_id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn steps_in(&self, tx: &mut Tx<'_>, id: &str) -> Result<Vec<StepRow>> {
        let rows = sqlx::query(self.q("workflow_steps"))
            .bind(id)
            .fetch_all(&mut **tx)
            .await?;
        rows.iter().map(StepRow::from_row).collect()
    }

    async fn set_run_status(
        &self,
        tx: &mut Tx<'_>,
        id: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<()> {
        let finished_at = run_status::is_terminal(status).then(now_ms);
        sqlx::query(self.q("workflow_set_status"))
            .bind(status)
            .bind(error)
            .bind(finished_at)
            .bind(now_ms())
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn control(&self, id: &str, from: &[&str], to: &str, event: &str) -> Result<Control> {
        let mut tx = self.pool.begin().await?;
        let run = self.lock_run(&mut tx, id).await?;
        if !from.contains(&run.status.as_str()) {
            tx.rollback().await?;
            return Ok(Control::NotAllowed(run.status));
        }
        self.set_run_status(&mut tx, id, to, None).await?;
        self.add_event(&mut tx, id, event, serde_json::json!({ "status": to }))
            .await?;
        tx.commit().await?;
        Ok(Control::Done)
    }

    /// The run's events after `after_seq`, in order.
    pub async fn workflow_events(&self, id: &str, after_seq: i64) -> Result<Vec<WorkflowEvent>> {
        let rows = sqlx::query(self.q("workflow_events"))
            .bind(id)
            .bind(after_seq)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let data = text(r, "data")?;
                Ok(WorkflowEvent {
                    seq: get(r, "seq")?,
                    at: get(r, "at")?,
                    kind: text(r, "kind")?,
                    data: serde_json::from_str(&data)
                        .map_err(|e| StoreError::Corrupt(format!("event data: {e}")))?,
                })
            })
            .collect()
    }
}

/// What starting a step found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartStep {
    Go,
    /// The run is paused: the step waits for resume.
    Parked,
    /// The run ended: the step is dropped.
    RunOver,
}

/// The answer to a control request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Done,
    /// Not possible in the run's current status (given).
    NotAllowed(String),
}
