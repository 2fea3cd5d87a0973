//! What comes after a step: a pure function of the workflow definition, the
//! run's state and the step's outcome. No I/O, so every rule is unit-tested
//! here; [`crate::jobs::workflow_step`] applies the decision in one
//! transaction.
//!
//! Rules, in order:
//! 1. `maxRuntime` passed → the run fails.
//! 2. The step succeeded (or failed under `onError: continue`): its result
//!    becomes the agent's `output` variable; `next` is followed — a plain
//!    agent, or the first branch whose CEL condition holds, or `else`; no
//!    `next` (or no branch taken) → the run succeeds.
//! 3. The step failed: `maxConsecutiveFailures` reached → the run fails;
//!    else `onError`: `retry` (same agent, attempt + 1, while attempts last,
//!    then `onError.next` or fail), `notify` (a notification, then
//!    `onError.next` or fail), `fail`, `continue` (rule 2).
//! 4. Going to an agent at or before the current one in the file starts a
//!    new iteration; past `maxIterations` the run fails.
//! 5. An agent whose `action` is in `safety.requireHumanApprovalFor` waits
//!    for approval before it starts.
//! 6. A step stopped by its budget (`budget_exceeded`) under
//!    `workflow.budget.pauseOnExceed` pauses the run (status
//!    `budget_exceeded`) with the same agent parked as the next step:
//!    resume — after raising the limit, or the next day — runs it again.

use std::collections::BTreeMap;
use std::time::Duration;

use super::conditions;
use crate::project_config::{Branch, ErrorAction, Next, WorkflowConfig};

/// Default number of retries for `onError: {action: retry}` without a count.
pub const DEFAULT_RETRIES: u32 = 2;

/// The run as routing sees it.
#[derive(Debug, Clone)]
pub struct RunState {
    /// Context and outputs so far.
    pub variables: BTreeMap<String, String>,
    pub iteration: u32,
    pub consecutive_failures: u32,
    /// Milliseconds since the run started.
    pub elapsed: Duration,
}

/// How the step ended.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    pub agent: String,
    pub attempt: u32,
    pub succeeded: bool,
    /// The step ended `budget_exceeded`.
    pub budget_exceeded: bool,
    /// The result text (success) or the error (failure).
    pub text: String,
}

/// The next agent to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextStep {
    pub agent: String,
    pub attempt: u32,
    pub iteration: u32,
    /// Wait before it starts (retry backoff).
    pub delay: Duration,
    /// It needs a person's approval first.
    pub needs_approval: bool,
}

/// What routing decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Variables after the step (its output added).
    pub variables: BTreeMap<String, String>,
    pub consecutive_failures: u32,
    pub then: Then,
    /// Notifications the step asked for (`onError: notify`).
    pub notify: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Then {
    Run(NextStep),
    /// Pause the run for its budget, with this step parked for resume.
    PauseForBudget(NextStep),
    Succeed,
    Fail(String),
}

pub fn decide(def: &WorkflowConfig, run: &RunState, step: &StepOutcome) -> Decision {
    let mut decision = Decision {
        variables: run.variables.clone(),
        consecutive_failures: run.consecutive_failures,
        then: Then::Succeed,
        notify: None,
    };
    let Some(agent) = def.agent(&step.agent) else {
        decision.then = Then::Fail(format!("agent {:?} is not in the workflow", step.agent));
        return decision;
    };
    if let Some(max) = def.workflow.max_runtime
        && run.elapsed >= max.as_duration()
    {
        decision.then = Then::Fail(format!(
            "the run passed its maxRuntime of {}",
            humantime::format_duration(max.as_duration())
        ));
        return decision;
    }
    let follow_next = |decision: &mut Decision| {
        if let Some(output) = &agent.output {
            decision.variables.insert(output.clone(), step.text.clone());
        }
        decision.then = match &agent.next {
            None => Then::Succeed,
            Some(Next::Agent(target)) => goto(def, run, &step.agent, target, 1, Duration::ZERO),
            Some(Next::Branches(branches)) => match choose(branches, &decision.variables) {
                Ok(Some(target)) => goto(def, run, &step.agent, target, 1, Duration::ZERO),
                Ok(None) => Then::Succeed,
                Err(e) => Then::Fail(e),
            },
        };
    };
    if step.succeeded {
        decision.consecutive_failures = 0;
        follow_next(&mut decision);
        return decision;
    }
    if step.budget_exceeded
        && def
            .workflow
            .budget
            .as_ref()
            .is_some_and(|b| b.pause_on_exceed)
    {
        decision.then = Then::PauseForBudget(NextStep {
            agent: step.agent.clone(),
            attempt: step.attempt + 1,
            iteration: run.iteration,
            delay: Duration::ZERO,
            needs_approval: false,
        });
        return decision;
    }
    decision.consecutive_failures += 1;
    let failed = format!("agent {} failed: {}", step.agent, step.text);
    if let Some(max) = def.workflow.max_consecutive_failures
        && decision.consecutive_failures >= max
    {
        decision.then = Then::Fail(format!(
            "{failed} ({} consecutive failures, maxConsecutiveFailures is {max})",
            decision.consecutive_failures
        ));
        return decision;
    }
    let Some(on_error) = &agent.on_error else {
        decision.then = Then::Fail(failed);
        return decision;
    };
    let route_on = |decision: &mut Decision| {
        decision.then = match &on_error.next {
            Some(target) => goto(def, run, &step.agent, target, 1, Duration::ZERO),
            None => Then::Fail(failed.clone()),
        };
    };
    match on_error.action {
        ErrorAction::Retry => {
            let retries = on_error.max_retries.unwrap_or(DEFAULT_RETRIES);
            if step.attempt <= retries {
                let delay = on_error
                    .backoff
                    .map(|b| b.as_duration())
                    .unwrap_or_default();
                decision.then = Then::Run(NextStep {
                    agent: step.agent.clone(),
                    attempt: step.attempt + 1,
                    iteration: run.iteration,
                    delay,
                    needs_approval: false,
                });
            } else {
                route_on(&mut decision);
            }
        }
        ErrorAction::Notify => {
            decision.notify = Some(failed.clone());
            route_on(&mut decision);
        }
        ErrorAction::Fail => decision.then = Then::Fail(failed),
        ErrorAction::Continue => follow_next(&mut decision),
    }
    decision
}

/// The first branch whose condition holds (or `else`).
fn choose<'a>(
    branches: &'a [Branch],
    variables: &BTreeMap<String, String>,
) -> Result<Option<&'a str>, String> {
    for branch in branches {
        match branch {
            Branch::If { condition, target } => {
                if conditions::evaluate(condition, variables)? {
                    return Ok(Some(target));
                }
            }
            Branch::Else { target } => return Ok(Some(target)),
        }
    }
    Ok(None)
}

/// A step to `target` from `from`, counting iterations and approvals.
fn goto(
    def: &WorkflowConfig,
    run: &RunState,
    from: &str,
    target: &str,
    attempt: u32,
    delay: Duration,
) -> Then {
    let index = |name: &str| def.agents.iter().position(|a| a.name == name);
    let (Some(from_i), Some(to_i)) = (index(from), index(target)) else {
        return Then::Fail(format!("agent {target:?} is not in the workflow"));
    };
    let iteration = if to_i <= from_i {
        run.iteration + 1
    } else {
        run.iteration
    };
    if let Some(max) = def.workflow.max_iterations
        && iteration > max
    {
        return Then::Fail(format!(
            "the run reached maxIterations ({max}) going back to {target}"
        ));
    }
    Then::Run(NextStep {
        agent: target.to_owned(),
        attempt,
        iteration,
        delay,
        needs_approval: needs_approval(def, target),
    })
}

/// Whether `agent` declares an action that needs a person's approval.
pub fn needs_approval(def: &WorkflowConfig, agent: &str) -> bool {
    let Some(action) = def.agent(agent).and_then(|a| a.action.as_deref()) else {
        return false;
    };
    def.workflow
        .safety
        .require_human_approval_for
        .iter()
        .any(|rule| rule.action == action)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project_config::parse_workflow;

    fn def(yaml: &str) -> WorkflowConfig {
        parse_workflow("workflow.yaml", yaml).unwrap()
    }

    fn run() -> RunState {
        RunState {
            variables: BTreeMap::new(),
            iteration: 1,
            consecutive_failures: 0,
            elapsed: Duration::ZERO,
        }
    }

    fn ok(agent: &str, text: &str) -> StepOutcome {
        StepOutcome {
            agent: agent.into(),
            attempt: 1,
            succeeded: true,
            budget_exceeded: false,
            text: text.into(),
        }
    }

    fn failed(agent: &str, attempt: u32) -> StepOutcome {
        StepOutcome {
            agent: agent.into(),
            attempt,
            succeeded: false,
            budget_exceeded: false,
            text: "boom".into(),
        }
    }

    const LOOP: &str = r#"
name: loop
agents:
  - name: a
    prompt: go
    output: a_out
    next:
      - if: "a_out.contains('again')"
        then: a
      - else: b
    onError:
      action: retry
      retries: 1
      next: b
  - name: b
    prompt: "after ${a_out}"
    action: deploy
workflow:
  maxIterations: 2
  maxConsecutiveFailures: 3
  maxRuntime: 60s
  safety:
    requireHumanApprovalFor:
      - action: deploy
"#;

    fn next_agent(d: &Decision) -> (&str, u32, u32, bool) {
        match &d.then {
            Then::Run(n) => (n.agent.as_str(), n.attempt, n.iteration, n.needs_approval),
            other => panic!("expected a next step, got {other:?}"),
        }
    }

    #[test]
    fn branches_follow_the_output() {
        let d = def(LOOP);
        let once = decide(&d, &run(), &ok("a", "all fine"));
        assert_eq!(next_agent(&once), ("b", 1, 1, true));
        assert_eq!(once.variables["a_out"], "all fine");
        let again = decide(&d, &run(), &ok("a", "do it again"));
        assert_eq!(next_agent(&again), ("a", 1, 2, false));
    }

    #[test]
    fn iterations_are_capped() {
        let d = def(LOOP);
        let mut r = run();
        r.iteration = 2;
        let out = decide(&d, &r, &ok("a", "again"));
        assert!(
            matches!(out.then, Then::Fail(ref m) if m.contains("maxIterations")),
            "{out:?}"
        );
    }

    #[test]
    fn retry_then_route_to_on_error_next() {
        let d = def(LOOP);
        let first = decide(&d, &run(), &failed("a", 1));
        assert_eq!(next_agent(&first), ("a", 2, 1, false));
        assert_eq!(first.consecutive_failures, 1);
        let mut r = run();
        r.consecutive_failures = 1;
        let second = decide(&d, &r, &failed("a", 2));
        assert_eq!(next_agent(&second), ("b", 1, 1, true));
    }

    #[test]
    fn consecutive_failures_stop_the_run() {
        let d = def(LOOP);
        let mut r = run();
        r.consecutive_failures = 2;
        let out = decide(&d, &r, &failed("a", 1));
        assert!(matches!(out.then, Then::Fail(ref m) if m.contains("maxConsecutiveFailures")));
    }

    #[test]
    fn runtime_and_plain_failures() {
        let d = def(LOOP);
        let mut r = run();
        r.elapsed = Duration::from_secs(61);
        assert!(
            matches!(decide(&d, &r, &ok("a", "x")).then, Then::Fail(ref m) if m.contains("maxRuntime"))
        );
        // b has no onError: its failure fails the run; its success ends it.
        assert!(matches!(
            decide(&d, &run(), &failed("b", 1)).then,
            Then::Fail(_)
        ));
        assert_eq!(decide(&d, &run(), &ok("b", "x")).then, Then::Succeed);
    }

    #[test]
    fn budget_stop_pauses_only_with_pause_on_exceed() {
        let over = StepOutcome {
            budget_exceeded: true,
            ..failed("a", 1)
        };
        let paused = def(&LOOP.replace(
            "  maxIterations: 2\n",
            "  maxIterations: 2\n  budget:\n    maxCostPerExecution: $1\n    pauseOnExceed: true\n",
        ));
        match decide(&paused, &run(), &over).then {
            Then::PauseForBudget(next) => assert_eq!((next.agent.as_str(), next.attempt), ("a", 2)),
            other => panic!("{other:?}"),
        }
        // Without it, a budget stop is a failure like any other (here: retry).
        assert!(matches!(
            decide(&def(LOOP), &run(), &over).then,
            Then::Run(_)
        ));
    }
}
