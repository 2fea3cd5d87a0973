//! `.claude/container.yaml`: what the agent's container may use and touch.
//!
//! The format is the seed's, plus a few keys of ours (marked *ext*). Every key
//! is optional; a missing file is the same as an empty one, which is
//! [`ContainerConfig::default()`].
//!
//! ```yaml
//! name: my-project
//! baseImage: claude-base:latest          # default: the service's agent image
//! tools:
//!   allowed: [Read, Write, Edit, Bash]   # default: not restricted by the project
//!   disallowed: [WebFetch]               # ext
//! mcpServers:
//!   - name: github
//!     env: { GITHUB_TOKEN: ${GITHUB_TOKEN} }
//!   - name: custom-x                     # command/args: ext
//!     command: npx
//!     args: [-y, "@acme/mcp-server"]
//! resources:
//!   memory: 2Gi                          # default 2Gi, at least 6Mi (Docker's floor)
//!   timeout: 600s                        # default 600s
//!   cpu: "2"                             # default 2
//!   pids: 256                            # ext, default 256
//! security:
//!   runAsUser: 1000                      # default 1000; 0 / "root" parse, the runner decides
//!   readOnlyRoot: false                  # default false
//!   noNewPrivileges: true                # default true
//!   dropCapabilities: [ALL]              # default [ALL]
//!   networkMode: bridge                  # bridge (default) | none | host | a network name
//!   allowedDomains: [github.com]         # egress allow-list; absent = not restricted
//! env: { LOG_LEVEL: debug, API_KEY: ${API_KEY} }            # ext
//! test: { command: cargo test, coverage: cargo llvm-cov }   # ext
//! limits: { maxConcurrent: 2, maxStartsPerMinute: 10, whenOverBudget: refuse }   # ext
//! agent: { model: sonnet, maxTurns: 10, permissionMode: acceptEdits }   # ext
//! #   agent.maxToolRisk: low | medium | high (ext): the riskiest tool the
//! #   project may grant, see ToolRisk
//! ```
//!
//! **Unknown keys are errors at every level**, not only at the top: a typo such
//! as `noNewPrivilege: true` must not silently leave a security setting at its
//! default. `${NAME}` in an `env` value is kept as written (YAML reads the
//! unquoted `${GITHUB_TOKEN}` as a plain string); [`ContainerConfig::secret_refs`]
//! lists the names, resolution from the service's secrets happens in the runner.
//!
//! Tool names are Claude Code's: one of [`KNOWN_TOOLS`], a known tool with a
//! permission specifier in parentheses (`Bash(git diff:*)`, `Read(src/**)`,
//! `WebFetch(domain:github.com)`), or an MCP tool `mcp__<server>` /
//! `mcp__<server>__<tool>`. Every tool has a [`ToolRisk`]; `agent.maxToolRisk`
//! caps what the project may grant (a tool above it in `tools.allowed` is an
//! error), and [`ContainerConfig::tool_grant`] turns both into the run's
//! `--allowedTools` / `--disallowedTools`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::error::did_you_mean;
use super::template;
use super::units::{CpuCount, DurationSpec, MemorySize};
use super::yaml::Issues;

/// Tools Claude Code knows by name.
pub const KNOWN_TOOLS: &[&str] = &[
    "Read",
    "Write",
    "Edit",
    "MultiEdit",
    "Bash",
    "Glob",
    "Grep",
    "LS",
    "WebFetch",
    "WebSearch",
    "NotebookEdit",
    "NotebookRead",
    "TodoWrite",
    "Task",
    "Browser",
];

/// Docker refuses a memory limit below 6 MB.
const MIN_MEMORY: MemorySize = MemorySize::from_bytes(6 << 20);

/// The parsed `.claude/container.yaml`, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerConfig {
    /// Project name, used in container labels.
    pub name: Option<String>,
    /// Image to run; `None` means the service's configured agent image.
    pub base_image: Option<String>,
    /// Tools the agent may or may not use.
    #[serde(default)]
    pub tools: ToolsConfig,
    /// MCP servers given to the agent (`--mcp-config`).
    #[serde(default)]
    pub mcp_servers: Vec<McpServer>,
    /// Resource limits of the container.
    #[serde(default)]
    pub resources: Resources,
    /// Isolation settings of the container.
    #[serde(default)]
    pub security: Security,
    /// *ext* — environment of the agent; values may hold `${SECRET}` references.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// *ext* — how to run the project's tests, for workflow validation gates.
    pub test: Option<TestConfig>,
    /// *ext* — defaults for the agent CLI.
    #[serde(default)]
    pub agent: AgentDefaults,
    /// *ext* — fleet-wide limits on this project's executions.
    #[serde(default)]
    pub limits: ProjectLimits,
}

/// `tools:` — allow and deny lists of tool names.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolsConfig {
    /// `--allowedTools`; `None` when the project does not restrict tools.
    pub allowed: Option<Vec<String>>,
    /// *ext* — `--disallowedTools`.
    #[serde(default)]
    pub disallowed: Vec<String>,
}

/// One entry of `mcpServers:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpServer {
    /// Server name; its tools are `mcp__<name>__<tool>`.
    pub name: String,
    /// *ext* — command starting the server (stdio); `None` for a server the
    /// service knows by name (`github`, `linear`).
    pub command: Option<String>,
    /// *ext* — arguments of `command`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment of the server; values may hold `${SECRET}` references.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// `resources:` — limits of the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Resources {
    /// Memory limit (default 2Gi).
    pub memory: MemorySize,
    /// Wall-clock limit of one run (default 600s).
    pub timeout: DurationSpec,
    /// CPU limit (default 2).
    pub cpu: CpuCount,
    /// *ext* — process limit (default 256).
    pub pids: u32,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            memory: MemorySize::from_bytes(2 << 30),
            timeout: DurationSpec::from_secs(600),
            cpu: CpuCount::from_millis(2_000),
            pids: 256,
        }
    }
}

/// *ext* `limits:` — how many of the project's executions may run, across
/// every worker of the service (enforced through the database, see
/// `src/limits/admission.rs`). Unset values take the service's defaults
/// (`--project-max-concurrent`, …). Budgets are `workflow.yaml`'s
/// `workflow.budget`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectLimits {
    /// Executions running at once; more wait in the queue.
    pub max_concurrent: Option<u32>,
    /// Executions starting in any 60 seconds; more wait in the queue.
    pub max_starts_per_minute: Option<u32>,
    /// What happens to a run whose ceiling does not fit in a daily budget.
    pub when_over_budget: Option<OverBudgetPolicy>,
}

/// What happens to a run whose ceiling does not fit in a daily budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "camelCase")]
pub enum OverBudgetPolicy {
    /// It stays queued and tries again when the next (UTC) day starts.
    Wait,
    /// It ends at once as `budget_exceeded`.
    Refuse,
}

/// `security:` — isolation of the container.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Security {
    /// User the agent runs as (default uid 1000).
    pub run_as_user: RunAsUser,
    /// Mount the root filesystem read-only (default false).
    pub read_only_root: bool,
    /// Set `no-new-privileges` (default true).
    pub no_new_privileges: bool,
    /// Capabilities to drop (default `[ALL]`).
    pub drop_capabilities: Vec<String>,
    /// Docker network mode (default bridge).
    pub network_mode: NetworkMode,
    /// Hosts the agent may reach; `None` = egress not restricted,
    /// `Some([])` = no host at all. `*.example.com` matches subdomains.
    pub allowed_domains: Option<Vec<String>>,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            run_as_user: RunAsUser::Id(1000),
            read_only_root: false,
            no_new_privileges: true,
            drop_capabilities: vec!["ALL".to_owned()],
            network_mode: NetworkMode::Bridge,
            allowed_domains: None,
        }
    }
}

/// `security.runAsUser`: a numeric id, or a name (optionally `user:group`)
/// as Docker's `--user` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RunAsUser {
    /// A uid (`1000`, `"1000"`).
    Id(u32),
    /// A user name or `user:group` (`"node"`, `"1000:1000"`, `"root"`).
    Name(String),
}

impl RunAsUser {
    /// Whether this runs the agent as root (uid 0 or the name `root`), which
    /// the runner may refuse.
    pub fn is_root(&self) -> bool {
        match self {
            Self::Id(id) => *id == 0,
            Self::Name(name) => {
                let user = name.split(':').next().unwrap_or_default();
                user == "root" || user == "0"
            }
        }
    }

    fn check(&self) -> Result<(), String> {
        let Self::Name(name) = self else {
            return Ok(());
        };
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        };
        let mut parts = name.splitn(2, ':');
        let user_ok = parts.next().is_some_and(part_ok);
        let group_ok = parts.next().is_none_or(part_ok);
        if user_ok && group_ok {
            Ok(())
        } else {
            Err(format!(
                "invalid user `{name}`: expected a uid, a user name or `user:group`"
            ))
        }
    }
}

impl fmt::Display for RunAsUser {
    /// As Docker's `--user` takes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

impl<'de> Deserialize<'de> for RunAsUser {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UserVisitor;

        impl Visitor<'_> for UserVisitor {
            type Value = RunAsUser;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a uid such as 1000 or a user name")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RunAsUser, E> {
                u32::try_from(v)
                    .map(RunAsUser::Id)
                    .map_err(|_| E::custom(format!("uid {v} is out of range")))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RunAsUser, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("uid {v} cannot be negative")))
                    .and_then(|v| self.visit_u64(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RunAsUser, E> {
                if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                    v.parse()
                        .map(RunAsUser::Id)
                        .map_err(|_| E::custom(format!("uid {v} is out of range")))
                } else {
                    Ok(RunAsUser::Name(v.to_owned()))
                }
            }
        }

        deserializer.deserialize_any(UserVisitor)
    }
}

/// `security.networkMode`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NetworkMode {
    /// Docker's default bridge network.
    Bridge,
    /// No network at all.
    None,
    /// The host's network stack (no isolation; the runner may refuse it).
    Host,
    /// A user-defined Docker network, by name.
    Custom(String),
}

impl NetworkMode {
    /// The value for Docker's `NetworkMode` host setting.
    pub fn as_docker(&self) -> &str {
        match self {
            Self::Bridge => "bridge",
            Self::None => "none",
            Self::Host => "host",
            Self::Custom(name) => name,
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_docker())
    }
}

impl FromStr for NetworkMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text {
            "bridge" => Self::Bridge,
            "none" => Self::None,
            "host" => Self::Host,
            name if is_docker_name(name) => Self::Custom(name.to_owned()),
            other => {
                return Err(format!(
                    "invalid network mode `{other}`: use bridge, none, host or the name of a \
                     Docker network ([A-Za-z0-9][A-Za-z0-9_.-]*)"
                ));
            }
        })
    }
}

impl<'de> Deserialize<'de> for NetworkMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

fn is_docker_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// *ext* `test:` — how the project's tests run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestConfig {
    /// Shell command running the tests; success is exit status 0.
    pub command: String,
    /// Shell command printing the coverage percentage, for `minCoverage` gates.
    pub coverage: Option<String>,
}

/// *ext* `agent:` — defaults for the agent CLI.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentDefaults {
    /// `--model`.
    pub model: Option<String>,
    /// `--max-turns` (not a hard cap in Claude Code).
    pub max_turns: Option<u32>,
    /// `--permission-mode`.
    pub permission_mode: Option<PermissionMode>,
    /// *ext* — the riskiest tool this project may grant; `None`: no cap.
    pub max_tool_risk: Option<ToolRisk>,
}

/// How much harm a tool can do with the workspace and beyond it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolRisk {
    /// Reads the workspace: `Read`, `Glob`, `Grep`, `LS`, `NotebookRead`,
    /// `TodoWrite`.
    Low,
    /// Changes the workspace: `Write`, `Edit`, `MultiEdit`, `NotebookEdit`,
    /// `Task` (sub-agents, with the tools granted anyway).
    Medium,
    /// Runs programs or reaches the network: `Bash`, `WebFetch`,
    /// `WebSearch`, `Browser`, and every MCP tool (`mcp__…`).
    High,
}

impl ToolRisk {
    /// The risk of a tool name (a permission specifier does not change it);
    /// `None` for a name that is not a tool.
    pub fn of(tool: &str) -> Option<Self> {
        if tool.starts_with("mcp__") {
            return check_tool(tool).ok().map(|()| Self::High);
        }
        let base = tool.split_once('(').map_or(tool, |(base, _)| base);
        Some(match base {
            "Read" | "Glob" | "Grep" | "LS" | "NotebookRead" | "TodoWrite" => Self::Low,
            "Write" | "Edit" | "MultiEdit" | "NotebookEdit" | "Task" => Self::Medium,
            "Bash" | "WebFetch" | "WebSearch" | "Browser" => Self::High,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

impl fmt::Display for ToolRisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tools one run is given ([`ContainerConfig::tool_grant`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolGrant {
    /// `--allowedTools`; `None` when nothing restricts them (the agent's
    /// defaults apply).
    pub allowed: Option<Vec<String>>,
    /// `--disallowedTools`: the project's list, plus every known tool above
    /// `agent.maxToolRisk`.
    pub disallowed: Vec<String>,
    /// The cap applied, if any.
    pub max_risk: Option<ToolRisk>,
}

/// Claude Code's `--permission-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PermissionMode {
    /// `default`
    Default,
    /// `acceptEdits`
    AcceptEdits,
    /// `bypassPermissions` (refused by the CLI as root)
    BypassPermissions,
    /// `plan`
    Plan,
}

impl PermissionMode {
    /// The value as the CLI takes it.
    pub fn as_cli_arg(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::AcceptEdits => "acceptEdits",
            Self::BypassPermissions => "bypassPermissions",
            Self::Plan => "plan",
        }
    }
}

impl ContainerConfig {
    /// Names of the `${NAME}` references in `env` and in every MCP server's
    /// `env`, sorted, each once. Resolving them is the runner's job.
    pub fn secret_refs(&self) -> Vec<String> {
        let values = self
            .env
            .values()
            .chain(self.mcp_servers.iter().flat_map(|s| s.env.values()));
        let names: BTreeSet<&str> = values
            .flat_map(|v| template::references(v).into_iter().map(|r| r.name))
            .collect();
        names.into_iter().map(str::to_owned).collect()
    }

    /// Whether `tool` is within `agent.maxToolRisk`.
    fn check_risk(&self, tool: &str) -> Result<(), String> {
        let (Some(cap), Some(risk)) = (self.agent.max_tool_risk, ToolRisk::of(tool)) else {
            return Ok(());
        };
        if risk <= cap {
            Ok(())
        } else {
            Err(format!(
                "tool `{tool}` is {risk} risk, above the project's agent.maxToolRisk `{cap}`"
            ))
        }
    }

    /// The tools a run of this project is given: `tools.allowed` (or, when
    /// only `agent.maxToolRisk` restricts them, every known tool within the
    /// cap, plus the MCP servers' tools when the cap is `high`), without
    /// `tools.disallowed`; every known tool above the cap is disallowed
    /// outright.
    ///
    /// # Errors
    ///
    /// An unknown tool, or one above the cap (what validation reports, for a
    /// configuration that skipped it).
    pub fn tool_grant(&self) -> Result<ToolGrant, String> {
        let cap = self.agent.max_tool_risk;
        let allowed = match (&self.tools.allowed, cap) {
            (Some(list), _) => Some(list.clone()),
            (None, Some(cap)) => {
                let mut list: Vec<String> = KNOWN_TOOLS
                    .iter()
                    .filter(|t| ToolRisk::of(t).is_some_and(|r| r <= cap))
                    .map(|t| (*t).to_owned())
                    .collect();
                if cap >= ToolRisk::High {
                    list.extend(self.mcp_servers.iter().map(|s| format!("mcp__{}", s.name)));
                }
                Some(list)
            }
            (None, None) => None,
        };
        for tool in allowed.iter().flatten() {
            check_tool(tool).and_then(|()| self.check_risk(tool))?;
        }
        let mut disallowed = self.tools.disallowed.clone();
        if let Some(cap) = cap {
            for tool in KNOWN_TOOLS {
                if ToolRisk::of(tool).is_some_and(|r| r > cap)
                    && !disallowed.iter().any(|d| d == tool)
                {
                    disallowed.push((*tool).to_owned());
                }
            }
        }
        let allowed = allowed.map(|list| {
            list.into_iter()
                .filter(|t| !disallowed.contains(t))
                .collect::<Vec<_>>()
        });
        Ok(ToolGrant {
            allowed,
            disallowed,
            max_risk: cap,
        })
    }

    /// The MCP server called `name`.
    pub fn mcp_server(&self, name: &str) -> Option<&McpServer> {
        self.mcp_servers.iter().find(|s| s.name == name)
    }

    /// Checks the rules serde cannot express.
    pub(crate) fn validate(&self, issues: &mut Issues<'_>) {
        if let Some(name) = &self.name
            && !is_docker_name(name)
        {
            issues.field(
                "name",
                format!(
                    "invalid project name `{name}`: use letters, digits, `_`, `.` and `-`, \
                         starting with a letter or digit"
                ),
            );
        }
        if let Some(image) = &self.base_image {
            check_image(image, "baseImage", issues);
        }
        self.validate_tools(issues);
        self.validate_mcp_servers(issues);
        self.validate_resources(issues);
        self.validate_security(issues);
        self.validate_limits(issues);
        check_env(&self.env, "env", issues);
        if let Some(test) = &self.test {
            if test.command.trim().is_empty() {
                issues.field("test.command", "the test command is empty");
            }
            if test
                .coverage
                .as_deref()
                .is_some_and(|c| c.trim().is_empty())
            {
                issues.field("test.coverage", "the coverage command is empty");
            }
        }
        if self
            .agent
            .model
            .as_deref()
            .is_some_and(|m| m.trim().is_empty())
        {
            issues.field("agent.model", "the model name is empty");
        }
        if self.agent.max_turns == Some(0) {
            issues.field("agent.maxTurns", "must be at least 1");
        }
    }

    fn validate_tools(&self, issues: &mut Issues<'_>) {
        let allowed = self.tools.allowed.as_deref().unwrap_or_default();
        for (i, tool) in allowed.iter().enumerate() {
            if let Err(message) = check_tool(tool) {
                issues.field(format!("tools.allowed[{i}]"), message);
            } else if let Err(message) = self.check_risk(tool) {
                issues.field(format!("tools.allowed[{i}]"), message);
            }
        }
        for (i, tool) in self.tools.disallowed.iter().enumerate() {
            if let Err(message) = check_tool(tool) {
                issues.field(format!("tools.disallowed[{i}]"), message);
            } else if allowed.contains(tool) {
                issues.field(
                    format!("tools.disallowed[{i}]"),
                    format!("tool `{tool}` is both allowed and disallowed"),
                );
            }
        }
    }

    fn validate_mcp_servers(&self, issues: &mut Issues<'_>) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, server) in self.mcp_servers.iter().enumerate() {
            let path = format!("mcpServers[{i}]");
            if let Err(message) = check_mcp_server_name(&server.name) {
                issues.field(format!("{path}.name"), message);
            } else if let Some(first) = seen.insert(&server.name, i) {
                let first_line = issues
                    .map()
                    .field(&format!("mcpServers[{first}].name"))
                    .map_or(String::new(), |p| format!(" (first on line {})", p.line));
                issues.field(
                    format!("{path}.name"),
                    format!("duplicate MCP server `{}`{first_line}", server.name),
                );
            }
            if server
                .command
                .as_deref()
                .is_some_and(|c| c.trim().is_empty())
            {
                issues.field(format!("{path}.command"), "the command is empty");
            }
            if server.command.is_none() && !server.args.is_empty() {
                issues.field(format!("{path}.args"), "`args` needs a `command`");
            }
            check_env(&server.env, &format!("{path}.env"), issues);
        }
    }

    fn validate_resources(&self, issues: &mut Issues<'_>) {
        let r = &self.resources;
        if r.memory < MIN_MEMORY {
            issues.field(
                "resources.memory",
                format!(
                    "{} bytes is too little: at least 6Mi (Docker's minimum); write units, e.g. `2Gi`",
                    r.memory.bytes()
                ),
            );
        }
        if r.timeout.is_zero() {
            issues.field("resources.timeout", "must be greater than zero");
        }
        if r.cpu.is_zero() {
            issues.field("resources.cpu", "must be greater than zero");
        }
        if r.pids == 0 {
            issues.field("resources.pids", "must be at least 1");
        }
    }

    fn validate_limits(&self, issues: &mut Issues<'_>) {
        if self.limits.max_concurrent == Some(0) {
            issues.field("limits.maxConcurrent", "must be at least 1");
        }
        if self.limits.max_starts_per_minute == Some(0) {
            issues.field("limits.maxStartsPerMinute", "must be at least 1");
        }
    }

    fn validate_security(&self, issues: &mut Issues<'_>) {
        let s = &self.security;
        if let Err(message) = s.run_as_user.check() {
            issues.field("security.runAsUser", message);
        }
        for (i, cap) in s.drop_capabilities.iter().enumerate() {
            let name = cap.strip_prefix("CAP_").unwrap_or(cap);
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphabetic() || c == '_') {
                issues.field(
                    format!("security.dropCapabilities[{i}]"),
                    format!(
                        "invalid capability `{cap}`: expected e.g. ALL, NET_RAW, CAP_SYS_ADMIN"
                    ),
                );
            }
        }
        let domains = s.allowed_domains.as_deref().unwrap_or_default();
        for (i, domain) in domains.iter().enumerate() {
            if !is_domain_pattern(domain) {
                issues.field(
                    format!("security.allowedDomains[{i}]"),
                    format!(
                        "invalid domain `{domain}`: expected a host name such as `github.com` or \
                         `*.github.com`, without scheme, port or path"
                    ),
                );
            }
        }
        if s.network_mode == NetworkMode::None && !domains.is_empty() {
            issues.field(
                "security.allowedDomains",
                "allowedDomains has no effect with networkMode: none",
            );
        }
    }
}

/// A Docker image reference: non-empty, no blanks.
pub(crate) fn check_image(image: &str, path: &str, issues: &mut Issues<'_>) {
    if image.trim().is_empty() || image.chars().any(char::is_whitespace) {
        issues.field(path, format!("invalid image reference `{image}`"));
    }
}

/// `env:` keys are identifiers (values are free text).
fn check_env(env: &BTreeMap<String, String>, path: &str, issues: &mut Issues<'_>) {
    for key in env.keys() {
        if !template::is_identifier(key) {
            issues.field(
                format!("{path}.{key}"),
                format!("invalid environment variable name `{key}`"),
            );
        }
    }
}

/// MCP server names: letters, digits, `_` and `-`.
pub(crate) fn check_mcp_server_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        Ok(())
    } else {
        Err(format!(
            "invalid MCP server name `{name}`: use letters, digits, `_` and `-`"
        ))
    }
}

/// `github.com`, `api.linear.app`, `*.example.com`.
fn is_domain_pattern(domain: &str) -> bool {
    let host = domain.strip_prefix("*.").unwrap_or(domain);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Checks one tool name: see the module docs for the accepted forms.
pub(crate) fn check_tool(tool: &str) -> Result<(), String> {
    if tool.trim().is_empty() {
        return Err("empty tool name".to_owned());
    }
    if let Some(rest) = tool.strip_prefix("mcp__") {
        let ok = !rest.is_empty()
            && !rest.starts_with('_')
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '*'));
        return if ok {
            Ok(())
        } else {
            Err(format!(
                "invalid MCP tool `{tool}`: expected `mcp__<server>` or `mcp__<server>__<tool>`"
            ))
        };
    }
    let base = match tool.split_once('(') {
        Some((base, specifier)) => {
            let inner = specifier.strip_suffix(')');
            if inner.is_none_or(|s| s.trim().is_empty()) {
                return Err(format!(
                    "invalid tool pattern `{tool}`: expected `{base}(<specifier>)`"
                ));
            }
            base
        }
        None => tool,
    };
    if KNOWN_TOOLS.contains(&base) {
        return Ok(());
    }
    let hint = did_you_mean(base, KNOWN_TOOLS.iter().copied())
        .map_or(String::new(), |s| format!(" (did you mean `{s}`?)"));
    Err(format!(
        "unknown tool `{base}`{hint}; known tools: {}, `Tool(<specifier>)` and `mcp__<server>[__<tool>]`",
        KNOWN_TOOLS.join(", ")
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::{ConfigError, parse_container};
    use super::*;

    /// The seed's "Container Configuration", verbatim.
    pub(crate) const SEED: &str = r#"name: my-project
baseImage: claude-base:latest

tools:
  allowed:
    - Read
    - Write
    - Edit
    - Bash
    - Browser

mcpServers:
  - name: github
    env:
      GITHUB_TOKEN: ${GITHUB_TOKEN}
  - name: linear
    env:
      LINEAR_API_KEY: ${LINEAR_API_KEY}

resources:
  memory: 2Gi
  timeout: 600s
  cpu: "2"

security:
  runAsUser: 1000
  readOnlyRoot: false
  noNewPrivileges: true
  dropCapabilities:
    - ALL
  networkMode: bridge
  allowedDomains:
    - github.com
    - api.linear.app
"#;

    fn parse(text: &str) -> Result<ContainerConfig, ConfigError> {
        parse_container(".claude/container.yaml", text)
    }

    /// Parses `text`, expecting an error at `line` on `field` whose message
    /// contains `needle`.
    fn expect_error(text: &str, line: usize, field: &str, needle: &str) -> ConfigError {
        let err = parse(text).expect_err("expected an error");
        assert_eq!(err.file, ".claude/container.yaml");
        assert_eq!(err.line, Some(line), "{err}");
        assert_eq!(err.field.as_deref(), Some(field), "{err}");
        assert!(err.message.contains(needle), "{err}");
        err
    }

    #[test]
    fn seed_example_parses() {
        let c = parse(SEED).unwrap();
        assert_eq!(c.name.as_deref(), Some("my-project"));
        assert_eq!(c.base_image.as_deref(), Some("claude-base:latest"));
        assert_eq!(
            c.tools.allowed.as_deref().unwrap(),
            ["Read", "Write", "Edit", "Bash", "Browser"]
        );
        assert_eq!(c.mcp_servers.len(), 2);
        assert_eq!(c.mcp_servers[0].env["GITHUB_TOKEN"], "${GITHUB_TOKEN}");
        assert_eq!(c.mcp_server("linear").unwrap().command, None);
        assert_eq!(c.resources.memory, MemorySize::from_bytes(2 << 30));
        assert_eq!(c.resources.timeout, DurationSpec::from_secs(600));
        assert_eq!(c.resources.cpu, CpuCount::from_millis(2_000));
        assert_eq!(c.resources.pids, 256);
        assert_eq!(c.security.run_as_user, RunAsUser::Id(1000));
        assert!(!c.security.read_only_root);
        assert!(c.security.no_new_privileges);
        assert_eq!(c.security.drop_capabilities, ["ALL"]);
        assert_eq!(c.security.network_mode, NetworkMode::Bridge);
        assert_eq!(
            c.security.allowed_domains.as_deref().unwrap(),
            ["github.com", "api.linear.app"]
        );
        assert_eq!(c.secret_refs(), ["GITHUB_TOKEN", "LINEAR_API_KEY"]);
    }

    #[test]
    fn limits_parse_and_are_checked() {
        let c =
            parse("limits: {maxConcurrent: 2, maxStartsPerMinute: 30, whenOverBudget: refuse}\n")
                .unwrap();
        assert_eq!(c.limits.max_concurrent, Some(2));
        assert_eq!(c.limits.max_starts_per_minute, Some(30));
        assert_eq!(c.limits.when_over_budget, Some(OverBudgetPolicy::Refuse));
        assert_eq!(parse("").unwrap().limits, ProjectLimits::default());
        expect_error(
            "limits:\n  maxConcurrent: 0\n",
            2,
            "limits.maxConcurrent",
            "at least 1",
        );
        expect_error(
            "limits:\n  whenOverBudget: later\n",
            2,
            "limits.whenOverBudget",
            "later",
        );
        expect_error(
            "limits:\n  maxConcurent: 2\n",
            2,
            "limits.maxConcurent",
            "expected one of maxConcurrent",
        );
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(parse("").unwrap(), ContainerConfig::default());
        assert_eq!(
            parse("# nothing yet\n").unwrap(),
            ContainerConfig::default()
        );
        let d = ContainerConfig::default();
        assert_eq!(d.resources, Resources::default());
        assert_eq!(d.security.drop_capabilities, ["ALL"]);
        assert!(d.security.no_new_privileges);
        assert_eq!(d.tools.allowed, None);
    }

    #[test]
    fn extensions_parse() {
        let c = parse(
            "tools:\n  allowed: [Read, 'Bash(git diff:*)', mcp__github, mcp__github__get_issue]\n  \
             disallowed: [WebFetch]\n\
             mcpServers:\n  - name: custom-x\n    command: npx\n    args: [-y, '@acme/mcp']\n    env: {TOKEN: 'Bearer ${X_TOKEN}'}\n\
             resources: {pids: 64, cpu: 500m, memory: 512Mi, timeout: 1h30m}\n\
             security: {runAsUser: node, networkMode: ccs-agents, allowedDomains: ['*.github.com']}\n\
             env: {LOG_LEVEL: debug, PORT: 8080, API_KEY: '${API_KEY}'}\n\
             test: {command: cargo test, coverage: cargo llvm-cov --summary-only}\n\
             agent: {model: sonnet, maxTurns: 10, permissionMode: acceptEdits}\n",
        )
        .unwrap();
        assert_eq!(c.tools.disallowed, ["WebFetch"]);
        assert_eq!(c.mcp_servers[0].args, ["-y", "@acme/mcp"]);
        assert_eq!(c.resources.pids, 64);
        assert_eq!(c.resources.cpu, CpuCount::from_millis(500));
        assert_eq!(c.security.run_as_user, RunAsUser::Name("node".into()));
        assert_eq!(
            c.security.network_mode,
            NetworkMode::Custom("ccs-agents".into())
        );
        assert_eq!(c.security.network_mode.as_docker(), "ccs-agents");
        assert_eq!(c.env["PORT"], "8080");
        assert_eq!(c.test.as_ref().unwrap().command, "cargo test");
        assert_eq!(c.agent.max_turns, Some(10));
        assert_eq!(c.agent.permission_mode, Some(PermissionMode::AcceptEdits));
        assert_eq!(PermissionMode::AcceptEdits.as_cli_arg(), "acceptEdits");
        assert_eq!(c.secret_refs(), ["API_KEY", "X_TOKEN"]);
        // Unset security keys keep their defaults.
        assert!(c.security.no_new_privileges);
        assert_eq!(c.security.drop_capabilities, ["ALL"]);
    }

    #[test]
    fn tool_risks() {
        assert_eq!(ToolRisk::of("Read"), Some(ToolRisk::Low));
        assert_eq!(ToolRisk::of("Read(src/**)"), Some(ToolRisk::Low));
        assert_eq!(ToolRisk::of("Edit"), Some(ToolRisk::Medium));
        assert_eq!(ToolRisk::of("Bash(git diff:*)"), Some(ToolRisk::High));
        assert_eq!(ToolRisk::of("mcp__github__get_issue"), Some(ToolRisk::High));
        assert_eq!(ToolRisk::of("Teleport"), None);
        assert!(ToolRisk::Low < ToolRisk::Medium && ToolRisk::Medium < ToolRisk::High);
        // Every known tool has a risk.
        for tool in KNOWN_TOOLS {
            assert!(ToolRisk::of(tool).is_some(), "{tool}");
        }
    }

    #[test]
    fn max_tool_risk_refuses_riskier_tools() {
        let err = expect_error(
            "tools:\n  allowed: [Read, Edit, Bash]\nagent:\n  maxToolRisk: medium\n",
            2,
            "tools.allowed[2]",
            "is high risk, above the project's agent.maxToolRisk `medium`",
        );
        assert!(err.message.contains("`Bash`"), "{err}");
        expect_error(
            "agent:\n  maxToolRisk: extreme\n",
            2,
            "agent.maxToolRisk",
            "extreme",
        );
        let c = parse("tools:\n  allowed: [Read, Grep]\nagent: {maxToolRisk: low}\n").unwrap();
        assert_eq!(c.agent.max_tool_risk, Some(ToolRisk::Low));
    }

    #[test]
    fn tool_grant_from_lists_and_cap() {
        // Nothing restricts: the agent's defaults.
        let g = ContainerConfig::default().tool_grant().unwrap();
        assert_eq!(g.allowed, None);
        assert!(g.disallowed.is_empty());
        // An explicit list, minus the disallowed ones.
        let c = parse("tools: {allowed: [Read, Bash], disallowed: [WebFetch]}\n").unwrap();
        let g = c.tool_grant().unwrap();
        assert_eq!(g.allowed.unwrap(), ["Read", "Bash"]);
        assert_eq!(g.disallowed, ["WebFetch"]);
        // A cap alone: every known tool within it; the rest disallowed.
        let c = parse("agent: {maxToolRisk: medium}\ntools: {disallowed: [Task]}\n").unwrap();
        let g = c.tool_grant().unwrap();
        let allowed = g.allowed.unwrap();
        assert!(allowed.contains(&"Edit".to_owned()), "{allowed:?}");
        assert!(!allowed.contains(&"Task".to_owned()), "{allowed:?}");
        assert!(!allowed.contains(&"Bash".to_owned()), "{allowed:?}");
        for high in ["Bash", "WebFetch", "WebSearch", "Browser"] {
            assert!(
                g.disallowed.contains(&high.to_owned()),
                "{:?}",
                g.disallowed
            );
        }
        assert_eq!(g.max_risk, Some(ToolRisk::Medium));
        // A high cap grants the MCP servers' tools too.
        let c =
            parse("agent: {maxToolRisk: high}\nmcpServers:\n  - name: custom\n    command: x\n")
                .unwrap();
        let allowed = c.tool_grant().unwrap().allowed.unwrap();
        assert!(allowed.contains(&"mcp__custom".to_owned()), "{allowed:?}");
        assert!(allowed.contains(&"Bash".to_owned()), "{allowed:?}");
        // What validation refuses, the grant refuses too.
        let mut c = ContainerConfig::default();
        c.tools.allowed = Some(vec!["Teleport".into()]);
        assert!(
            c.tool_grant()
                .unwrap_err()
                .contains("unknown tool `Teleport`")
        );
        c.tools.allowed = Some(vec!["Bash".into()]);
        c.agent.max_tool_risk = Some(ToolRisk::Low);
        assert!(c.tool_grant().unwrap_err().contains("above"));
    }

    #[test]
    fn root_user_parses_and_is_flagged() {
        for (text, root) in [
            ("0", true),
            ("\"0\"", true),
            ("root", true),
            ("root:root", true),
            ("\"0:0\"", true),
            ("1000", false),
            ("\"1000:1000\"", false),
            ("node", false),
        ] {
            let c = parse(&format!("security:\n  runAsUser: {text}\n")).unwrap();
            assert_eq!(c.security.run_as_user.is_root(), root, "{text}");
        }
        assert_eq!(RunAsUser::Id(0).to_string(), "0");
    }

    #[test]
    fn network_modes() {
        for (text, mode) in [
            ("bridge", NetworkMode::Bridge),
            ("none", NetworkMode::None),
            ("host", NetworkMode::Host),
            ("my_net.1", NetworkMode::Custom("my_net.1".into())),
        ] {
            let c = parse(&format!("security:\n  networkMode: {text}\n")).unwrap();
            assert_eq!(c.security.network_mode, mode);
            assert_eq!(mode.to_string(), text);
        }
        expect_error(
            "security:\n  networkMode: \"container:abc\"\n",
            2,
            "security.networkMode",
            "invalid network mode",
        );
    }

    #[test]
    fn unknown_keys_are_errors_at_every_level() {
        expect_error(
            "name: x\nresorces:\n  memory: 1Gi\n",
            2,
            "resorces",
            "unknown field `resorces`",
        );
        expect_error(
            "security:\n  noNewPrivilege: true\n",
            2,
            "security.noNewPrivilege",
            "unknown field `noNewPrivilege`",
        );
        expect_error(
            "mcpServers:\n  - name: a\n    environment: {}\n",
            3,
            "mcpServers[0].environment",
            "unknown field",
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        expect_error(
            "security:\n  readOnlyRoot: yes\n",
            2,
            "security.readOnlyRoot",
            "",
        );
        expect_error("tools:\n  allowed: Read\n", 2, "tools.allowed", "");
        expect_error("resources:\n  pids: -1\n", 2, "resources.pids", "");
        expect_error(
            "resources:\n  memory: 2gb\n",
            2,
            "resources.memory",
            "unknown unit `gb`",
        );
        expect_error(
            "resources:\n  timeout: soon\n",
            2,
            "resources.timeout",
            "invalid duration",
        );
        expect_error(
            "resources:\n  cpu: lots\n",
            2,
            "resources.cpu",
            "invalid CPU count",
        );
        expect_error(
            "security:\n  runAsUser: -1\n",
            2,
            "security.runAsUser",
            "negative",
        );
        expect_error(
            "agent:\n  permissionMode: yolo\n",
            2,
            "agent.permissionMode",
            "yolo",
        );
    }

    #[test]
    fn unknown_tools_are_named_with_their_line() {
        let err = expect_error(
            "tools:\n  allowed:\n    - Read\n    - Reed\n",
            4,
            "tools.allowed[1]",
            "unknown tool `Reed` (did you mean `Read`?)",
        );
        assert_eq!(err.column, Some(7));
        expect_error(
            "tools:\n  disallowed: [Rm]\n",
            2,
            "tools.disallowed[0]",
            "unknown tool `Rm`",
        );
        expect_error(
            "tools:\n  allowed: ['']\n",
            2,
            "tools.allowed[0]",
            "empty tool name",
        );
        expect_error(
            "tools:\n  allowed: ['Bash()']\n",
            2,
            "tools.allowed[0]",
            "invalid tool pattern",
        );
        expect_error(
            "tools:\n  allowed: ['Bash(ls']\n",
            2,
            "tools.allowed[0]",
            "invalid tool pattern",
        );
        expect_error(
            "tools:\n  allowed: ['Shell(ls)']\n",
            2,
            "tools.allowed[0]",
            "unknown tool `Shell`",
        );
        expect_error(
            "tools:\n  allowed: [mcp__]\n",
            2,
            "tools.allowed[0]",
            "invalid MCP tool",
        );
        expect_error(
            "tools:\n  allowed: [Read]\n  disallowed: [Read]\n",
            3,
            "tools.disallowed[0]",
            "both allowed and disallowed",
        );
    }

    #[test]
    fn every_known_tool_and_pattern_is_accepted() {
        for tool in KNOWN_TOOLS {
            assert_eq!(check_tool(tool), Ok(()));
        }
        for tool in [
            "Bash(npm run test:*)",
            "Read(./src/**)",
            "WebFetch(domain:github.com)",
            "mcp__linear",
            "mcp__github__*",
        ] {
            assert_eq!(check_tool(tool), Ok(()), "{tool}");
        }
    }

    #[test]
    fn resource_limits_must_be_positive() {
        expect_error(
            "resources:\n  memory: 0\n",
            2,
            "resources.memory",
            "at least 6Mi",
        );
        expect_error(
            "resources:\n  memory: 512\n",
            2,
            "resources.memory",
            "write units",
        );
        expect_error(
            "resources:\n  timeout: 0s\n",
            2,
            "resources.timeout",
            "greater than zero",
        );
        expect_error(
            "resources:\n  timeout: 0\n",
            2,
            "resources.timeout",
            "greater than zero",
        );
        expect_error(
            "resources:\n  cpu: 0\n",
            2,
            "resources.cpu",
            "greater than zero",
        );
        expect_error("resources:\n  pids: 0\n", 2, "resources.pids", "at least 1");
    }

    #[test]
    fn security_values_are_checked() {
        expect_error(
            "security:\n  runAsUser: 'a b'\n",
            2,
            "security.runAsUser",
            "invalid user",
        );
        expect_error(
            "security:\n  runAsUser: 'x:'\n",
            2,
            "security.runAsUser",
            "invalid user",
        );
        expect_error(
            "security:\n  dropCapabilities: [ALL, 'NET RAW']\n",
            2,
            "security.dropCapabilities[1]",
            "invalid capability",
        );
        expect_error(
            "security:\n  allowedDomains:\n    - github.com\n    - https://api.linear.app\n",
            4,
            "security.allowedDomains[1]",
            "invalid domain",
        );
        expect_error(
            "security:\n  networkMode: none\n  allowedDomains: [github.com]\n",
            3,
            "security.allowedDomains",
            "no effect",
        );
        // An empty allow-list is meaningful: no host at all.
        let c = parse("security:\n  allowedDomains: []\n").unwrap();
        assert_eq!(c.security.allowed_domains, Some(vec![]));
    }

    #[test]
    fn mcp_servers_are_checked() {
        expect_error(
            "mcpServers:\n  - name: github\n  - name: github\n",
            3,
            "mcpServers[1].name",
            "duplicate MCP server `github` (first on line 2)",
        );
        expect_error(
            "mcpServers:\n  - name: 'my server'\n",
            2,
            "mcpServers[0].name",
            "invalid MCP server name",
        );
        expect_error(
            "mcpServers:\n  - name: x\n    args: [a]\n",
            3,
            "mcpServers[0].args",
            "needs a `command`",
        );
        expect_error(
            "mcpServers:\n  - name: x\n    command: ' '\n",
            3,
            "mcpServers[0].command",
            "empty",
        );
        expect_error(
            "mcpServers:\n  - env: {}\n",
            2,
            "mcpServers[0]",
            "missing field `name`",
        );
        expect_error(
            "mcpServers:\n  - name: x\n    env:\n      BAD-NAME: v\n",
            4,
            "mcpServers[0].env.BAD-NAME",
            "invalid environment variable name",
        );
    }

    #[test]
    fn other_checks() {
        expect_error("name: 'my project'\n", 1, "name", "invalid project name");
        expect_error("baseImage: ''\n", 1, "baseImage", "invalid image reference");
        expect_error(
            "env:\n  OK: 1\n  1BAD: x\n",
            3,
            "env.1BAD",
            "invalid environment variable name",
        );
        expect_error("test:\n  command: ''\n", 2, "test.command", "empty");
        expect_error(
            "test:\n  command: make\n  coverage: ''\n",
            3,
            "test.coverage",
            "empty",
        );
        expect_error(
            "test:\n  coverage: x\n",
            1,
            "test",
            "missing field `command`",
        );
        expect_error("agent:\n  maxTurns: 0\n", 2, "agent.maxTurns", "at least 1");
        expect_error("agent:\n  model: ''\n", 2, "agent.model", "empty");
    }

    #[test]
    fn env_values_that_are_not_scalars_are_errors() {
        expect_error("env:\n  A: [1, 2]\n", 2, "env.A", "");
        expect_error("env:\n  A:\n", 2, "env.A", "");
    }
}
