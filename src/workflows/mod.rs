//! Multi-agent workflows as chains of jobs.
//!
//! A project's `.claude/workflow.yaml` (the seed's format) is a list of
//! agents; a **run** executes them one **step** at a time. Each step is one
//! execution (an agent run like any other: same runner, limits, logs) and
//! one job of the `ccs::workflow-steps` queue. When a step's execution ends,
//! its job decides what comes next ([`routing::decide`]) and writes the
//! decision — the step's end, the run's new state, and the next step with
//! its execution and job — in **one transaction**
//! ([`crate::store::Store::route_step`]). The run's state lives in the
//! database, so any worker can take the next step, and a worker killed at
//! any point loses nothing: the step's job is handed back and picks up where
//! the database says the step is.
//!
//! * [`start`] — a new run (API, webhook): validates the context against the
//!   definition, then creates the run and its first step.
//! * [`step_for`] — the next step's row: prompt filled from the variables,
//!   time limit from what `maxRuntime` leaves.
//! * [`routing`] — the rules for what comes next; [`conditions`] — CEL.
//!
//! The definition is snapshotted on the run when it starts: editing the
//! project's workflow.yaml does not change runs already going.

pub mod conditions;
pub mod routing;
pub mod validation;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::project_config::{WorkflowConfig, interpolate, parse_workflow};
use crate::store::{NewStep, NewWorkflowRun, Project, Store, StoreError, WorkflowRun};

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The file label used in errors about a stored definition.
const LABEL: &str = ".claude/workflow.yaml";

/// Starts a run of the project's workflow with `context` (string values;
/// numbers and booleans are given as their JSON text).
pub async fn start(
    store: &Store,
    project: &Project,
    context: &serde_json::Map<String, serde_json::Value>,
    source: &str,
) -> Result<WorkflowRun, WorkflowError> {
    let yaml = project.workflow_yaml.as_deref().ok_or_else(|| {
        WorkflowError::Invalid(format!(
            "project {:?} has no .claude/workflow.yaml",
            project.name
        ))
    })?;
    let def = parse_workflow(LABEL, yaml).map_err(|e| WorkflowError::Invalid(e.to_string()))?;
    let variables = context_variables(context)?;
    let keys: Vec<String> = variables.keys().cloned().collect();
    let undefined = def.undefined_variables(&keys);
    if let Some(first) = undefined.first() {
        let names: Vec<&str> = undefined.iter().map(|u| u.name.as_str()).collect();
        return Err(WorkflowError::Invalid(format!(
            "context is missing {}: used by agent {}{}",
            names.join(", "),
            first.agent,
            first
                .line
                .map(|l| format!(" ({LABEL}:{l})"))
                .unwrap_or_default()
        )));
    }
    let first = def
        .first_agent()
        .ok_or_else(|| WorkflowError::Invalid("the workflow has no agents".into()))?;
    let step = step_for(
        &def,
        &first.name,
        1,
        1,
        &variables,
        Duration::ZERO,
        Duration::ZERO,
    )
    .map_err(WorkflowError::Invalid)?;
    let run = store
        .create_workflow_run(&NewWorkflowRun {
            project_id: project.id,
            definition: yaml.to_owned(),
            context: serde_json::to_string(&variables).unwrap_or_default(),
            source: source.to_owned(),
            first: step,
        })
        .await?;
    metrics::counter!("ccs_workflows_started_total").increment(1);
    Ok(run)
}

/// Context values as the string variables prompts and conditions use.
fn context_variables(
    context: &serde_json::Map<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, WorkflowError> {
    context
        .iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => v.to_string(),
                _ => {
                    return Err(WorkflowError::Invalid(format!(
                        "context.{k} must be a string, number or boolean"
                    )));
                }
            };
            Ok((k.clone(), value))
        })
        .collect()
}

/// The row of a step about to be created.
pub fn step_for(
    def: &WorkflowConfig,
    agent: &str,
    attempt: u32,
    iteration: u32,
    variables: &BTreeMap<String, String>,
    elapsed: Duration,
    delay: Duration,
) -> Result<NewStep, String> {
    let spec = def
        .agent(agent)
        .ok_or_else(|| format!("agent {agent:?} is not in the workflow"))?;
    let prompt =
        interpolate(&spec.prompt, |name| variables.get(name).cloned()).map_err(|name| {
            format!("agent {agent}'s prompt uses ${{{name}}}, which this run has not defined")
        })?;
    let timeout_ms = def
        .workflow
        .max_runtime
        .map(|max| max.as_duration().saturating_sub(elapsed).as_millis() as i64);
    Ok(NewStep {
        agent: agent.to_owned(),
        iteration: i64::from(iteration),
        attempt: i64::from(attempt),
        prompt,
        timeout_ms,
        delay_secs: delay.as_secs() as i64,
        needs_approval: routing::needs_approval(def, agent),
        // The first step starts from the project; the router sets the
        // others' (see `crate::jobs::workflow_step`).
        base_execution_id: None,
    })
}

/// The stored definition of a run.
pub fn definition(run: &WorkflowRun) -> Result<WorkflowConfig, String> {
    parse_workflow(LABEL, &run.definition).map_err(|e| e.to_string())
}
