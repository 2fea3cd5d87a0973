//! Job `ccs::inbound-events`: turn one stored GitHub delivery into runs.
//!
//! Produced by `POST /webhook/github` ([`crate::github::ingest`]) in the
//! transaction that records the delivery in `github_deliveries`
//! ([`crate::store::Store::record_github_delivery`]); the payload is the
//! delivery id, the body stays in the table. Consumed by worker processes:
//!
//! 1. The delivery is read; one that is no longer `queued` was handled
//!    before (the job ran twice): nothing happens.
//! 2. The project that answers for its repository (`repository` on the
//!    project) is found; none: the delivery is `processed` ("no project").
//! 3. [`triggers::decide`] says what it asks for. A request by anyone but an
//!    allow-listed login needs write permission on the repository, asked of
//!    GitHub ([`Github::may_trigger`], cached briefly).
//! 4. A run: the execution is created with the idempotency key
//!    `github:<delivery id>`; then, in one transaction, the `github_runs` row
//!    (where it answers) and a [`GithubAnswerJob`] that keeps the thread's
//!    tracking comment up to date; then 👀 on the triggering comment.
//!    `@claude stop`: the thread's running executions are cancelled (their
//!    answer jobs write the outcome). A pull request with a workflow that
//!    listens to `/webhook/github`: a workflow run with the pull request's
//!    context, its diff fetched from GitHub.
//! 5. The delivery is marked `processed` (or `failed`, with why).
//!
//! **Crash.** Every step finds what an earlier attempt did (the execution
//! by its idempotency key, the `github_runs` row by the delivery id, the
//! reaction is idempotent on GitHub), so a second attempt finishes the work
//! without doing any of it twice. One window is left: a worker killed after
//! a workflow run started and before its `github_runs` row was written
//! starts a second workflow run when the job is retried.
//! A GitHub or network error hands the job back to the queue (apalis
//! retries it); a delivery that can never succeed is marked `failed`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::github_answer::GithubAnswerJob;
use crate::executions::{ProjectRef, Submission, SubmitLimits};
use crate::github::triggers::{self, Decision, ProjectTriggers, TriggerConfig};
use crate::github::{Github, answer, client::GithubError};
use crate::queue::JobRef;
use crate::store::{DeliveryStatus, GithubDelivery, GithubRun, Project};
use crate::worker::WorkerEnv;

/// Act on the GitHub delivery `delivery_id`. Payload of `ccs::inbound-events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundEventJob {
    pub delivery_id: String,
}

impl super::Job for InboundEventJob {
    const QUEUE: &'static str = "ccs::inbound-events";

    async fn run(self, _job: JobRef, env: Arc<WorkerEnv>) -> anyhow::Result<()> {
        handle(&self.delivery_id, &env).await
    }
}

/// The most of a pull request's diff put into a workflow's `PR_DIFF`.
pub const MAX_DIFF_BYTES: usize = 128 * 1024;

/// How a delivery ended, or why it must be tried again.
enum Acted {
    Done(String),
    Failed(String),
}

/// Handles one delivery (see the module docs).
pub async fn handle(delivery_id: &str, env: &WorkerEnv) -> anyhow::Result<()> {
    let Some(delivery) = env.store.github_delivery(delivery_id).await? else {
        return Ok(());
    };
    if delivery.status != DeliveryStatus::Queued {
        return Ok(());
    }
    let (status, outcome) = match act(&delivery, env).await? {
        Acted::Done(what) => (DeliveryStatus::Processed, what),
        Acted::Failed(why) => (DeliveryStatus::Failed, why),
    };
    tracing::info!(
        github.delivery = %delivery.delivery_id,
        github.event = %delivery.event,
        status = status.as_str(),
        outcome = %outcome,
        "GitHub delivery handled"
    );
    env.store
        .finish_github_delivery(delivery_id, status, &outcome)
        .await?;
    Ok(())
}

async fn act(d: &GithubDelivery, env: &WorkerEnv) -> anyhow::Result<Acted> {
    let Some(repo) = d.repository.as_deref() else {
        return Ok(Acted::Done("the delivery names no repository".into()));
    };
    let Some(project) = env.store.project_by_repository(repo).await? else {
        return Ok(Acted::Done(format!("no project answers for {repo}")));
    };
    let Some(github) = env.github.as_deref() else {
        return Ok(Acted::Failed(
            "no GitHub credentials on the worker (CCS_GITHUB_TOKEN, or CCS_GITHUB_APP_ID and \
             CCS_GITHUB_APP_PRIVATE_KEY_FILE)"
                .into(),
        ));
    };
    let payload: serde_json::Value =
        match serde_json::from_str(d.payload.as_deref().unwrap_or_default()) {
            Ok(v) => v,
            Err(e) => return Ok(Acted::Failed(format!("the stored body is not JSON: {e}"))),
        };
    let config = TriggerConfig::of_project(&project);
    let decision = triggers::decide(
        &d.event,
        &payload,
        ProjectTriggers {
            config: Some(&config),
            workflow_on_pull_requests: workflow_listens_to_github(&project),
            app_login: github.app_login().await,
        },
    );
    if let Some(actor) = decision.actor()
        && !config.allows_without_check(actor)
    {
        match github.may_trigger(d.installation_id, repo, actor).await {
            Ok(true) => {}
            Ok(false) | Err(GithubError::Status { status: 404, .. }) => {
                return Ok(Acted::Done(format!(
                    "@{actor} has no write permission on {repo}: not triggered"
                )));
            }
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                return Ok(Acted::Failed(format!(
                    "cannot check @{actor}'s permission: {e}"
                )));
            }
        }
    }
    match decision {
        Decision::Ignore(why) => Ok(Acted::Done(why)),
        Decision::Run(request) => {
            let submitted = crate::executions::submit(
                &env.store,
                Submission {
                    project: ProjectRef::Id(project.id),
                    prompt: answer::prompt(repo, &request),
                    source: "github".into(),
                    idempotency_key: Some(format!("github:{}", d.delivery_id)),
                    api_key_id: None,
                    queue_if_over_budget: true,
                    resume_from: None,
                },
                SubmitLimits {
                    max_prompt_bytes: 256 * 1024,
                },
            )
            .await;
            let execution = match submitted {
                Ok(created) => created.value,
                Err(crate::executions::SubmitError::Store(e)) => return Err(e.into()),
                Err(e) => return Ok(Acted::Failed(format!("cannot start the run: {e}"))),
            };
            record_run(env, d, &project, request.thread, Some(&execution.id), None).await?;
            if let Some(comment) = request.comment {
                react(github, d, repo, comment).await?;
            }
            Ok(Acted::Done(format!(
                "{} by @{}: execution {}",
                request.reason.as_str(),
                request.actor,
                execution.id
            )))
        }
        Decision::Stop { thread, actor } => {
            let active = env
                .store
                .active_github_executions(repo, thread.number)
                .await?;
            for id in &active {
                env.store.cancel_execution(id).await?;
            }
            if let Some(comment) = triggers_comment(&payload) {
                react(github, d, repo, comment).await?;
            }
            Ok(Acted::Done(format!(
                "@{actor} asked to stop: {} run(s) cancelled",
                active.len()
            )))
        }
        Decision::Workflow {
            thread,
            actor,
            mut context,
        } => {
            if let Some(run) = env.store.github_run(&d.delivery_id).await? {
                return Ok(Acted::Done(format!(
                    "workflow run {} (started before)",
                    run.workflow_id.unwrap_or_default()
                )));
            }
            let diff = match github
                .client
                .pull_diff(d.installation_id, repo, thread.number, MAX_DIFF_BYTES)
                .await
            {
                Ok(diff) => diff,
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => return Ok(Acted::Failed(format!("cannot read the diff: {e}"))),
            };
            context.insert("PR_DIFF".into(), serde_json::Value::String(diff));
            let run = match crate::workflows::start(&env.store, &project, &context, "github").await
            {
                Ok(run) => run,
                Err(crate::workflows::WorkflowError::Store(e)) => return Err(e.into()),
                Err(e) => return Ok(Acted::Failed(format!("cannot start the workflow: {e}"))),
            };
            record_run(env, d, &project, thread, None, Some(&run.id)).await?;
            Ok(Acted::Done(format!(
                "pull request #{} by @{actor}: workflow run {}",
                thread.number, run.id
            )))
        }
    }
}

/// Writes where a run answers and enqueues the job that answers there,
/// once per delivery.
async fn record_run(
    env: &WorkerEnv,
    d: &GithubDelivery,
    project: &Project,
    thread: triggers::Thread,
    execution_id: Option<&str>,
    workflow_id: Option<&str>,
) -> anyhow::Result<()> {
    let run = GithubRun {
        delivery_id: d.delivery_id.clone(),
        project_id: project.id,
        repository: d.repository.clone().unwrap_or_default(),
        number: thread.number,
        is_pull_request: thread.is_pull_request,
        installation_id: d.installation_id,
        execution_id: execution_id.map(str::to_owned),
        workflow_id: workflow_id.map(str::to_owned),
        tracking_comment_id: None,
        answered: None,
    };
    let answer = GithubAnswerJob {
        delivery_id: d.delivery_id.clone(),
    };
    env.store.insert_github_run(&run, &answer).await?;
    Ok(())
}

/// 👀 on the comment that asked. GitHub answers 200 for a reaction that
/// exists already, so this is safe to repeat.
async fn react(
    github: &Github,
    d: &GithubDelivery,
    repo: &str,
    comment: triggers::TriggerComment,
) -> anyhow::Result<()> {
    match github
        .client
        .react(d.installation_id, repo, comment, "eyes")
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if e.is_transient() => Err(e.into()),
        Err(e) => {
            tracing::warn!(github.delivery = %d.delivery_id, error = %e, "cannot react to the comment");
            Ok(())
        }
    }
}

/// The comment of a comment event (for the reaction to `@claude stop`).
fn triggers_comment(payload: &serde_json::Value) -> Option<triggers::TriggerComment> {
    let id = payload.get("comment")?.get("id")?.as_i64()?;
    let kind = if payload.get("issue").is_some() {
        triggers::CommentKind::Issue
    } else {
        triggers::CommentKind::ReviewComment
    };
    Some(triggers::TriggerComment { id, kind })
}

/// Whether the project's workflow says `trigger: {type: webhook, endpoint:
/// /webhook/github}`.
fn workflow_listens_to_github(project: &Project) -> bool {
    project
        .workflow_yaml
        .as_deref()
        .and_then(|yaml| crate::project_config::parse_workflow(".claude/workflow.yaml", yaml).ok())
        .and_then(|def| def.workflow.trigger)
        .is_some_and(|t| t.endpoint.as_deref() == Some("/webhook/github"))
}
