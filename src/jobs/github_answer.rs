//! Job `ccs::github-answers`: keep the tracking comment of a run that a
//! GitHub thread started up to date, until the run ends.
//!
//! Produced by [`super::github_event`] with the `github_runs` row, in one
//! transaction ([`crate::store::Store::insert_github_run`]), so there is one
//! per run. Consumed by worker processes. Each time it runs it:
//!
//! 1. reads the run (an execution, or a workflow run) and renders the
//!    comment for its state ([`crate::github::answer`]);
//! 2. creates the tracking comment if the thread has none yet (its id is
//!    kept on the `github_runs` row), else edits it when the state changed
//!    since the last edit (`github_runs.answered`);
//! 3. while the run has not ended, hands itself back to the queue to run
//!    again in [`POLL_SECS`] — the job *waits for* the run's end, so
//!    nothing on the execution's path has to know about GitHub.
//!
//! **Idempotent.** Editing a comment to the same text twice is harmless; a
//! state already written is not written again. A worker killed after
//! creating the comment and before keeping its id makes a second comment
//! on the retry (the one window). GitHub or network errors hand the job
//! back for a retry; other refusals (the comment was deleted, the App lost
//! access) end the job with a warning.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::github::{Github, answer};
use crate::queue::JobRef;
use crate::store::{GithubRun, run_status};
use crate::worker::WorkerEnv;

/// Seconds between two looks at a run that has not ended.
pub const POLL_SECS: i64 = 2;

/// Answer in the thread of the GitHub delivery `delivery_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GithubAnswerJob {
    pub delivery_id: String,
}

impl super::Job for GithubAnswerJob {
    const QUEUE: &'static str = "ccs::github-answers";

    async fn run(self, job: JobRef, env: Arc<WorkerEnv>) -> anyhow::Result<()> {
        let Some(run) = env.store.github_run(&self.delivery_id).await? else {
            return Ok(());
        };
        let Some(github) = env.github.as_deref() else {
            tracing::warn!(github.delivery = %self.delivery_id, "no GitHub credentials: cannot answer");
            return Ok(());
        };
        let Some((state, text, ended)) = render(&env, github, &run).await? else {
            return Ok(());
        };
        if run.answered.as_deref() != Some(state.as_str()) {
            match write(github, &env, &run, &text).await {
                Ok(()) => {
                    env.store
                        .set_github_answered(&run.delivery_id, &state)
                        .await?
                }
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(github.delivery = %run.delivery_id, error = %e, "cannot answer in the thread");
                    return Ok(());
                }
            }
        }
        if !ended {
            env.store
                .reschedule_job(&job.id, &job.claimed_by, POLL_SECS)
                .await?;
        }
        Ok(())
    }
}

/// The run's state (a key), the comment for it, and whether it has ended.
async fn render(
    env: &WorkerEnv,
    github: &Github,
    run: &GithubRun,
) -> anyhow::Result<Option<(String, String, bool)>> {
    if let Some(id) = &run.execution_id {
        let Some(e) = env.store.execution(id).await? else {
            return Ok(None);
        };
        let link = github.execution_link(id);
        return Ok(Some(if e.status.is_terminal() {
            (
                format!("ended:{}", e.status.as_str()),
                answer::finished(&e, &link),
                true,
            )
        } else {
            (
                e.status.as_str().to_owned(),
                answer::working(&link, e.status),
                false,
            )
        }));
    }
    if let Some(id) = &run.workflow_id {
        let Some(w) = env.store.workflow(id).await? else {
            return Ok(None);
        };
        let ended = run_status::is_terminal(&w.status) || w.status == run_status::BUDGET_EXCEEDED;
        let steps = env.store.workflow_steps(id).await?;
        let text = answer::workflow(&w, &steps);
        let state = format!("{}:{}", w.status, steps.len());
        return Ok(Some((state, text, ended)));
    }
    Ok(None)
}

/// Creates the tracking comment, or edits it.
async fn write(
    github: &Github,
    env: &WorkerEnv,
    run: &GithubRun,
    text: &str,
) -> Result<(), crate::github::client::GithubError> {
    let inst = run.installation_id;
    match run.tracking_comment_id {
        Some(id) => {
            github
                .client
                .update_comment(inst, &run.repository, id, text)
                .await
        }
        None => {
            let id = github
                .client
                .comment(inst, &run.repository, run.number, text)
                .await?;
            // Kept at once: a retry edits this comment instead of adding one.
            if let Err(e) = env
                .store
                .set_github_tracking_comment(&run.delivery_id, id)
                .await
            {
                tracing::warn!(github.delivery = %run.delivery_id, error = %e, "cannot keep the tracking comment's id");
            }
            Ok(())
        }
    }
}
