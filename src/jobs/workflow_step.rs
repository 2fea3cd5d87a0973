//! Job `ccs::workflow-steps`: run one step of a workflow run, then route.
//!
//! Produced in the transaction that creates the step (the run's start, or
//! the previous step's routing); consumed by worker processes. Steps:
//!
//! 1. Load the step; a step already `routed` is done (the job ran twice).
//! 2. Start it: if the run was paused the step is parked (resume enqueues
//!    it again); if the run is over, it is dropped.
//! 3. Run its execution with [`super::execute::handle`] — idempotent: an
//!    execution that already finished is not run again, so a job repeated
//!    after a crash never runs the agent twice. The run's
//!    `safety.validation` gate goes with it: the project's tests run in the
//!    step's workspace after an agent that changed files, and a failed gate
//!    fails the execution ([`crate::workflows::validation`]).
//! 4. Route ([`crate::workflows::routing::decide`]) and record the step's
//!    end, the run's state and the next step with its job in one
//!    transaction ([`crate::store::Store::route_step`]).
//!
//! Each step starts from the workspace the previous one left: the runner
//! applies the predecessor's packed changes to its copy of the project and
//! packs its own ([`crate::runner::changes`]); the next step's row names
//! whose it starts from ([`next_base`]).
//!
//! Crash: before step 4 commits, nothing of the routing exists and the
//! handed-back job does it again; after, the step is `routed` and a repeat
//! stops at step 1.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::execute::JobError;
use crate::store::{ExecutionStatus, StartStep, StepEnd, StepThen, now_ms, run_status};
use crate::worker::WorkerEnv;
use crate::workflows::routing::{self, RunState, StepOutcome, Then};

/// Run step `step` of workflow run `workflow_id`: the payload of queue
/// `ccs::workflow-steps`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStepJob {
    pub workflow_id: String,
    pub step: i64,
}

impl super::Job for WorkflowStepJob {
    const QUEUE: &'static str = "ccs::workflow-steps";

    async fn run(self, job: crate::queue::JobRef, env: Arc<WorkerEnv>) -> anyhow::Result<()> {
        handle(&self.workflow_id, self.step, &job, env).await?;
        Ok(())
    }
}

/// `job`: this step's apalis job, which admission hands back to the queue
/// when the project is at a limit (see [`crate::limits::admission`]).
pub async fn handle(
    workflow_id: &str,
    step_no: i64,
    job: &crate::queue::JobRef,
    env: Arc<WorkerEnv>,
) -> Result<(), JobError> {
    let store = &env.store;
    let Some(step) = store.workflow_step(workflow_id, step_no).await? else {
        tracing::warn!(workflow.id = %workflow_id, step = step_no, "no such step; dropping job");
        return Ok(());
    };
    if step.routed {
        return Ok(());
    }
    match store.start_step(workflow_id, &step).await? {
        StartStep::Go => {}
        StartStep::Parked | StartStep::RunOver => return Ok(()),
    }
    // The run's definition (fixed when it started) is read once: its
    // validation gate checks this step's work, its rules route it.
    let definition = store
        .workflow(workflow_id)
        .await?
        .map(|run| crate::workflows::definition(&run));
    let gate = definition
        .as_ref()
        .and_then(|def| def.as_ref().ok())
        .and_then(|def| def.workflow.safety.validation);
    super::execute::handle(&step.execution_id, job, env.clone(), gate).await?;
    let execution = store
        .execution(&step.execution_id)
        .await?
        .ok_or(crate::store::StoreError::NotFound("execution"))?;
    if !execution.status.is_terminal() {
        // Another worker holds it (a duplicate delivery): let it finish.
        return Err(JobError::ShuttingDown);
    }
    let Some(run) = store.workflow(workflow_id).await? else {
        return Ok(());
    };
    // The workspace the next step starts from: this step's, if it kept one.
    let kept = store.has_execution_changes(&execution.id).await?;
    let end = match definition.unwrap_or_else(|| crate::workflows::definition(&run)) {
        Ok(def) => route(&def, &run, &step, &execution, kept),
        Err(e) => finish_with(&run, &execution, run_status::FAILED, Some(e)),
    };
    if store.route_step(workflow_id, &step, &end).await? {
        tracing::info!(
            workflow.id = %workflow_id,
            step = step.step,
            agent = %step.agent,
            status = %execution.status.as_str(),
            "workflow step finished"
        );
    }
    Ok(())
}

/// The step's end and what follows it.
fn route(
    def: &crate::project_config::WorkflowConfig,
    run: &crate::store::WorkflowRun,
    step: &crate::store::StepRow,
    execution: &crate::store::Execution,
    kept_changes: bool,
) -> StepEnd {
    let variables: BTreeMap<String, String> =
        serde_json::from_str(&run.context).unwrap_or_default();
    let started = run.started_at.unwrap_or(run.created_at);
    let elapsed = Duration::from_millis((now_ms() - started).max(0) as u64);
    let succeeded = execution.status == ExecutionStatus::Succeeded;
    if execution.status == ExecutionStatus::Cancelled && run_status::is_terminal(&run.status) {
        return finish_with(run, execution, &run.status, run.error.clone());
    }
    let state = RunState {
        variables,
        iteration: step.iteration as u32,
        consecutive_failures: run.consecutive_failures as u32,
        elapsed,
    };
    let outcome = StepOutcome {
        agent: step.agent.clone(),
        attempt: step.attempt as u32,
        succeeded,
        budget_exceeded: execution.status == ExecutionStatus::BudgetExceeded,
        text: if succeeded {
            execution.result.clone().unwrap_or_default()
        } else {
            execution
                .error
                .clone()
                .unwrap_or_else(|| execution.status.as_str().to_owned())
        },
    };
    let decision = routing::decide(def, &state, &outcome);
    let pause = matches!(decision.then, Then::PauseForBudget(_));
    let then = match decision.then {
        Then::Succeed => StepThen::Finish {
            status: run_status::SUCCEEDED.into(),
            error: None,
        },
        Then::Fail(error) => StepThen::Finish {
            status: run_status::FAILED.into(),
            error: Some(error),
        },
        Then::Run(next) | Then::PauseForBudget(next) => {
            match crate::workflows::step_for(
                def,
                &next.agent,
                next.attempt,
                next.iteration,
                &decision.variables,
                elapsed,
                next.delay,
            ) {
                Ok(mut new) => {
                    new.base_execution_id = next_base(
                        &execution.id,
                        execution.base_execution_id.as_deref(),
                        next.attempt,
                        kept_changes,
                    );
                    if pause {
                        StepThen::PauseForBudget(new)
                    } else {
                        StepThen::Next(new)
                    }
                }
                Err(error) => StepThen::Finish {
                    status: run_status::FAILED.into(),
                    error: Some(error),
                },
            }
        }
    };
    StepEnd {
        status: execution.status.as_str().to_owned(),
        cost_usd: execution.cost_usd.unwrap_or_default(),
        output: execution.result.clone(),
        context: serde_json::to_string(&decision.variables).unwrap_or_default(),
        consecutive_failures: i64::from(decision.consecutive_failures),
        then,
        notify: decision.notify,
    }
}

/// The execution whose workspace the next step starts from: a retry (an
/// attempt after the first) starts where the failed attempt started; any
/// other step from this one's workspace when it kept it (its agent exited
/// cleanly), else from where this one started.
fn next_base(
    execution_id: &str,
    its_base: Option<&str>,
    next_attempt: u32,
    kept_changes: bool,
) -> Option<String> {
    if next_attempt <= 1 && kept_changes {
        Some(execution_id.to_owned())
    } else {
        its_base.map(str::to_owned)
    }
}

fn finish_with(
    run: &crate::store::WorkflowRun,
    execution: &crate::store::Execution,
    status: &str,
    error: Option<String>,
) -> StepEnd {
    StepEnd {
        status: execution.status.as_str().to_owned(),
        cost_usd: execution.cost_usd.unwrap_or_default(),
        output: execution.result.clone(),
        context: run.context.clone(),
        consecutive_failures: run.consecutive_failures,
        then: StepThen::Finish {
            status: status.to_owned(),
            error,
        },
        notify: None,
    }
}

#[cfg(test)]
mod tests {
    use super::next_base;

    #[test]
    fn the_next_step_starts_from_the_last_kept_workspace() {
        // A clean step hands on its own workspace.
        assert_eq!(next_base("e2", Some("e1"), 1, true).as_deref(), Some("e2"));
        assert_eq!(next_base("e1", None, 1, true).as_deref(), Some("e1"));
        // One that kept none (its agent failed) hands on what it started from.
        assert_eq!(next_base("e2", Some("e1"), 1, false).as_deref(), Some("e1"));
        assert_eq!(next_base("e1", None, 1, false), None);
        // A retry starts where the failed attempt started, not from its work.
        assert_eq!(next_base("e2", Some("e1"), 2, true).as_deref(), Some("e1"));
        assert_eq!(next_base("e1", None, 3, true), None);
    }
}
