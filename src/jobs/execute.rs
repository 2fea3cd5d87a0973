//! Job `ccs::executions`: run one execution's agent and record the outcome.
//!
//! Produced by the API ([`crate::store::Store::create_execution`]), consumed
//! by worker processes. Steps:
//!
//! 1. **Claim** the execution (`queued`/`running` → `running`, attempt + 1).
//!    A terminal execution is left alone: that is what makes the handler
//!    idempotent when apalis delivers the job again.
//! 2. **Prepare** the run from the project's `container.yaml`: the granted
//!    tools (written to the audit log), `${SECRET}` references in `env` and
//!    `mcpServers[].env` resolved from the worker's [`crate::secrets`] (an
//!    undefined one fails the execution here, before anything starts), the
//!    MCP config from [`crate::runner::mcp_catalog`].
//! 3. **Run** the agent through the configured [`Runner`], writing one log
//!    row per output line as it arrives, keeping a running cost estimate.
//!    Every log line, the result and the error are **masked** (secret values
//!    become `***`) before they are stored.
//! 4. **Stop** it early on timeout (`timed_out`), on a cancel request
//!    (`cancelled`, polled every [`CANCEL_POLL`]), or when the worker's
//!    shutdown grace runs out (the job fails and is retried elsewhere).
//! 5. **Record** the outcome: status, result, `total_cost_usd` (or the
//!    estimate, marked as such), turns, session, exit code, duration; the
//!    files the agent changed are logged ("changed files: …").
//!
//! **Workflow steps** also start from their predecessor's workspace changes
//! and keep their own for the next step ([`crate::runner::changes`],
//! stored with the outcome), and face the run's validation gate: the
//! project's checks run after an agent that changed files, and a failed
//! gate fails the execution ([`crate::workflows::validation`]).
//!
//! **Limits** ([`crate::limits`]): claiming is an *admission*
//! ([`admission::admit`]): under the project's lock, the fleet-wide
//! concurrency and start-rate limits are checked and the run's ceiling is
//! reserved against its daily budgets, or the job goes back to the queue
//! (or, over budget with the `refuse` policy, the execution ends
//! `budget_exceeded`). While the agent runs, a running cost estimate past
//! the ceiling stops it (`budget_exceeded`, the estimate recorded as its
//! cost). Recording the outcome settles the reservation to the real cost.
//!
//! Crash: if the worker dies mid-run, the agent dies with it (process group
//! and parent-death signal), the reaper hands the job back, and step 1 of
//! the next attempt takes over the `running` execution.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::limits::admission::{self, Admitted};
use crate::project_config::{self, ContainerConfig, McpServer, ToolGrant, ValidationGate};
use crate::queue::JobRef;
use crate::runner::checks::{CheckRun, Checks};
use crate::runner::session::Session;
use crate::runner::stream_json::{CostEstimator, Event, ResultMsg, parse_line};
use crate::runner::{AgentOptions, OutputLine, RunExit, RunSpec, Stream, mcp_catalog};
use crate::secrets::Masker;
use crate::store::{Execution, ExecutionStatus, LogLine, Outcome, Project, StoreError, now_ms};
use crate::worker::WorkerEnv;
use crate::workflows::validation;

/// Run one execution: the payload of queue `ccs::executions`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteJob {
    pub execution_id: String,
}

impl super::Job for ExecuteJob {
    const QUEUE: &'static str = "ccs::executions";

    async fn run(self, job: JobRef, env: Arc<WorkerEnv>) -> anyhow::Result<()> {
        handle(&self.execution_id, &job, env, None).await?;
        Ok(())
    }
}

/// Output lines waiting between the runner and the log writer (each at
/// most `--max-line-bytes`).
const OUTPUT_QUEUE: usize = 32;

/// How often a running execution checks whether it was cancelled.
pub const CANCEL_POLL: Duration = Duration::from_millis(500);

/// Why a job did not complete; every variant makes apalis retry the job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("worker shutting down; execution handed back")]
    ShuttingDown,
    /// A write of this attempt failed its fence: the execution is no
    /// longer `running` on this attempt (a newer attempt took it over, or
    /// it ended). The attempt's agent is stopped; the job is done here.
    #[error("attempt {0} lost its fence: the execution moved on without it")]
    FenceLost(i64),
}

/// Why the handler stopped the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Timeout,
    Cancelled,
    Shutdown,
    /// The running cost estimate passed the run's ceiling.
    BudgetExceeded,
}

/// Runs execution `execution_id`, delivered by the apalis job `job`.
/// `gate`: a workflow step's `safety.validation` (see
/// [`crate::workflows::validation`]); `None` for a plain execution.
pub async fn handle(
    execution_id: &str,
    job: &JobRef,
    env: Arc<WorkerEnv>,
    gate: Option<ValidationGate>,
) -> Result<(), JobError> {
    let admitted =
        admission::admit(&env.store, &env.limits, execution_id, job, &env.worker_id).await?;
    let Some(Admitted {
        execution,
        ceiling_usd,
    }) = admitted
    else {
        return Ok(());
    };
    let started = std::time::Instant::now();
    let outcome = match run(&execution, ceiling_usd, &env, gate.as_ref()).await {
        Ok(outcome) => outcome,
        Err(JobError::FenceLost(attempt)) => {
            tracing::warn!(execution.id = %execution.id, attempt, "attempt lost its fence; agent stopped");
            return Ok(());
        }
        Err(e) if execution.attempts >= i64::from(super::DEFAULT_MAX_ATTEMPTS) => {
            // No attempt is left to retry with: the execution ends here,
            // releasing its slot and settling its reservation.
            Outcome::ended(
                ExecutionStatus::Failed,
                &format!(
                    "gave up after {} attempts; the last one failed: {e}",
                    execution.attempts
                ),
            )
        }
        Err(e) => return Err(e),
    };
    let status = outcome.status;
    let cost = outcome.cost_usd.unwrap_or_default();
    if env
        .store
        .finish_execution(&execution.id, execution.attempts, &outcome)
        .await?
    {
        metrics::counter!("ccs_executions_finished_total", "status" => status.as_str())
            .increment(1);
        crate::telemetry::record_cost(cost);
        metrics::histogram!("ccs_job_duration_seconds", "queue" => <ExecuteJob as super::Job>::QUEUE)
            .record(started.elapsed().as_secs_f64());
        tracing::info!(
            execution.id = %execution.id,
            status = status.as_str(),
            cost_usd = cost,
            attempt = execution.attempts,
            "execution finished"
        );
    }
    Ok(())
}

/// Runs the agent for a claimed execution and decides its outcome.
async fn run(
    execution: &Execution,
    ceiling_usd: f64,
    env: &WorkerEnv,
    gate: Option<&ValidationGate>,
) -> Result<Outcome, JobError> {
    let mut log = Logger::new(env, execution).await?;
    log.note(&format!(
        "attempt {} started on worker {} ({} runner)",
        execution.attempts,
        env.worker_id,
        env.runner.name()
    ))
    .await?;
    if execution.cancel_requested {
        return Ok(Outcome::ended(ExecutionStatus::Cancelled, "cancelled"));
    }
    let project = match env.store.project(execution.project_id).await? {
        Some(p) => p,
        None => {
            return Ok(Outcome::ended(
                ExecutionStatus::Failed,
                "the execution's project no longer exists",
            ));
        }
    };
    // A workflow step starts from the workspace its predecessor left.
    let base_changes = match &execution.base_execution_id {
        Some(base) => env.store.execution_changes(base).await?.map(Arc::new),
        None => None,
    };
    // A run that continues an earlier one's Claude Code session.
    let resume = match &execution.resume_from {
        Some(from) => match env.store.execution_session(from).await? {
            Some(session) => Some(Arc::new(session)),
            None => {
                return Ok(Outcome::ended(
                    ExecutionStatus::Failed,
                    &format!("execution {from} left no Claude Code session to resume"),
                ));
            }
        },
        None => None,
    };
    let Prepared {
        spec,
        timeout,
        grant,
    } = match prepare(
        execution,
        &project,
        env,
        gate,
        base_changes,
        ceiling_usd,
        resume,
    ) {
        Ok(v) => v,
        Err(message) => {
            log.note(&format!("refused before start: {message}"))
                .await?;
            return Ok(Outcome::ended(ExecutionStatus::Failed, &message));
        }
    };
    log.masker = Masker::new(&spec.mask);
    env.store
        .audit(
            &env.worker_id,
            "tools.granted",
            &execution.id,
            &grant_detail(&grant),
        )
        .await?;

    // Lines are at most `max_line_bytes`: a short queue bounds what waits.
    let (tx, mut rx) = mpsc::channel::<OutputLine>(OUTPUT_QUEUE);
    let stop = CancellationToken::new();
    // However this function is left — an error, a lost fence, a panic, the
    // apalis worker dropping the handler — the agent is stopped.
    let _stop_on_exit = stop.clone().drop_guard();
    // An earlier attempt of this execution still running in this process
    // (its apalis worker was replaced, its job handed back) is stopped, and
    // its runner has ended, before this attempt's agent starts.
    let (_local, alive) = LocalAttempt::take_over(&execution.id, execution.attempts, &stop).await;
    let runner = env.runner.clone();
    let run_stop = stop.clone();
    let mut agent = tokio::spawn(async move {
        let _alive = alive;
        runner.run(spec, tx, run_stop).await
    });

    let mut estimator = CostEstimator::new(env.prices.clone());
    let mut result: Option<ResultMsg> = None;
    let mut reason: Option<StopReason> = None;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut cancel_poll = tokio::time::interval(CANCEL_POLL);
    let mut lines_open = true;
    let exit: Result<RunExit, String> = loop {
        // The estimate moves with each line: check it before the next one.
        if reason.is_none() && over_ceiling(&estimator, ceiling_usd) {
            reason = Some(StopReason::BudgetExceeded);
            stop.cancel();
            log.note(&format!(
                "stopping the agent: its estimated cost ${:.4} passed this run's ceiling of ${ceiling_usd:.2}",
                estimator.running_estimate_usd()
            ))
            .await?;
        }
        tokio::select! {
            line = rx.recv(), if lines_open => match line {
                Some(line) => observe(&line, &mut estimator, &mut result, &mut log).await?,
                None => lines_open = false,
            },
            joined = &mut agent => {
                // Drain what is still buffered before deciding.
                while let Ok(line) = rx.try_recv() {
                    observe(&line, &mut estimator, &mut result, &mut log).await?;
                }
                break match joined {
                    Ok(Ok(exit)) => Ok(exit),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(format!("runner task failed: {e}")),
                };
            },
            _ = &mut deadline, if reason.is_none() => {
                reason = Some(StopReason::Timeout);
                stop.cancel();
            },
            _ = cancel_poll.tick(), if reason.is_none() => {
                if env.store.cancel_requested(&execution.id).await.unwrap_or(false) {
                    reason = Some(StopReason::Cancelled);
                    stop.cancel();
                }
            },
            _ = env.shutdown.cancelled(), if reason.is_none() => {
                reason = Some(StopReason::Shutdown);
                stop.cancel();
            },
        }
    };

    if reason == Some(StopReason::Shutdown) {
        log.note("worker shut down before the run ended; the job will be retried")
            .await?;
        return Err(JobError::ShuttingDown);
    }
    if let Ok(exit) = &exit
        && !exit.changed_files.is_empty()
    {
        log.note(&format!("changed files: {}", exit.changed_files.join(", ")))
            .await?;
    }
    let checked = exit.as_ref().ok().zip(gate).map(|(exit, gate)| {
        (
            validation::evaluate(gate, &exit.changed_files, &exit.checks),
            exit.checks.clone(),
        )
    });
    let mut exit = exit;
    let changes = exit.as_mut().ok().and_then(|e| e.changes.take());
    let session = exit.as_mut().ok().and_then(|e| e.session.take());
    let cost = if reason == Some(StopReason::BudgetExceeded) {
        // Stopped for its estimate, whatever it said before.
        Cost::Estimated(estimator.running_estimate_usd())
    } else {
        trusted_cost(result.as_ref(), &estimator, ceiling_usd)
    };
    if let Cost::Refused { why, .. } = &cost {
        log.note(&format!("not taking the agent's reported cost: {why}"))
            .await?;
    }
    let mut outcome = decide(reason, exit, result, cost, timeout);
    outcome.changes = changes;
    outcome.session = session;
    if let Some((report, checks)) = checked
        && outcome.status == ExecutionStatus::Succeeded
    {
        for check in &checks {
            log.note(&check_summary(check)).await?;
        }
        if report.passed {
            log.note(&match &report.skipped {
                Some(why) => format!("validation gate: nothing to check ({why})"),
                None => "validation gate passed".to_owned(),
            })
            .await?;
        } else {
            log.note(&report.error()).await?;
            outcome.status = ExecutionStatus::Failed;
            outcome.error = Some(report.error());
        }
        outcome.validation = serde_json::to_string(&report).ok();
    }
    // NUL (a JSON `\u0000`) is refused by PostgreSQL's TEXT.
    let no_nul = |s: Option<String>| s.map(|s| s.replace('\0', "\u{FFFD}"));
    outcome.result = no_nul(log.masker.mask_opt(outcome.result));
    outcome.error = no_nul(log.masker.mask_opt(outcome.error));
    log.note(&format!("run ended: {}", outcome.status.as_str()))
        .await?;
    Ok(outcome)
}

/// Records one output line and learns from it (cost, result).
async fn observe(
    line: &OutputLine,
    estimator: &mut CostEstimator,
    result: &mut Option<ResultMsg>,
    log: &mut Logger<'_>,
) -> Result<(), JobError> {
    let kind = match line.stream {
        Stream::Stdout => {
            let event = parse_line(&line.text);
            if let Event::Result(r) = &event {
                if result.is_some() {
                    // The first `result` line ends the run's account: a
                    // later one (a second cost, a changed verdict) is only
                    // logged.
                    log.line("result", &line.text).await?;
                    if !log.noted_extra_result {
                        log.noted_extra_result = true;
                        log.note("a second result line was ignored: the first one stands")
                            .await?;
                    }
                    return Ok(());
                }
                *result = Some(r.clone());
            }
            let unknown = estimator.unknown_models().len();
            estimator.observe(&event);
            if let Some(model) = estimator.unknown_models().get(unknown) {
                tracing::warn!(
                    model,
                    "no price known for a model; estimating at the highest rates"
                );
                log.note(&format!(
                    "no price known for model {model}: its cost is estimated at the highest known rates"
                ))
                .await?;
            }
            if event.is_partial() {
                // One per streamed chunk: counted, not logged.
                return Ok(());
            }
            event.kind()
        }
        Stream::Stderr => "stderr",
        Stream::Note => "ccs",
        Stream::Check => "check",
    };
    log.line(kind, &line.text).await
}

/// One line on how a check ended, for the execution's log.
fn check_summary(check: &CheckRun) -> String {
    let how = match (check.exit_code, &check.error) {
        (Some(code), _) => format!("exited {code}"),
        (None, Some(error)) => format!("did not end: {error}"),
        (None, None) => "did not end".to_owned(),
    };
    format!(
        "{} command {how} after {}",
        check.kind.as_str(),
        humantime::format_duration(Duration::from_millis(check.duration.as_millis() as u64))
    )
}

/// The audit log's record of a run's tools.
fn grant_detail(grant: &ToolGrant) -> String {
    serde_json::json!({
        "allowed": grant.allowed,
        "disallowed": grant.disallowed,
        "maxToolRisk": grant.max_risk.map(|r| r.as_str()),
    })
    .to_string()
}

/// A run ready to start.
struct Prepared {
    spec: RunSpec,
    timeout: Duration,
    grant: ToolGrant,
}

/// Builds the run from the project's configuration and the worker's
/// secrets. Errors are for people (and never hold a secret's value).
fn prepare(
    execution: &Execution,
    project: &Project,
    env: &WorkerEnv,
    gate: Option<&ValidationGate>,
    base_changes: Option<Arc<Vec<u8>>>,
    ceiling_usd: f64,
    resume: Option<Arc<Session>>,
) -> Result<Prepared, String> {
    let container = match &project.container_yaml {
        Some(text) => project_config::parse_container(".claude/container.yaml", text)
            .map_err(|e| format!("invalid project configuration: {e}"))?,
        None => ContainerConfig::default(),
    };
    let checks = match (gate.filter(|g| g.needs_tests()), &container.test) {
        (None, _) => None,
        (Some(gate), Some(test)) => Some(Checks {
            test: test.command.clone(),
            coverage: gate.min_coverage.and(test.coverage.clone()),
        }),
        (Some(_), None) => {
            return Err(
                "the workflow's safety.validation gate runs the project's tests, \
                 but .claude/container.yaml has no `test.command`"
                    .to_owned(),
            );
        }
    };
    let grant = container
        .tool_grant()
        .map_err(|e| format!("invalid project configuration: tools: {e}"))?;
    let mut mask = Vec::new();
    let mut agent_env = Vec::new();
    for (name, value) in &container.env {
        let value = env
            .secrets
            .resolve(value, &format!("env.{name}"), &mut mask)
            .map_err(|e| e.to_string())?;
        agent_env.push((name.clone(), value));
    }
    let mut servers = Vec::new();
    for server in &container.mcp_servers {
        let mut resolved: McpServer = server.clone();
        for (name, value) in &mut resolved.env {
            *value = env
                .secrets
                .resolve(
                    value,
                    &format!("mcpServers[{}].env.{name}", server.name),
                    &mut mask,
                )
                .map_err(|e| e.to_string())?;
        }
        servers.push(resolved);
    }
    let agent = AgentOptions {
        model: container.agent.model.clone(),
        max_turns: container.agent.max_turns,
        allowed_tools: grant.allowed.clone(),
        disallowed_tools: grant.disallowed.clone(),
        permission_mode: container
            .agent
            .permission_mode
            .map(|m| m.as_cli_arg().to_owned()),
        append_system_prompt: None,
        mcp_config: mcp_catalog::mcp_config(&servers)?,
        session_id: Some(uuid::Uuid::new_v4().to_string()),
        resume: resume.as_ref().map(|s| s.session_id.clone()),
        max_budget_usd: Some(ceiling_usd),
    };
    let mut timeout = if project.container_yaml.is_some() {
        container.resources.timeout.as_duration()
    } else {
        env.default_timeout
    };
    // A workflow step gets no more than its run's maxRuntime leaves.
    if let Some(ms) = execution.timeout_ms {
        timeout = timeout.min(Duration::from_millis(ms.max(0) as u64));
    }
    let spec = RunSpec {
        execution_id: execution.id.clone(),
        attempt: execution.attempts,
        prompt: execution.prompt.clone(),
        project_dir: project.path.clone().into(),
        agent,
        env: agent_env,
        worker_id: env.worker_id.clone(),
        project: project.name.clone(),
        container,
        mask,
        checks,
        base_changes,
        keep_changes: execution.workflow_id.is_some(),
        max_line_bytes: env.limits.max_line_bytes,
        resume,
    };
    Ok(Prepared {
        spec,
        timeout,
        grant,
    })
}

/// The outcome of a run, from why it stopped, how it exited and what it said.
fn decide(
    reason: Option<StopReason>,
    exit: Result<RunExit, String>,
    result: Option<ResultMsg>,
    cost: Cost,
    timeout: Duration,
) -> Outcome {
    let (cost_usd, cost_estimated) = cost.usd();
    let mut outcome = Outcome {
        status: ExecutionStatus::Failed,
        result: None,
        error: None,
        cost_usd: Some(cost_usd),
        cost_estimated,
        num_turns: result.as_ref().and_then(|r| r.num_turns).map(i64::from),
        session_id: result.as_ref().and_then(|r| r.session_id.clone()),
        exit_code: None,
        duration_ms: None,
        validation: None,
        changes: None,
        session: None,
    };
    let exit = match exit {
        Ok(exit) => exit,
        Err(message) => {
            outcome.error = Some(message);
            return outcome;
        }
    };
    outcome.exit_code = exit.exit_code.map(i64::from);
    outcome.duration_ms = Some(exit.duration.as_millis() as i64);
    match reason {
        Some(StopReason::Timeout) => {
            outcome.status = ExecutionStatus::TimedOut;
            outcome.error = Some(format!(
                "timed out after {}",
                humantime::format_duration(timeout)
            ));
            return outcome;
        }
        Some(StopReason::Cancelled) => {
            outcome.status = ExecutionStatus::Cancelled;
            outcome.error = Some("cancelled while running".into());
            return outcome;
        }
        Some(StopReason::BudgetExceeded) => {
            outcome.status = ExecutionStatus::BudgetExceeded;
            outcome.error = Some(format!(
                "stopped: its estimated cost of ${cost_usd:.4} passed this run's ceiling \
                 (maxCostPerExecution)"
            ));
            return outcome;
        }
        Some(StopReason::Shutdown) | None => {}
    }
    if exit.oom_killed {
        outcome.error = Some("the agent ran out of memory".into());
        return outcome;
    }
    match result {
        Some(r) if r.is_success() => {
            outcome.status = ExecutionStatus::Succeeded;
            outcome.result = r.result.clone();
        }
        Some(r) => {
            outcome.result = r.result.clone();
            outcome.error = Some(
                r.error_text()
                    .unwrap_or_else(|| format!("the agent reported {}", r.subtype)),
            );
        }
        None => {
            let how = match (exit.exit_code, exit.signal) {
                (Some(code), _) => format!("exited with code {code}"),
                (None, Some(sig)) => format!("was killed by signal {sig}"),
                (None, None) => "ended".to_owned(),
            };
            outcome.error = Some(format!("the agent {how} without a result line"));
        }
    }
    outcome
}

/// Whether the running estimate passed the run's ceiling (by more than a
/// micro-dollar: an estimate that lands on the ceiling has not passed it).
/// The stop stays armed after a `result` line: an agent that says it is
/// done and keeps spending is stopped all the same.
fn over_ceiling(estimator: &CostEstimator, ceiling_usd: f64) -> bool {
    estimator.running_estimate_usd() > ceiling_usd + 1e-6
}

/// A reported cost larger than this many times the run's ceiling is not
/// believed: the ceiling stop ends a run shortly after its estimate passes
/// the ceiling, so a real cost lands near it, never at a multiple.
pub const ABSURD_COST_FACTOR: f64 = 2.0;

/// The cost a run is recorded with.
#[derive(Debug, Clone, PartialEq)]
enum Cost {
    /// The `result` line's `total_cost_usd`, believed.
    Reported(f64),
    /// No cost was reported: the running estimate.
    Estimated(f64),
    /// A cost was reported but not believed: the running estimate, and why.
    Refused { estimate: f64, why: String },
}

impl Cost {
    /// The amount and whether it is an estimate.
    fn usd(&self) -> (f64, bool) {
        match self {
            Cost::Reported(usd) => (*usd, false),
            Cost::Estimated(usd) | Cost::Refused { estimate: usd, .. } => (*usd, true),
        }
    }
}

/// What a run costs: the first `result` line's `total_cost_usd` when it is
/// a believable amount, the run's own estimate otherwise. What an agent
/// prints is never trusted for accounting: a negative cost would give a
/// day's budget back, a huge one would use it up for everyone.
fn trusted_cost(result: Option<&ResultMsg>, estimator: &CostEstimator, ceiling_usd: f64) -> Cost {
    let estimate = estimator.running_estimate_usd();
    let Some(reported) = result.and_then(|r| r.total_cost_usd) else {
        return Cost::Estimated(estimate);
    };
    let why = if !reported.is_finite() {
        "it is not a finite number".to_owned()
    } else if reported < 0.0 {
        format!("${reported} is negative")
    } else if reported > ceiling_usd * ABSURD_COST_FACTOR {
        format!(
            "${reported:.4} is more than {ABSURD_COST_FACTOR}× this run's ceiling of ${ceiling_usd:.2}"
        )
    } else {
        return Cost::Reported(reported);
    };
    Cost::Refused {
        estimate,
        why: format!("{why}; recording the run's own estimate of ${estimate:.4}"),
    }
}

impl Outcome {
    /// An outcome of a run that never started the agent.
    fn ended(status: ExecutionStatus, error: &str) -> Self {
        Self {
            status,
            result: None,
            error: Some(error.to_owned()),
            cost_usd: Some(0.0),
            cost_estimated: false,
            num_turns: None,
            session_id: None,
            exit_code: None,
            duration_ms: None,
            validation: None,
            changes: None,
            session: None,
        }
    }
}

/// The attempts whose agents run in this process, by execution id.
static LOCAL_ATTEMPTS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, LocalEntry>>,
> = std::sync::LazyLock::new(Default::default);

struct LocalEntry {
    attempt: i64,
    /// Stops that attempt's agent.
    stop: CancellationToken,
    /// Held by that attempt's runner task until it has ended.
    alive: Arc<tokio::sync::Mutex<()>>,
}

/// This process's claim on an execution for one attempt; dropping it
/// forgets the attempt (unless a newer one took over).
struct LocalAttempt {
    execution_id: String,
    attempt: i64,
}

impl LocalAttempt {
    /// Makes `attempt` the one running `execution_id` in this process: an
    /// earlier attempt's agent here is stopped, and this waits until its
    /// runner has ended (agent and everything it started gone). Returns the
    /// claim and the guard the new runner task holds while it runs.
    async fn take_over(
        execution_id: &str,
        attempt: i64,
        stop: &CancellationToken,
    ) -> (Self, tokio::sync::OwnedMutexGuard<()>) {
        let (previous, alive) = {
            let mut map = LOCAL_ATTEMPTS.lock().unwrap_or_else(|e| e.into_inner());
            match map.get_mut(execution_id) {
                Some(entry) => {
                    entry.attempt = attempt;
                    let previous = std::mem::replace(&mut entry.stop, stop.clone());
                    (Some(previous), entry.alive.clone())
                }
                None => {
                    let alive = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(
                        execution_id.to_owned(),
                        LocalEntry {
                            attempt,
                            stop: stop.clone(),
                            alive: alive.clone(),
                        },
                    );
                    (None, alive)
                }
            }
        };
        if let Some(previous) = previous {
            tracing::warn!(
                execution.id = %execution_id,
                attempt,
                "an earlier attempt of this execution still runs here: stopping it first"
            );
            previous.cancel();
        }
        let held = alive.lock_owned().await;
        let claim = Self {
            execution_id: execution_id.to_owned(),
            attempt,
        };
        (claim, held)
    }
}

impl Drop for LocalAttempt {
    fn drop(&mut self) {
        let mut map = LOCAL_ATTEMPTS.lock().unwrap_or_else(|e| e.into_inner());
        if map
            .get(&self.execution_id)
            .is_some_and(|e| e.attempt == self.attempt)
        {
            map.remove(&self.execution_id);
        }
    }
}

/// Appends an execution's log rows with consecutive sequence numbers,
/// secret values masked. The agent's lines (everything the runner sends)
/// are stored up to `--max-log-bytes` per attempt; the handler's own notes
/// always are (they are few, and say what happened).
struct Logger<'a> {
    env: &'a WorkerEnv,
    execution_id: &'a str,
    attempt: i64,
    seq: i64,
    masker: Masker,
    /// Bytes of the agent's output stored so far.
    stored_bytes: u64,
    /// The volume cap was reached: the agent's lines are no longer stored.
    full: bool,
    /// The note on a second `result` line was written.
    noted_extra_result: bool,
}

impl<'a> Logger<'a> {
    async fn new(env: &'a WorkerEnv, execution: &'a Execution) -> Result<Self, StoreError> {
        Ok(Self {
            env,
            execution_id: &execution.id,
            attempt: execution.attempts,
            seq: env.store.next_log_seq(&execution.id).await?,
            masker: Masker::default(),
            stored_bytes: 0,
            full: false,
            noted_extra_result: false,
        })
    }

    /// Stores a line of the agent's output, while the volume cap allows.
    async fn line(&mut self, kind: &str, text: &str) -> Result<(), JobError> {
        if self.full {
            return Ok(());
        }
        let text = self.masker.mask(text).into_owned();
        let max = self.env.limits.max_log_bytes;
        if self.stored_bytes + text.len() as u64 > max {
            self.full = true;
            return self
                .note(&format!(
                    "this run's output reached the log limit of {max} bytes                      (--max-log-bytes): no more of it is stored; the run goes on"
                ))
                .await;
        }
        self.stored_bytes += text.len() as u64;
        self.store(kind, text).await
    }

    async fn note(&mut self, text: &str) -> Result<(), JobError> {
        let text = self.masker.mask(text).into_owned();
        self.store("ccs", text).await
    }

    /// Writes one row, fenced by the attempt: a row the fence refuses
    /// means this attempt must stop ([`JobError::FenceLost`]).
    async fn store(&mut self, kind: &str, text: String) -> Result<(), JobError> {
        let line = LogLine {
            seq: self.seq,
            at: now_ms(),
            kind: kind.to_owned(),
            text,
        };
        if !self
            .env
            .store
            .append_log(self.execution_id, self.attempt, &line)
            .await?
        {
            return Err(JobError::FenceLost(self.attempt));
        }
        self.seq += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::stream_json::PriceTable;

    fn exit(code: Option<i32>) -> Result<RunExit, String> {
        Ok(RunExit {
            exit_code: code,
            signal: None,
            stopped: false,
            oom_killed: false,
            duration: Duration::from_millis(5),
            changed_files: Vec::new(),
            checks: Vec::new(),
            changes: None,
            session: None,
        })
    }

    fn result_line(text: &str) -> ResultMsg {
        match parse_line(text) {
            Event::Result(r) => r,
            other => panic!("not a result: {other:?}"),
        }
    }

    #[test]
    fn success_takes_the_reported_cost() {
        let r = result_line(
            r#"{"type":"result","subtype":"success","is_error":false,"result":"ok","num_turns":2,"total_cost_usd":0.25,"session_id":"s"}"#,
        );
        let est = CostEstimator::new(PriceTable::default());
        let cost = trusted_cost(Some(&r), &est, 1.0);
        let o = decide(None, exit(Some(0)), Some(r), cost, Duration::from_secs(1));
        assert_eq!(o.status, ExecutionStatus::Succeeded);
        assert_eq!(o.result.as_deref(), Some("ok"));
        assert_eq!(o.cost_usd, Some(0.25));
        assert!(!o.cost_estimated);
        assert_eq!(o.num_turns, Some(2));
    }

    #[test]
    fn success_subtype_with_is_error_fails() {
        let r = result_line(
            r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 500","total_cost_usd":0.0}"#,
        );
        let o = decide(
            None,
            exit(Some(0)),
            Some(r),
            Cost::Reported(0.0),
            Duration::from_secs(1),
        );
        assert_eq!(o.status, ExecutionStatus::Failed);
    }

    #[test]
    fn no_result_line_is_a_clear_failure() {
        let o = decide(
            None,
            exit(Some(137)),
            None,
            Cost::Estimated(0.0),
            Duration::from_secs(1),
        );
        assert_eq!(o.status, ExecutionStatus::Failed);
        assert_eq!(
            o.error.as_deref(),
            Some("the agent exited with code 137 without a result line")
        );
        assert!(o.cost_estimated);
    }

    #[test]
    fn timeout_and_cancel_win_over_the_exit() {
        let o = decide(
            Some(StopReason::Timeout),
            exit(None),
            None,
            Cost::Estimated(0.0),
            Duration::from_secs(2),
        );
        assert_eq!(o.status, ExecutionStatus::TimedOut);
        assert_eq!(o.error.as_deref(), Some("timed out after 2s"));
        let o = decide(
            Some(StopReason::Cancelled),
            exit(None),
            None,
            Cost::Estimated(0.0),
            Duration::from_secs(2),
        );
        assert_eq!(o.status, ExecutionStatus::Cancelled);
    }

    #[test]
    fn the_ceiling_stop_records_the_estimate() {
        // Two lines of one message (counted once), then a second message:
        // 100k output tokens at Sonnet's $15/M are $1.50 each.
        let mut est = CostEstimator::new(PriceTable::default());
        let line = |id: &str| {
            parse_line(&format!(
                r#"{{"type":"assistant","message":{{"id":"{id}","model":"claude-sonnet-4-5","content":[],"usage":{{"input_tokens":0,"output_tokens":100000}}}}}}"#
            ))
        };
        est.observe(&line("m1"));
        est.observe(&line("m1"));
        assert!(
            !over_ceiling(&est, 1.50),
            "landing on the ceiling is not passing it"
        );
        assert!(over_ceiling(&est, 1.49));
        est.observe(&line("m2"));
        assert!(over_ceiling(&est, 2.0));
        let o = decide(
            Some(StopReason::BudgetExceeded),
            exit(None),
            None,
            trusted_cost(None, &est, 2.0),
            Duration::from_secs(2),
        );
        assert_eq!(o.status, ExecutionStatus::BudgetExceeded);
        assert_eq!(o.cost_usd, Some(3.0));
        assert!(o.cost_estimated);
        assert!(o.error.as_deref().unwrap().contains("ceiling"), "{o:?}");
        // A result line does not disarm the stop: spending on after it
        // still passes the ceiling.
        est.observe(&parse_line(
            r#"{"type":"result","subtype":"success","is_error":false,"total_cost_usd":0.1}"#,
        ));
        assert!(over_ceiling(&est, 2.0));
    }

    #[test]
    fn unbelievable_reported_costs_are_refused() {
        let mut est = CostEstimator::new(PriceTable::default());
        est.observe(&parse_line(
            r#"{"type":"assistant","message":{"id":"m1","model":"claude-sonnet-4-5","content":[],"usage":{"output_tokens":10000}}}"#,
        ));
        let with_cost = |cost: &str| {
            result_line(&format!(
                r#"{{"type":"result","subtype":"success","is_error":false,"total_cost_usd":{cost}}}"#
            ))
        };
        // Believable: taken as reported.
        assert_eq!(
            trusted_cost(Some(&with_cost("0.5")), &est, 1.0),
            Cost::Reported(0.5)
        );
        assert_eq!(
            trusted_cost(Some(&with_cost("2")), &est, 1.0),
            Cost::Reported(2.0)
        );
        // Negative, or over twice the ceiling: the estimate ($0.15), and why.
        for (cost, why) in [("-1000", "is negative"), ("2.01", "2× this run's ceiling")] {
            match trusted_cost(Some(&with_cost(cost)), &est, 1.0) {
                Cost::Refused {
                    estimate,
                    why: text,
                } => {
                    assert_eq!(estimate, 10000.0 * 15.0 / 1e6);
                    assert!(text.contains(why), "{text}");
                }
                other => panic!("{cost} taken: {other:?}"),
            }
        }
        let not_finite = ResultMsg {
            total_cost_usd: Some(f64::NAN),
            ..ResultMsg::default()
        };
        let cost = trusted_cost(Some(&not_finite), &est, 1.0);
        assert!(matches!(&cost, Cost::Refused { why, .. } if why.contains("not a finite")));
        assert_eq!(cost.usd(), (0.15, true));
        // No result line: the estimate, marked as such.
        assert_eq!(trusted_cost(None, &est, 1.0), Cost::Estimated(0.15));
    }
}
