//! `.claude/workflow.yaml`: a chain of agents and the limits of a run.
//!
//! The format is the seed's "Code Review Workflow" (kept verbatim as a test
//! fixture below), with these additions and rules:
//!
//! * **`next`** is either an agent name, or a list of conditional branches
//!   tried in order, the optional `else` last:
//!
//!   ```yaml
//!   next:
//!     - if: "review_text.contains('LGTM')"
//!       then: commenter
//!     - else: analyzer
//!   ```
//!
//!   The conditions are stored as written ([`Branch::If`]); evaluating them is
//!   the workflow engine's job. When no branch matches and there is no `else`,
//!   or when an agent has no `next`, the run ends after that agent.
//! * **`onError`**: `action` is `retry` (again, up to `maxRetries` — alias
//!   `retries` — waiting `backoff` between attempts), `notify`, `fail` or
//!   `continue` (carry on with `next` as if the step had succeeded); `next`
//!   (not with `fail`) routes to another agent after the action.
//! * **`action`** on an agent names the side effect the step performs
//!   (`merge_pr`, `deploy`); when it is listed in
//!   `safety.requireHumanApprovalFor`, the run waits for approval first.
//! * Unknown keys are errors at every level, as in `container.yaml`: a typo in
//!   `budget` must not leave a run without its budget.
//!
//! Static checks on load, each reported at its line: duplicate agent names; a
//! `next`, `then`, `else` or `onError.next` naming no agent; an agent no path
//! reaches from the first agent (the first agent starts every run; routes are
//! `next`, its branches and `onError.next`); malformed branches; limits that
//! must be positive; a webhook trigger on an endpoint the service does not
//! have.
//!
//! **Variables.** A prompt's `${NAME}` (syntax in [`super::template`]) is
//! filled from the run's context or from an earlier agent's `output`. Which
//! context keys a run will have is only known when it starts, so the load-time
//! rule is the seed's naming convention: a `${NAME}` must be the `output` of
//! some agent, or UPPER_CASE (`${PR_DIFF}`) and so a context key. A lower-case
//! name nobody outputs can never be defined and is a load error. With the
//! actual context in hand, [`WorkflowConfig::undefined_variables`] answers
//! exactly.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::container::{ContainerConfig, check_image, check_mcp_server_name, check_tool};
use super::error::did_you_mean;
use super::template;
use super::units::{DurationSpec, Money};
use super::yaml::{Issues, Pos, SourceMap};

/// The service's webhook endpoints a `webhook` trigger may name.
pub const WEBHOOK_ENDPOINTS: &[&str] = &["/webhook/github", "/webhook/slack", "/webhook/execute"];

/// The parsed `.claude/workflow.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowConfig {
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Version as written (`1.0.0`).
    pub version: Option<String>,
    /// The agents; the first one starts every run.
    pub agents: Vec<AgentSpec>,
    /// Trigger, limits, budget, notifications and safety gates.
    #[serde(default)]
    pub workflow: WorkflowSettings,
}

/// One entry of `agents:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentSpec {
    /// Unique name, the target of `next`.
    pub name: String,
    /// Display role ("Code Reviewer").
    pub role: Option<String>,
    /// Image, tools and MCP servers of this step (else the project's).
    pub container: Option<AgentContainer>,
    /// The prompt, with `${NAME}` references.
    pub prompt: String,
    /// Context key the step's result is stored under, for later prompts.
    pub output: Option<String>,
    /// Where the run goes after this step succeeds.
    pub next: Option<Next>,
    /// What happens when this step fails.
    pub on_error: Option<OnError>,
    /// Side effect the step performs, for approval gates.
    pub action: Option<String>,
    /// `${NAME}` references of the prompt with their lines, filled on load.
    #[serde(skip)]
    variables: Vec<VariableRef>,
}

/// `agents[].container`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentContainer {
    /// Image for this step.
    pub base_image: Option<String>,
    /// Tools this step may use (same names as `container.yaml`).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Names of MCP servers (defined in `container.yaml`) this step gets.
    #[serde(default)]
    pub mcp_servers: Vec<String>,
}

/// `agents[].next`: an agent, or conditional branches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// `next: reviewer`
    Agent(String),
    /// `next: [ {if: …, then: …}, …, {else: …} ]`, tried in order.
    Branches(Vec<Branch>),
}

/// One conditional branch of `next`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Branch {
    /// `- if: <expression>` / `then: <agent>`
    If {
        /// The expression, as written.
        condition: String,
        /// Agent to run when it holds.
        target: String,
    },
    /// `- else: <agent>`
    Else {
        /// Agent to run when no condition held.
        target: String,
    },
}

impl Branch {
    /// The agent this branch routes to.
    pub fn target(&self) -> &str {
        match self {
            Self::If { target, .. } | Self::Else { target } => target,
        }
    }

    /// The key naming the target in the file (`then` or `else`).
    fn target_key(&self) -> &'static str {
        match self {
            Self::If { .. } => "then",
            Self::Else { .. } => "else",
        }
    }
}

impl<'de> Deserialize<'de> for Next {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NextVisitor;

        impl<'de> Visitor<'de> for NextVisitor {
            type Value = Next;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an agent name or a list of `if`/`then` and `else` branches")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Next, E> {
                Ok(Next::Agent(v.to_owned()))
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Next, A::Error> {
                let mut branches = Vec::new();
                while let Some(branch) = seq.next_element()? {
                    branches.push(branch);
                }
                Ok(Next::Branches(branches))
            }
        }

        deserializer.deserialize_any(NextVisitor)
    }
}

impl<'de> Deserialize<'de> for Branch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawBranch {
            #[serde(rename = "if")]
            condition: Option<String>,
            then: Option<String>,
            #[serde(rename = "else")]
            otherwise: Option<String>,
        }

        let raw = RawBranch::deserialize(deserializer)?;
        match (raw.condition, raw.then, raw.otherwise) {
            (Some(condition), Some(target), None) => Ok(Self::If { condition, target }),
            (None, None, Some(target)) => Ok(Self::Else { target }),
            (Some(_), None, None) => Err(de::Error::custom("a branch with `if` needs a `then`")),
            (None, Some(_), None) => Err(de::Error::custom(
                "a branch with `then` needs an `if` (write the fallback as `- else: <agent>`)",
            )),
            (None, None, None) => Err(de::Error::custom(
                "a branch needs `if` and `then`, or `else`",
            )),
            _ => Err(de::Error::custom(
                "a branch is either `if` + `then` or `else` alone (write `- else: <agent>`)",
            )),
        }
    }
}

/// `agents[].onError.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorAction {
    /// Run the step again.
    Retry,
    /// Send a notification.
    Notify,
    /// Fail the run.
    Fail,
    /// Carry on with `next` as if the step had succeeded.
    Continue,
}

/// `agents[].onError`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnError {
    /// What to do.
    pub action: ErrorAction,
    /// Agent to route to afterwards (not with `fail`).
    pub next: Option<String>,
    /// With `retry`: attempts after the first (alias `retries`); `None` = the
    /// service's default.
    #[serde(alias = "retries")]
    pub max_retries: Option<u32>,
    /// With `retry`: wait between attempts.
    pub backoff: Option<DurationSpec>,
}

/// `workflow:` — everything that is not an agent.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowSettings {
    /// How runs start; `None` = only through the API.
    pub trigger: Option<Trigger>,
    /// Most agent steps one run may take (loops included); `None` = service default.
    pub max_iterations: Option<u32>,
    /// Failed steps in a row that end a run; `None` = service default.
    pub max_consecutive_failures: Option<u32>,
    /// Wall-clock limit of a run; `None` = service default.
    pub max_runtime: Option<DurationSpec>,
    /// Cost limits.
    pub budget: Option<Budget>,
    /// Who hears about runs.
    #[serde(default)]
    pub notifications: Notifications,
    /// Approval and validation gates.
    #[serde(default)]
    pub safety: Safety,
}

/// `workflow.trigger`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trigger {
    /// Kind of trigger.
    #[serde(rename = "type")]
    pub kind: TriggerKind,
    /// With `webhook`: one of [`WEBHOOK_ENDPOINTS`].
    pub endpoint: Option<String>,
}

/// `workflow.trigger.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TriggerKind {
    /// A delivery on one of the service's webhook endpoints.
    Webhook,
    /// The JSON API or the CLI.
    Api,
    /// A person, from the dashboard.
    Manual,
}

/// `workflow.budget`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Budget {
    /// Ceiling of one run.
    pub max_cost_per_execution: Option<Money>,
    /// Ceiling of all runs of the project in a day.
    pub daily_max_cost: Option<Money>,
    /// Pause (rather than fail) a run that would exceed the budget.
    #[serde(default)]
    pub pause_on_exceed: bool,
    /// Notify when this percentage of a budget is spent (1–100).
    pub alert_at_percent: Option<u8>,
}

/// `workflow.notifications`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notifications {
    /// Slack channel notifications.
    pub slack: Option<SlackNotifications>,
    /// Comments on the pull request or issue that triggered the run.
    pub github: Option<GithubNotifications>,
}

/// `workflow.notifications.slack`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackNotifications {
    /// `#channel` or a channel id.
    pub channel: String,
    /// Events to send (default: completed, failed).
    #[serde(default = "default_notify_on")]
    pub notify_on: Vec<NotifyEvent>,
}

/// `workflow.notifications.github`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GithubNotifications {
    /// Events to comment on (default: completed, failed).
    #[serde(default = "default_notify_on")]
    pub notify_on: Vec<NotifyEvent>,
}

fn default_notify_on() -> Vec<NotifyEvent> {
    vec![NotifyEvent::Completed, NotifyEvent::Failed]
}

/// Run events a notification can be sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// The run started.
    Started,
    /// The run finished successfully.
    Completed,
    /// The run failed.
    Failed,
    /// The run was cancelled.
    Cancelled,
    /// The run was paused.
    Paused,
    /// A step waits for human approval.
    ApprovalRequired,
    /// `alertAtPercent` of a budget is spent.
    BudgetAlert,
    /// A budget was exceeded.
    BudgetExceeded,
}

/// `workflow.safety`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Safety {
    /// Actions that wait for a person's approval.
    #[serde(default)]
    pub require_human_approval_for: Vec<ApprovalRule>,
    /// Checks of the result before it counts as done.
    pub validation: Option<ValidationGate>,
}

/// One entry of `safety.requireHumanApprovalFor`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalRule {
    /// The action (`merge_pr`, `deploy`), as named by an agent's `action`.
    pub action: String,
}

/// `workflow.safety.validation`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidationGate {
    /// The project's tests (`test.command` in `container.yaml`) must run.
    #[serde(default)]
    pub require_tests: bool,
    /// … and pass.
    #[serde(default)]
    pub require_passing_tests: bool,
    /// Minimum coverage percentage (0–100), measured by `test.coverage`.
    pub min_coverage: Option<f64>,
}

impl ValidationGate {
    /// Whether the gate needs the project's test command.
    pub fn needs_tests(&self) -> bool {
        self.require_tests || self.require_passing_tests || self.min_coverage.is_some()
    }
}

/// A `${NAME}` in an agent's prompt and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VariableRef {
    /// The name between the braces.
    pub name: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// 1-based column in the file, when known.
    pub column: Option<usize>,
}

/// A prompt variable that no context key or agent output defines.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UndefinedVariable {
    /// Agent whose prompt uses it.
    pub agent: String,
    /// The variable's name.
    pub name: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
}

impl AgentSpec {
    /// The prompt's `${NAME}` references, in order, with their lines.
    pub fn variables(&self) -> &[VariableRef] {
        &self.variables
    }

    /// Every agent this step can route to: `next`, its branches, `onError.next`.
    pub fn routes(&self) -> impl Iterator<Item = &str> {
        let next: Vec<&str> = match &self.next {
            Some(Next::Agent(name)) => vec![name.as_str()],
            Some(Next::Branches(branches)) => branches.iter().map(Branch::target).collect(),
            None => Vec::new(),
        };
        let on_error = self.on_error.as_ref().and_then(|e| e.next.as_deref());
        next.into_iter().chain(on_error)
    }
}

impl WorkflowConfig {
    /// The agent that starts every run.
    pub fn first_agent(&self) -> Option<&AgentSpec> {
        self.agents.first()
    }

    /// The agent called `name`.
    pub fn agent(&self, name: &str) -> Option<&AgentSpec> {
        self.agents.iter().find(|a| a.name == name)
    }

    /// Prompt variables defined neither by `context_keys` nor by any agent's
    /// `output`, in file order.
    pub fn undefined_variables(&self, context_keys: &[String]) -> Vec<UndefinedVariable> {
        let outputs: HashSet<&str> = self
            .agents
            .iter()
            .filter_map(|a| a.output.as_deref())
            .collect();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for agent in &self.agents {
            for var in &agent.variables {
                let defined =
                    outputs.contains(var.name.as_str()) || context_keys.contains(&var.name);
                if !defined && seen.insert((agent.name.as_str(), var.name.as_str())) {
                    out.push(UndefinedVariable {
                        agent: agent.name.clone(),
                        name: var.name.clone(),
                        line: var.line,
                    });
                }
            }
        }
        out
    }

    /// Records each prompt's variables with their lines in `text`.
    pub(crate) fn locate_variables(&mut self, text: &str, map: &SourceMap) {
        for (i, agent) in self.agents.iter_mut().enumerate() {
            let path = format!("agents[{i}].prompt");
            agent.variables = template::references(&agent.prompt)
                .into_iter()
                .map(|r| {
                    let pos = map.find_in_value(text, &path, &format!("${{{}}}", r.name));
                    VariableRef {
                        name: r.name.to_owned(),
                        line: pos.map(|p| p.line),
                        column: pos.map(|p| p.column),
                    }
                })
                .collect();
        }
    }

    /// Checks the rules serde cannot express.
    pub(crate) fn validate(&self, issues: &mut Issues<'_>) {
        if self.name.trim().is_empty() {
            issues.field("name", "the workflow name is empty");
        }
        if self.agents.is_empty() {
            issues.field("agents", "a workflow needs at least one agent");
            return;
        }
        let names = self.validate_agent_names(issues);
        let outputs: HashSet<&str> = self
            .agents
            .iter()
            .filter_map(|a| a.output.as_deref())
            .collect();
        for (i, agent) in self.agents.iter().enumerate() {
            validate_agent(i, agent, &names, &outputs, issues);
        }
        self.validate_reachability(&names, issues);
        self.workflow.validate(issues);
    }

    /// Checks names are well-formed and unique; returns name → index of first use.
    fn validate_agent_names<'a>(&'a self, issues: &mut Issues<'_>) -> HashMap<&'a str, usize> {
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, agent) in self.agents.iter().enumerate() {
            let path = format!("agents[{i}].name");
            if !is_agent_name(&agent.name) {
                issues.field(
                    path,
                    format!(
                        "invalid agent name `{}`: use letters, digits, `_` and `-`",
                        agent.name
                    ),
                );
            } else if let Some(&first) = names.get(agent.name.as_str()) {
                let first_line = issues
                    .map()
                    .field(&format!("agents[{first}].name"))
                    .map_or(String::new(), |p| {
                        format!(" (first defined on line {})", p.line)
                    });
                issues.field(
                    path,
                    format!("duplicate agent name `{}`{first_line}", agent.name),
                );
            } else {
                names.insert(&agent.name, i);
            }
        }
        names
    }

    /// Every agent must be reachable from the first one.
    fn validate_reachability(&self, names: &HashMap<&str, usize>, issues: &mut Issues<'_>) {
        let mut reached = vec![false; self.agents.len()];
        let mut queue = VecDeque::from([0usize]);
        reached[0] = true;
        while let Some(i) = queue.pop_front() {
            for target in self.agents[i].routes() {
                if let Some(&j) = names.get(target)
                    && !reached[j]
                {
                    reached[j] = true;
                    queue.push_back(j);
                }
            }
        }
        let first = &self.agents[0].name;
        for (i, agent) in self.agents.iter().enumerate() {
            // A duplicate is reported as such, not also as unreachable.
            let is_duplicate = names.get(agent.name.as_str()).is_some_and(|&j| j != i);
            if !reached[i] && !is_duplicate {
                issues.field(
                    format!("agents[{i}].name"),
                    format!(
                        "agent `{}` is never reached: no `next`, branch or `onError.next` leads \
                         to it from `{first}`, the first agent",
                        agent.name
                    ),
                );
            }
        }
    }
}

fn is_agent_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// Checks one agent; `names` are all agent names, `outputs` all outputs.
fn validate_agent(
    i: usize,
    agent: &AgentSpec,
    names: &HashMap<&str, usize>,
    outputs: &HashSet<&str>,
    issues: &mut Issues<'_>,
) {
    let base = format!("agents[{i}]");
    if agent.prompt.trim().is_empty() {
        issues.field(format!("{base}.prompt"), "the prompt is empty");
    }
    if let Some(output) = &agent.output
        && !template::is_identifier(output)
    {
        issues.field(
            format!("{base}.output"),
            format!("invalid output name `{output}`: it must be usable as `${{{output}}}`"),
        );
    }
    if let Some(action) = &agent.action
        && !template::is_identifier(action)
    {
        issues.field(
            format!("{base}.action"),
            format!("invalid action name `{action}`"),
        );
    }
    if let Some(container) = &agent.container {
        if let Some(image) = &container.base_image {
            check_image(image, &format!("{base}.container.baseImage"), issues);
        }
        for (j, tool) in container.tools.iter().enumerate() {
            if let Err(message) = check_tool(tool) {
                issues.field(format!("{base}.container.tools[{j}]"), message);
            }
        }
        for (j, server) in container.mcp_servers.iter().enumerate() {
            if let Err(message) = check_mcp_server_name(server) {
                issues.field(format!("{base}.container.mcpServers[{j}]"), message);
            }
        }
    }
    match &agent.next {
        Some(Next::Agent(target)) => check_target(target, &format!("{base}.next"), names, issues),
        Some(Next::Branches(branches)) => validate_branches(&base, branches, names, issues),
        None => {}
    }
    if let Some(on_error) = &agent.on_error {
        validate_on_error(&base, on_error, names, issues);
    }
    let path = format!("{base}.prompt");
    let mut reported = HashSet::new();
    for var in &agent.variables {
        let known = outputs.contains(var.name.as_str()) || template::is_context_name(&var.name);
        if !known && reported.insert(var.name.as_str()) {
            let hint = did_you_mean(&var.name, outputs.iter().copied())
                .map_or(String::new(), |s| format!(" (did you mean `${{{s}}}`?)"));
            let pos = match (var.line, var.column) {
                (Some(line), Some(column)) => Some(Pos {
                    line,
                    column,
                    byte_offset: None,
                }),
                _ => issues.map().field(&path),
            };
            issues.at(
                path.clone(),
                pos,
                format!(
                    "`${{{}}}` is never defined: it is no agent's `output`, and context \
                     variables are UPPER_CASE (like `${{PR_DIFF}}`){hint}",
                    var.name
                ),
            );
        }
    }
}

fn validate_branches(
    base: &str,
    branches: &[Branch],
    names: &HashMap<&str, usize>,
    issues: &mut Issues<'_>,
) {
    if branches.is_empty() {
        issues.field(
            format!("{base}.next"),
            "an empty list of branches: name at least one",
        );
    }
    for (j, branch) in branches.iter().enumerate() {
        let path = format!("{base}.next[{j}]");
        if let Branch::If { condition, .. } = branch {
            if condition.trim().is_empty() {
                issues.field(format!("{path}.if"), "the condition is empty");
            } else if let Err(e) = crate::workflows::conditions::compile(condition) {
                issues.field(format!("{path}.if"), e);
            }
        }
        if matches!(branch, Branch::Else { .. }) && j + 1 != branches.len() {
            issues.field(
                format!("{path}.else"),
                "`else` must be the last branch: the branches after it could never run",
            );
        }
        check_target(
            branch.target(),
            &format!("{path}.{}", branch.target_key()),
            names,
            issues,
        );
    }
}

fn validate_on_error(
    base: &str,
    on_error: &OnError,
    names: &HashMap<&str, usize>,
    issues: &mut Issues<'_>,
) {
    let path = format!("{base}.onError");
    if let Some(target) = &on_error.next {
        if on_error.action == ErrorAction::Fail {
            issues.field(
                format!("{path}.next"),
                "`action: fail` ends the run, so `next` would never be used",
            );
        } else {
            check_target(target, &format!("{path}.next"), names, issues);
        }
    }
    if on_error.action == ErrorAction::Retry {
        if on_error.max_retries == Some(0) {
            issues.field(
                format!("{path}.maxRetries"),
                "must be at least 1 with `action: retry`",
            );
        }
    } else {
        if on_error.max_retries.is_some() {
            issues.field(
                format!("{path}.maxRetries"),
                "only used with `action: retry`",
            );
        }
        if on_error.backoff.is_some() {
            issues.field(format!("{path}.backoff"), "only used with `action: retry`");
        }
    }
}

/// `target` must name an agent.
fn check_target(target: &str, path: &str, names: &HashMap<&str, usize>, issues: &mut Issues<'_>) {
    if names.contains_key(target) {
        return;
    }
    let hint = did_you_mean(target, names.keys().copied())
        .map_or(String::new(), |s| format!(" (did you mean `{s}`?)"));
    issues.field(path, format!("no agent named `{target}`{hint}"));
}

impl WorkflowSettings {
    fn validate(&self, issues: &mut Issues<'_>) {
        if let Some(trigger) = &self.trigger {
            match (&trigger.kind, &trigger.endpoint) {
                (TriggerKind::Webhook, None) => issues.field(
                    "workflow.trigger",
                    format!(
                        "a webhook trigger needs an `endpoint`: one of {}",
                        WEBHOOK_ENDPOINTS.join(", ")
                    ),
                ),
                (TriggerKind::Webhook, Some(endpoint))
                    if !WEBHOOK_ENDPOINTS.contains(&endpoint.as_str()) =>
                {
                    issues.field(
                        "workflow.trigger.endpoint",
                        format!(
                            "unknown webhook endpoint `{endpoint}`: one of {}",
                            WEBHOOK_ENDPOINTS.join(", ")
                        ),
                    );
                }
                (TriggerKind::Api | TriggerKind::Manual, Some(_)) => issues.field(
                    "workflow.trigger.endpoint",
                    "only a webhook trigger takes an `endpoint`",
                ),
                _ => {}
            }
        }
        if self.max_iterations == Some(0) {
            issues.field("workflow.maxIterations", "must be at least 1");
        }
        if self.max_consecutive_failures == Some(0) {
            issues.field("workflow.maxConsecutiveFailures", "must be at least 1");
        }
        if self.max_runtime.is_some_and(DurationSpec::is_zero) {
            issues.field("workflow.maxRuntime", "must be greater than zero");
        }
        if let Some(budget) = &self.budget {
            budget.validate(issues);
        }
        if let Some(slack) = &self.notifications.slack
            && slack.channel.trim().is_empty()
        {
            issues.field(
                "workflow.notifications.slack.channel",
                "the channel is empty",
            );
        }
        self.safety.validate(issues);
    }
}

impl Budget {
    fn validate(&self, issues: &mut Issues<'_>) {
        let path = "workflow.budget";
        for (key, amount) in [
            ("maxCostPerExecution", self.max_cost_per_execution),
            ("dailyMaxCost", self.daily_max_cost),
        ] {
            if amount.is_some_and(Money::is_zero) {
                issues.field(format!("{path}.{key}"), "must be more than $0");
            }
        }
        if let (Some(run), Some(day)) = (self.max_cost_per_execution, self.daily_max_cost)
            && run > day
        {
            issues.field(
                format!("{path}.maxCostPerExecution"),
                format!("{run} per execution is more than the daily maximum of {day}"),
            );
        }
        if self.alert_at_percent.is_some_and(|p| p == 0 || p > 100) {
            issues.field(
                format!("{path}.alertAtPercent"),
                "must be between 1 and 100",
            );
        }
    }
}

impl Safety {
    fn validate(&self, issues: &mut Issues<'_>) {
        let path = "workflow.safety";
        let mut seen = HashSet::new();
        for (i, rule) in self.require_human_approval_for.iter().enumerate() {
            let rule_path = format!("{path}.requireHumanApprovalFor[{i}].action");
            if !template::is_identifier(&rule.action) {
                issues.field(rule_path, format!("invalid action name `{}`", rule.action));
            } else if !seen.insert(rule.action.as_str()) {
                issues.field(rule_path, format!("`{}` is listed twice", rule.action));
            }
        }
        if let Some(gate) = &self.validation
            && let Some(min) = gate.min_coverage
            && !(0.0..=100.0).contains(&min)
        {
            issues.field(
                format!("{path}.validation.minCoverage"),
                "must be a percentage between 0 and 100",
            );
        }
    }
}

impl WorkflowConfig {
    /// Checks that the workflow only uses what the project's container
    /// configuration provides: MCP servers it defines, tools it allows, and a
    /// test command when a validation gate needs one.
    pub(crate) fn validate_against(&self, container: &ContainerConfig, issues: &mut Issues<'_>) {
        for (i, agent) in self.agents.iter().enumerate() {
            let Some(agent_container) = &agent.container else {
                continue;
            };
            for (j, server) in agent_container.mcp_servers.iter().enumerate() {
                if container.mcp_server(server).is_none() {
                    issues.field(
                        format!("agents[{i}].container.mcpServers[{j}]"),
                        format!("MCP server `{server}` is not defined in the project's container.yaml `mcpServers`"),
                    );
                }
            }
            if let Some(allowed) = &container.tools.allowed {
                for (j, tool) in agent_container.tools.iter().enumerate() {
                    if !tool_is_within(tool, allowed) {
                        issues.field(
                            format!("agents[{i}].container.tools[{j}]"),
                            format!("tool `{tool}` is not allowed by the project's container.yaml `tools.allowed`"),
                        );
                    }
                }
            }
            for (j, tool) in agent_container.tools.iter().enumerate() {
                if container.tools.disallowed.contains(tool) {
                    issues.field(
                        format!("agents[{i}].container.tools[{j}]"),
                        format!("tool `{tool}` is disallowed by the project's container.yaml"),
                    );
                }
            }
        }
        if let Some(gate) = &self.workflow.safety.validation {
            let path = "workflow.safety.validation";
            match &container.test {
                None if gate.needs_tests() => issues.field(
                    path,
                    "the validation gate runs the project's tests, but container.yaml has no `test.command`",
                ),
                Some(test) if gate.min_coverage.is_some() && test.coverage.is_none() => {
                    issues.field(
                        format!("{path}.minCoverage"),
                        "minCoverage needs `test.coverage` in container.yaml",
                    );
                }
                _ => {}
            }
        }
    }
}

/// Whether the project's allow-list covers `tool`: listed as is, or its base
/// tool is (`Bash` covers `Bash(git:*)`), or its MCP server is
/// (`mcp__github` covers `mcp__github__get_issue`).
fn tool_is_within(tool: &str, allowed: &[String]) -> bool {
    let base = tool.split_once('(').map_or(tool, |(base, _)| base);
    allowed.iter().any(|a| {
        a == tool || a == base || (a.starts_with("mcp__") && tool.starts_with(&format!("{a}__")))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::container::TestConfig;
    use super::super::{ConfigError, parse_container, parse_workflow, parse_workflow_in_project};
    use super::*;

    /// The seed's "Code Review Workflow", verbatim (trailing blanks included).
    pub(crate) const SEED: &str = "name: Code Review Workflow
description: Automated code review with multiple specialized agents
version: 1.0.0

agents:
  - name: analyzer
    role: Code Analyzer
    container:
      baseImage: claude-base:latest
      tools: [Read, Edit]
    prompt: |
      Analyze the code changes in ${PR_DIFF}.
      Look for:
      - Potential bugs
      - Security issues
      - Performance problems
    output: analysis_result
    next: reviewer

  - name: reviewer
    role: Code Reviewer
    container:
      baseImage: claude-base:latest
      tools: [Read, Write]
    prompt: |
      Based on the analysis: ${analysis_result}
      
      Write a comprehensive code review with:
      - Summary of findings
      - Specific recommendations
      - Code examples for fixes
    output: review_text
    next: commenter

  - name: commenter
    role: GitHub Commenter
    container:
      baseImage: claude-base:latest
      tools: [Bash]
      mcpServers: [github]
    prompt: |
      Post this review to GitHub PR #${PR_NUMBER}:
      ${review_text}
    onError:
      action: notify
      next: analyzer

workflow:
  trigger:
    type: webhook
    endpoint: /webhook/github

  maxIterations: 5
  maxConsecutiveFailures: 2
  maxRuntime: 1800s

  budget:
    maxCostPerExecution: $5.00
    dailyMaxCost: $50.00
    pauseOnExceed: true
    alertAtPercent: 80

  notifications:
    slack:
      channel: \"#code-reviews\"
      notifyOn:
        - completed
        - failed
        - budget_exceeded

  safety:
    requireHumanApprovalFor:
      - action: merge_pr
      - action: deploy
    validation:
      requireTests: true
      requirePassingTests: true
      minCoverage: 80
";

    const FILE: &str = ".claude/workflow.yaml";

    fn parse(text: &str) -> Result<WorkflowConfig, ConfigError> {
        parse_workflow(FILE, text)
    }

    /// Expects an error at `line` on `field` whose message contains `needle`.
    fn expect_error(text: &str, line: usize, field: &str, needle: &str) -> ConfigError {
        let err = parse(text).expect_err("expected an error");
        assert_eq!(err.file, FILE);
        assert_eq!(err.line, Some(line), "{err}");
        assert_eq!(err.field.as_deref().unwrap_or_default(), field, "{err}");
        assert!(err.message.contains(needle), "{err}");
        err
    }

    /// A minimal valid workflow: agents `a` → `b`, then whatever `extra` adds
    /// (indented as further agent entries or top-level keys by the caller).
    fn two_agents(extra: &str) -> String {
        format!(
            "name: t\nagents:\n  - name: a\n    prompt: do ${{X}}\n    output: out_a\n    next: b\n  - name: b\n    prompt: use ${{out_a}}\n{extra}"
        )
    }

    #[test]
    fn seed_example_parses() {
        assert!(
            SEED.contains("${analysis_result}\n      \n"),
            "fixture lost its trailing blanks"
        );
        let w = parse(SEED).unwrap();
        assert_eq!(w.name, "Code Review Workflow");
        assert_eq!(w.version.as_deref(), Some("1.0.0"));
        assert_eq!(w.agents.len(), 3);
        let analyzer = &w.agents[0];
        assert_eq!(analyzer.role.as_deref(), Some("Code Analyzer"));
        assert_eq!(analyzer.container.as_ref().unwrap().tools, ["Read", "Edit"]);
        assert!(
            analyzer
                .prompt
                .starts_with("Analyze the code changes in ${PR_DIFF}.\n")
        );
        assert_eq!(analyzer.output.as_deref(), Some("analysis_result"));
        assert_eq!(analyzer.next, Some(Next::Agent("reviewer".into())));
        let commenter = w.agent("commenter").unwrap();
        assert_eq!(
            commenter.container.as_ref().unwrap().mcp_servers,
            ["github"]
        );
        let on_error = commenter.on_error.as_ref().unwrap();
        assert_eq!(on_error.action, ErrorAction::Notify);
        assert_eq!(on_error.next.as_deref(), Some("analyzer"));
        assert_eq!(commenter.routes().collect::<Vec<_>>(), ["analyzer"]);
        assert_eq!(w.first_agent().unwrap().name, "analyzer");

        let s = &w.workflow;
        let trigger = s.trigger.as_ref().unwrap();
        assert_eq!(trigger.kind, TriggerKind::Webhook);
        assert_eq!(trigger.endpoint.as_deref(), Some("/webhook/github"));
        assert_eq!(s.max_iterations, Some(5));
        assert_eq!(s.max_consecutive_failures, Some(2));
        assert_eq!(s.max_runtime, Some(DurationSpec::from_secs(1800)));
        let budget = s.budget.unwrap();
        assert_eq!(budget.max_cost_per_execution, Some(Money::from_cents(500)));
        assert_eq!(budget.daily_max_cost, Some(Money::from_cents(5_000)));
        assert!(budget.pause_on_exceed);
        assert_eq!(budget.alert_at_percent, Some(80));
        let slack = s.notifications.slack.as_ref().unwrap();
        assert_eq!(slack.channel, "#code-reviews");
        assert_eq!(
            slack.notify_on,
            [
                NotifyEvent::Completed,
                NotifyEvent::Failed,
                NotifyEvent::BudgetExceeded
            ]
        );
        let actions: Vec<&str> = s
            .safety
            .require_human_approval_for
            .iter()
            .map(|r| r.action.as_str())
            .collect();
        assert_eq!(actions, ["merge_pr", "deploy"]);
        let gate = s.safety.validation.unwrap();
        assert!(gate.require_tests && gate.require_passing_tests);
        assert_eq!(gate.min_coverage, Some(80.0));
    }

    #[test]
    fn seed_variables_are_located() {
        let w = parse(SEED).unwrap();
        let vars = |i: usize| -> Vec<(String, Option<usize>)> {
            w.agents[i]
                .variables()
                .iter()
                .map(|v| (v.name.clone(), v.line))
                .collect()
        };
        assert_eq!(vars(0), [("PR_DIFF".to_owned(), Some(12))]);
        assert_eq!(vars(1), [("analysis_result".to_owned(), Some(26))]);
        assert_eq!(
            vars(2),
            [
                ("PR_NUMBER".to_owned(), Some(42)),
                ("review_text".to_owned(), Some(43))
            ]
        );
        let column = w.agents[2].variables()[0].column;
        assert_eq!(column, Some(38));
    }

    #[test]
    fn undefined_variables_against_a_context() {
        let w = parse(SEED).unwrap();
        let missing = w.undefined_variables(&["PR_DIFF".to_owned()]);
        assert_eq!(
            missing,
            [UndefinedVariable {
                agent: "commenter".into(),
                name: "PR_NUMBER".into(),
                line: Some(42),
            }]
        );
        assert!(
            w.undefined_variables(&["PR_DIFF".to_owned(), "PR_NUMBER".to_owned()])
                .is_empty()
        );
    }

    #[test]
    fn seed_is_consistent_with_the_seed_container() {
        let container = parse_container("c", super::super::container::tests::SEED).unwrap();
        // The seed's container.yaml has no `test:`, and the seed's workflow
        // asks for passing tests: that is reported.
        let err = parse_workflow_in_project(FILE, SEED, &container).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("workflow.safety.validation"));
        assert_eq!(err.line, Some(75));
        let mut container = container;
        container.test = Some(TestConfig {
            command: "cargo test".into(),
            coverage: Some("cargo llvm-cov".into()),
        });
        parse_workflow_in_project(FILE, SEED, &container).unwrap();
    }

    #[test]
    fn conditional_next_parses() {
        let text = "name: t\nagents:\n  - name: reviewer\n    prompt: review\n    output: review_text\n    next:\n      - if: \"review_text.contains('LGTM')\"\n        then: commenter\n      - if: \"x\"\n        then: reviewer\n      - else: fixer\n  - name: commenter\n    prompt: c\n  - name: fixer\n    prompt: f\n    next: reviewer\n";
        let w = parse(text).unwrap();
        assert_eq!(
            w.agents[0].next,
            Some(Next::Branches(vec![
                Branch::If {
                    condition: "review_text.contains('LGTM')".into(),
                    target: "commenter".into()
                },
                Branch::If {
                    condition: "x".into(),
                    target: "reviewer".into()
                },
                Branch::Else {
                    target: "fixer".into()
                },
            ]))
        );
        assert_eq!(
            w.agents[0].routes().collect::<Vec<_>>(),
            ["commenter", "reviewer", "fixer"]
        );
    }

    #[test]
    fn malformed_branches_are_errors_at_their_line() {
        let head = "name: t\nagents:\n  - name: a\n    prompt: p\n    next:\n";
        expect_error(
            &format!("{head}      - if: x\n"),
            6,
            "agents[0].next[0]",
            "needs a `then`",
        );
        expect_error(
            &format!("{head}      - then: a\n"),
            6,
            "agents[0].next[0]",
            "needs an `if`",
        );
        expect_error(
            &format!("{head}      - if: x\n        else: a\n"),
            6,
            "agents[0].next[0]",
            "either `if` + `then` or `else`",
        );
        expect_error(
            &format!("{head}      - {{}}\n"),
            6,
            "agents[0].next[0]",
            "needs `if` and `then`, or `else`",
        );
        expect_error(
            &format!("{head}      - if: x\n        then: a\n        when: y\n"),
            8,
            "agents[0].next[0].when",
            "unknown field",
        );
        expect_error(&format!("{head}      - a\n"), 6, "agents[0].next[0]", "");
        expect_error(
            &format!("{head}      - else: a\n      - if: x\n        then: a\n"),
            6,
            "agents[0].next[0].else",
            "must be the last branch",
        );
        expect_error(
            &format!("{head}      - if: ' '\n        then: a\n"),
            6,
            "agents[0].next[0].if",
            "condition is empty",
        );
        expect_error(
            "name: t\nagents:\n  - name: a\n    prompt: p\n    next: []\n",
            5,
            "agents[0].next",
            "empty list",
        );
        expect_error(
            "name: t\nagents:\n  - name: a\n    prompt: p\n    next: {if: x}\n",
            5,
            "agents[0].next",
            "",
        );
    }

    #[test]
    fn unknown_targets_are_errors_at_their_line() {
        expect_error(
            &two_agents("    next: revieuer\n  - name: reviewer\n    prompt: r\n"),
            9,
            "agents[1].next",
            "no agent named `revieuer` (did you mean `reviewer`?)",
        );
        expect_error(
            &two_agents("    next:\n      - if: x\n        then: a\n      - else: nobody\n"),
            12,
            "agents[1].next[1].else",
            "no agent named `nobody`",
        );
        expect_error(
            &two_agents("    next:\n      - if: x\n        then: c\n"),
            11,
            "agents[1].next[0].then",
            "no agent named `c`",
        );
        expect_error(
            &two_agents("    onError:\n      action: notify\n      next: analyzer\n"),
            11,
            "agents[1].onError.next",
            "no agent named `analyzer`",
        );
    }

    #[test]
    fn duplicate_agent_names() {
        let err = expect_error(
            &two_agents("  - name: a\n    prompt: again\n"),
            9,
            "agents[2].name",
            "duplicate agent name `a` (first defined on line 3)",
        );
        assert_eq!(err.column, Some(5));
    }

    #[test]
    fn unreachable_agents() {
        expect_error(
            &two_agents("  - name: orphan\n    prompt: o\n"),
            9,
            "agents[2].name",
            "agent `orphan` is never reached",
        );
        // Reachable through onError.next only: fine.
        parse(&two_agents(
            "    onError:\n      action: retry\n      next: c\n  - name: c\n    prompt: c\n",
        ))
        .unwrap();
        // Reachable through a branch only: fine.
        parse(&two_agents(
            "    next:\n      - if: x\n        then: c\n  - name: c\n    prompt: c\n",
        ))
        .unwrap();
    }

    #[test]
    fn variables_that_can_never_be_defined() {
        let text = "name: t\nagents:\n  - name: a\n    prompt: |\n      first line\n      uses ${PR_DIFF} and ${out_b}\n      then ${analysis}\n    output: out_a\n    next: b\n  - name: b\n    prompt: \"${out_a}\"\n    output: out_b\n";
        let err = expect_error(
            text,
            7,
            "agents[0].prompt",
            "`${analysis}` is never defined",
        );
        assert_eq!(err.column, Some(12));
        // A typo of an output gets a hint.
        let text = "name: t\nagents:\n  - name: a\n    prompt: x\n    output: review_text\n    next: b\n  - name: b\n    prompt: 'post ${review_txt}'\n";
        expect_error(
            text,
            8,
            "agents[1].prompt",
            "did you mean `${review_text}`?",
        );
        // Escaped and non-identifier forms are text.
        parse("name: t\nagents:\n  - name: a\n    prompt: 'say $${literal} and ${not valid} ${x:-y}'\n").unwrap();
    }

    #[test]
    fn agent_fields_are_checked() {
        let head = "name: t\nagents:\n  - name: a\n";
        expect_error(
            &format!("{head}    prompt: ' '\n"),
            4,
            "agents[0].prompt",
            "empty",
        );
        expect_error(
            &format!("{head}    role: r\n"),
            3,
            "agents[0]",
            "missing field `prompt`",
        );
        expect_error(
            &format!("{head}    prompt: p\n    output: my-result\n"),
            5,
            "agents[0].output",
            "invalid output name",
        );
        expect_error(
            &format!("{head}    prompt: p\n    action: merge pr\n"),
            5,
            "agents[0].action",
            "invalid action name",
        );
        expect_error(
            &format!("{head}    prompt: p\n    container:\n      tools: [Read, Rite]\n"),
            6,
            "agents[0].container.tools[1]",
            "unknown tool `Rite` (did you mean `Write`?)",
        );
        expect_error(
            &format!("{head}    prompt: p\n    container:\n      mcpServers: ['a b']\n"),
            6,
            "agents[0].container.mcpServers[0]",
            "invalid MCP server name",
        );
        expect_error(
            &format!("{head}    prompt: p\n    container:\n      image: x\n"),
            6,
            "agents[0].container.image",
            "unknown field `image`",
        );
        expect_error(
            "name: t\nagents:\n  - name: 'a b'\n    prompt: p\n",
            3,
            "agents[0].name",
            "invalid agent name",
        );
        expect_error(
            &format!("{head}    prompt: p\n    container:\n      baseImage: 'my image'\n"),
            6,
            "agents[0].container.baseImage",
            "invalid image reference",
        );
        expect_error("name: t\nagents: []\n", 2, "agents", "at least one agent");
        expect_error(
            "name: ''\nagents:\n  - name: a\n    prompt: p\n",
            1,
            "name",
            "empty",
        );
        expect_error(
            "agents:\n  - name: a\n    prompt: p\n",
            1,
            "",
            "missing field `name`",
        );
    }

    #[test]
    fn on_error_rules() {
        let head = "name: t\nagents:\n  - name: a\n    prompt: p\n    onError:\n";
        let w = parse(&format!(
            "{head}      action: retry\n      retries: 3\n      backoff: 30s\n"
        ))
        .unwrap();
        let on_error = w.agents[0].on_error.as_ref().unwrap();
        assert_eq!(on_error.max_retries, Some(3));
        assert_eq!(on_error.backoff, Some(DurationSpec::from_secs(30)));
        parse(&format!("{head}      action: continue\n")).unwrap();
        expect_error(
            &format!("{head}      action: explode\n"),
            6,
            "agents[0].onError.action",
            "explode",
        );
        expect_error(
            &format!("{head}      action: fail\n      next: a\n"),
            7,
            "agents[0].onError.next",
            "never be used",
        );
        expect_error(
            &format!("{head}      action: retry\n      maxRetries: 0\n"),
            7,
            "agents[0].onError.maxRetries",
            "at least 1",
        );
        expect_error(
            &format!("{head}      action: notify\n      maxRetries: 2\n"),
            7,
            "agents[0].onError.maxRetries",
            "only used with",
        );
        expect_error(
            &format!("{head}      action: notify\n      backoff: 5s\n"),
            7,
            "agents[0].onError.backoff",
            "only used with",
        );
        expect_error(
            &format!("{head}      action: retry\n      backoff: 5x\n"),
            7,
            "agents[0].onError.backoff",
            "invalid duration",
        );
        expect_error(
            &format!("{head}      action: retry\n      retries: 1\n      maxRetries: 2\n"),
            5,
            "agents[0].onError",
            "duplicate",
        );
    }

    #[test]
    fn settings_rules() {
        let head = "name: t\nagents:\n  - name: a\n    prompt: p\nworkflow:\n";
        expect_error(
            &format!("{head}  maxIterations: 0\n"),
            6,
            "workflow.maxIterations",
            "at least 1",
        );
        expect_error(
            &format!("{head}  maxConsecutiveFailures: 0\n"),
            6,
            "workflow.maxConsecutiveFailures",
            "at least 1",
        );
        expect_error(
            &format!("{head}  maxRuntime: 0s\n"),
            6,
            "workflow.maxRuntime",
            "greater than zero",
        );
        expect_error(
            &format!("{head}  maxRuntime: forever\n"),
            6,
            "workflow.maxRuntime",
            "invalid duration",
        );
        expect_error(
            &format!("{head}  maxIteration: 3\n"),
            6,
            "workflow.maxIteration",
            "unknown field",
        );
        expect_error(
            &format!("{head}  trigger:\n    type: webhook\n"),
            6,
            "workflow.trigger",
            "needs an `endpoint`",
        );
        expect_error(
            &format!("{head}  trigger:\n    type: webhook\n    endpoint: /webhook/gitlab\n"),
            8,
            "workflow.trigger.endpoint",
            "unknown webhook endpoint",
        );
        expect_error(
            &format!("{head}  trigger:\n    type: manual\n    endpoint: /x\n"),
            8,
            "workflow.trigger.endpoint",
            "only a webhook",
        );
        expect_error(
            &format!("{head}  trigger:\n    type: cron\n"),
            7,
            "workflow.trigger.type",
            "cron",
        );
        parse(&format!("{head}  trigger:\n    type: api\n")).unwrap();
    }

    #[test]
    fn budget_rules() {
        let head = "name: t\nagents:\n  - name: a\n    prompt: p\nworkflow:\n  budget:\n";
        expect_error(
            &format!("{head}    maxCostPerExecution: $0\n"),
            7,
            "workflow.budget.maxCostPerExecution",
            "more than $0",
        );
        expect_error(
            &format!("{head}    dailyMaxCost: 0\n"),
            7,
            "workflow.budget.dailyMaxCost",
            "more than $0",
        );
        expect_error(
            &format!("{head}    maxCostPerExecution: $60\n    dailyMaxCost: $50.00\n"),
            7,
            "workflow.budget.maxCostPerExecution",
            "$60.00 per execution is more than the daily maximum of $50.00",
        );
        expect_error(
            &format!("{head}    alertAtPercent: 0\n"),
            7,
            "workflow.budget.alertAtPercent",
            "between 1 and 100",
        );
        expect_error(
            &format!("{head}    alertAtPercent: 150\n"),
            7,
            "workflow.budget.alertAtPercent",
            "between 1 and 100",
        );
        expect_error(
            &format!("{head}    alertAtPercent: 300\n"),
            7,
            "workflow.budget.alertAtPercent",
            "",
        );
        expect_error(
            &format!("{head}    maxCostPerExecution: five\n"),
            7,
            "workflow.budget.maxCostPerExecution",
            "invalid amount",
        );
        expect_error(
            &format!("{head}    maxCostPerExecutoin: $5\n"),
            7,
            "workflow.budget.maxCostPerExecutoin",
            "unknown field",
        );
        let w = parse(&format!("{head}    maxCostPerExecution: 2.5\n")).unwrap();
        assert_eq!(
            w.workflow.budget.unwrap().max_cost_per_execution,
            Some(Money::from_cents(250))
        );
    }

    #[test]
    fn notification_and_safety_rules() {
        let head = "name: t\nagents:\n  - name: a\n    prompt: p\nworkflow:\n";
        let w = parse(&format!(
            "{head}  notifications:\n    slack:\n      channel: C012AB3CD\n    github: {{}}\n"
        ))
        .unwrap();
        let n = &w.workflow.notifications;
        assert_eq!(
            n.slack.as_ref().unwrap().notify_on,
            [NotifyEvent::Completed, NotifyEvent::Failed]
        );
        assert_eq!(
            n.github.as_ref().unwrap().notify_on,
            [NotifyEvent::Completed, NotifyEvent::Failed]
        );
        expect_error(
            &format!("{head}  notifications:\n    slack:\n      channel: ''\n"),
            8,
            "workflow.notifications.slack.channel",
            "empty",
        );
        expect_error(
            &format!(
                "{head}  notifications:\n    slack:\n      channel: x\n      notifyOn: [done]\n"
            ),
            9,
            "workflow.notifications.slack.notifyOn[0]",
            "done",
        );
        expect_error(
            &format!("{head}  notifications:\n    email: {{}}\n"),
            7,
            "workflow.notifications.email",
            "unknown field",
        );
        expect_error(
            &format!(
                "{head}  safety:\n    requireHumanApprovalFor:\n      - action: deploy\n      - action: deploy\n"
            ),
            9,
            "workflow.safety.requireHumanApprovalFor[1].action",
            "listed twice",
        );
        expect_error(
            &format!("{head}  safety:\n    requireHumanApprovalFor:\n      - action: merge pr\n"),
            8,
            "workflow.safety.requireHumanApprovalFor[0].action",
            "invalid action name",
        );
        expect_error(
            &format!("{head}  safety:\n    requireHumanApprovalFor:\n      - deploy\n"),
            8,
            "workflow.safety.requireHumanApprovalFor[0]",
            "",
        );
        expect_error(
            &format!("{head}  safety:\n    validation:\n      minCoverage: 120\n"),
            8,
            "workflow.safety.validation.minCoverage",
            "between 0 and 100",
        );
        let w = parse(&format!(
            "{head}  safety:\n    validation:\n      minCoverage: 72.5\n"
        ))
        .unwrap();
        assert_eq!(
            w.workflow.safety.validation.unwrap().min_coverage,
            Some(72.5)
        );
    }

    #[test]
    fn project_cross_checks() {
        let container = parse_container(
            "c",
            "tools:\n  allowed: [Read, Bash, mcp__github]\n  disallowed: [WebFetch]\nmcpServers:\n  - name: github\n",
        )
        .unwrap();
        let text = |tools: &str, servers: &str| {
            format!(
                "name: t\nagents:\n  - name: a\n    prompt: p\n    container:\n      tools: {tools}\n      mcpServers: {servers}\n"
            )
        };
        parse_workflow_in_project(
            FILE,
            &text("[Read, 'Bash(git:*)', mcp__github__get_issue]", "[github]"),
            &container,
        )
        .unwrap();
        let err =
            parse_workflow_in_project(FILE, &text("[Read, Write]", "[]"), &container).unwrap_err();
        assert_eq!(
            (err.line, err.field.as_deref()),
            (Some(6), Some("agents[0].container.tools[1]"))
        );
        assert!(err.message.contains("not allowed"), "{err}");
        let err = parse_workflow_in_project(FILE, &text("[]", "[github, linear]"), &container)
            .unwrap_err();
        assert_eq!(
            (err.line, err.field.as_deref()),
            (Some(7), Some("agents[0].container.mcpServers[1]"))
        );
        let mut open = container.clone();
        open.tools.allowed = None;
        let err = parse_workflow_in_project(FILE, &text("[WebFetch]", "[]"), &open).unwrap_err();
        assert!(err.message.contains("disallowed"), "{err}");
        // A coverage gate needs a coverage command.
        let mut with_tests = open.clone();
        with_tests.test = Some(TestConfig {
            command: "make test".into(),
            coverage: None,
        });
        let gated = "name: t\nagents:\n  - name: a\n    prompt: p\nworkflow:\n  safety:\n    validation:\n      minCoverage: 80\n";
        let err = parse_workflow_in_project(FILE, gated, &with_tests).unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("workflow.safety.validation.minCoverage")
        );
        assert_eq!(err.line, Some(8));
    }

    #[test]
    fn tool_containment() {
        let allowed = [
            "Bash".to_owned(),
            "mcp__github".to_owned(),
            "Read(src/**)".to_owned(),
        ];
        assert!(tool_is_within("Bash(git:*)", &allowed));
        assert!(tool_is_within("mcp__github__get_issue", &allowed));
        assert!(tool_is_within("Read(src/**)", &allowed));
        assert!(!tool_is_within("Read", &allowed));
        assert!(!tool_is_within("mcp__githubx__a", &allowed));
    }

    #[test]
    fn empty_workflow_file_is_an_error() {
        let err = parse("# nothing\n").unwrap_err();
        assert!(err.message.contains("empty"), "{err}");
        assert_eq!(err.line, None);
    }
}
