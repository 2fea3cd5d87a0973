//! The core operations on executions that the API and webhooks call:
//! validate a request, resolve its project, and enqueue it durably.

use crate::jobs::Job;
use crate::jobs::execute::ExecuteJob;
use crate::store::{Created, Execution, NewExecution, Project, Store, StoreError};

/// A project named by id or by name.
#[derive(Debug, Clone)]
pub enum ProjectRef {
    Id(i64),
    Name(String),
}

/// A request to run the agent once.
#[derive(Debug, Clone)]
pub struct Submission {
    pub project: ProjectRef,
    pub prompt: String,
    pub source: String,
    pub idempotency_key: Option<String>,
    pub api_key_id: Option<i64>,
    /// Enqueue it even when a daily budget it counts toward is used up
    /// (it then waits for the next day, or is refused, by the workers'
    /// policy); otherwise such a submission is refused at once.
    pub queue_if_over_budget: bool,
    /// Continue the Claude Code session of this earlier execution (of the
    /// same project, ended with a session kept: [`crate::runner::session`]).
    pub resume_from: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("project {0} not found")]
    ProjectNotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// A daily budget the run counts toward is used up.
    #[error("{0}")]
    BudgetExhausted(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Limits applied to submissions.
#[derive(Debug, Clone, Copy)]
pub struct SubmitLimits {
    pub max_prompt_bytes: usize,
}

pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;
pub const MAX_SOURCE_LEN: usize = 64;

/// Validates and enqueues an execution (idempotent with a key).
pub async fn submit(
    store: &Store,
    sub: Submission,
    limits: SubmitLimits,
) -> Result<Created<Execution>, SubmitError> {
    if sub.prompt.trim().is_empty() {
        return Err(SubmitError::Invalid("prompt must not be empty".into()));
    }
    if sub.prompt.len() > limits.max_prompt_bytes {
        return Err(SubmitError::Invalid(format!(
            "prompt is {} bytes; the limit is {}",
            sub.prompt.len(),
            limits.max_prompt_bytes
        )));
    }
    if sub.source.is_empty() || sub.source.len() > MAX_SOURCE_LEN {
        return Err(SubmitError::Invalid(format!(
            "source must be 1 to {MAX_SOURCE_LEN} characters"
        )));
    }
    if let Some(key) = &sub.idempotency_key
        && (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN)
    {
        return Err(SubmitError::Invalid(format!(
            "idempotencyKey must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"
        )));
    }
    let project = resolve_project(store, &sub.project).await?;
    if let Some(from) = &sub.resume_from {
        check_resumable(store, from, project.id).await?;
    }
    if !sub.queue_if_over_budget
        && let Some(row) =
            crate::limits::budget::budget_exceeded_for_project(store, project.id, sub.api_key_id)
                .await?
    {
        return Err(SubmitError::BudgetExhausted(
            crate::limits::budget::explain_exhausted(&row),
        ));
    }
    let created = store
        .create_execution(&NewExecution {
            project_id: project.id,
            workflow_id: None,
            prompt: sub.prompt,
            source: sub.source,
            idempotency_key: sub.idempotency_key,
            api_key_id: sub.api_key_id,
            resume_from: sub.resume_from,
        })
        .await?;
    if created.created {
        metrics::counter!("ccs_jobs_enqueued_total", "queue" => <ExecuteJob as Job>::QUEUE)
            .increment(1);
    }
    Ok(created)
}

/// That `from` is an execution of `project_id` that left a session to
/// resume; otherwise the reason, for the client.
async fn check_resumable(store: &Store, from: &str, project_id: i64) -> Result<(), SubmitError> {
    let unknown = || SubmitError::Invalid(format!("resumeFrom: execution {from:?} not found"));
    if from.is_empty() || from.len() > 64 {
        return Err(unknown());
    }
    let earlier = store.execution(from).await?.ok_or_else(unknown)?;
    if earlier.project_id != project_id {
        // Another project's session is not this project's to see.
        return Err(unknown());
    }
    if !store.has_execution_session(from).await? {
        return Err(SubmitError::Invalid(format!(
            "resumeFrom: execution {from} left no Claude Code session to resume \
             (it has not ended, was stopped, or ran where sessions are not kept)"
        )));
    }
    Ok(())
}

pub async fn resolve_project(store: &Store, r: &ProjectRef) -> Result<Project, SubmitError> {
    let found = match r {
        ProjectRef::Id(id) => store.project(*id).await?,
        ProjectRef::Name(name) => store.project_by_name(name).await?,
    };
    found.ok_or_else(|| {
        SubmitError::ProjectNotFound(match r {
            ProjectRef::Id(id) => id.to_string(),
            ProjectRef::Name(name) => format!("{name:?}"),
        })
    })
}
