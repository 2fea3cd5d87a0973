//! How an agent runs: the runner interface and its implementations.
//!
//! A runner starts the agent command for one [`RunSpec`] in a workspace of
//! its own, streams every line it prints to the caller as it comes, and
//! stops it when told to. It does not interpret the output: the caller
//! ([`crate::jobs::execute`]) parses the stream-json lines
//! ([`stream_json`]), records them, and decides the outcome. Timeouts,
//! cancellation and budget stops are all the same thing to a runner: the
//! `stop` token fires and the agent (with everything it started) is killed.
//!
//! * [`process::ProcessRunner`] — a child process in a temporary workspace,
//!   inside a bubblewrap [`sandbox`] (`--runner process`, the default) or,
//!   for trusted local use only, with no isolation (`--runner host`).
//! * [`docker::DockerRunner`] — a locked-down container per run (bollard),
//!   with [`egress_proxy`] when the project restricts egress and
//!   [`mcp_catalog`] for the agent's MCP servers.
//!
//! Both return the files the agent changed in its copy of the project
//! ([`workspace::changed_files`]) and leave the project itself untouched.
//! When the spec carries [`checks::Checks`] (a workflow's validation gate),
//! both run the project's test commands in that copy after the agent. For a
//! workflow step, both start from the previous step's changes and pack their
//! own for the next ([`changes`]).

pub mod changes;
pub mod checks;
pub mod docker;
pub mod egress_proxy;
pub mod lines;
pub mod mcp_catalog;
pub mod orphans;
pub mod process;
pub mod sandbox;
pub mod sandbox_init;
pub mod session;
pub mod stream_json;
pub mod workspace;

use std::path::PathBuf;
use std::time::Duration;

use crate::project_config::ContainerConfig;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Everything a runner needs to run one attempt of one execution.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Execution id and attempt number: names the workspace and labels.
    pub execution_id: String,
    pub attempt: i64,
    /// The prompt, written on the agent's stdin (`-p` reads it there).
    pub prompt: String,
    /// The project directory; the runner copies it, never writes it.
    pub project_dir: PathBuf,
    /// Agent command-line options.
    pub agent: AgentOptions,
    /// Extra environment for the agent (already resolved; may hold secrets,
    /// so never log it).
    pub env: Vec<(String, String)>,
    /// The worker running this attempt (labels its container).
    pub worker_id: String,
    /// The project's name (labels its container).
    pub project: String,
    /// The project's parsed `.claude/container.yaml` (the defaults when it
    /// has none): image, limits, isolation. The process runner applies only
    /// what the job already turned into `agent` and `env`.
    pub container: ContainerConfig,
    /// Secret values in `env` and the MCP config: the job masks them in
    /// everything it stores. Never log them.
    pub mask: Vec<String>,
    /// The project's checks to run after the agent when it changed files
    /// (a workflow's `safety.validation` gate); see [`checks`].
    pub checks: Option<checks::Checks>,
    /// A workflow step's predecessor's changes ([`changes`]), applied to
    /// the copy of the project before the agent starts.
    pub base_changes: Option<std::sync::Arc<Vec<u8>>>,
    /// Pack the workspace's changes after a clean exit, for the next step
    /// (workflow steps).
    pub keep_changes: bool,
    /// The longest output line passed on; longer ones are cut
    /// ([`lines::BoundedLines`]).
    pub max_line_bytes: usize,
    /// A Claude Code session to continue ([`session`]): placed under the
    /// run's `HOME` before the agent starts with `--resume`.
    pub resume: Option<std::sync::Arc<session::Session>>,
}

/// Options turned into the agent's command-line arguments.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    pub model: Option<String>,
    pub max_turns: Option<u32>,
    /// `tools.allowed`: when set, the **only** tools the agent has
    /// (`--tools` with their names, `--allowedTools` to pre-approve them,
    /// permission specifiers such as `Bash(git *)` included). `None`: the
    /// CLI's defaults.
    pub allowed_tools: Option<Vec<String>>,
    pub disallowed_tools: Vec<String>,
    pub permission_mode: Option<String>,
    pub append_system_prompt: Option<String>,
    /// Contents of the `--mcp-config` file, when the project uses MCP.
    pub mcp_config: Option<serde_json::Value>,
    pub session_id: Option<String>,
    /// `--resume`: the session to continue (instead of `--session-id`).
    pub resume: Option<String>,
    /// `--max-budget-usd`: the CLI's own stop, a second line of defence
    /// beside ccs's ceiling stop (the run's ceiling).
    pub max_budget_usd: Option<f64>,
}

impl AgentOptions {
    /// The Claude Code CLI arguments for a headless stream-json run; the
    /// prompt is not among them: the runner writes it on the agent's stdin
    /// (`-p` without a prompt argument reads stdin), so it never shows in
    /// `ps` or the container's configuration. `mcp_config_path` is where
    /// the runner put the MCP config file.
    ///
    /// Every list is passed as one `--flag=a,b` argument: the CLI's list
    /// options are variadic and would otherwise swallow what follows.
    /// `--strict-mcp-config` is always given, so the run has the MCP
    /// servers of its `--mcp-config` and no others (none from the
    /// workspace's `.mcp.json` or the user's settings).
    /// `--include-partial-messages` makes the CLI print the API's
    /// `message_delta` usage as it streams: its `assistant` lines carry only
    /// the usage of `message_start` (1 output token), so without it the
    /// live cost estimate would miss every output token
    /// ([`stream_json::CostEstimator`]).
    pub fn to_args(&self, mcp_config_path: Option<&str>) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "-p".into(),
            "--output-format".into(),
            "stream-json".into(),
            "--verbose".into(),
            "--include-partial-messages".into(),
            "--strict-mcp-config".into(),
        ];
        let mut opt = |flag: &str, value: Option<String>| {
            if let Some(v) = value {
                args.push(format!("{flag}={v}"));
            }
        };
        opt("--max-turns", self.max_turns.map(|n| n.to_string()));
        opt("--model", self.model.clone());
        if let Some(allowed) = &self.allowed_tools {
            opt("--tools", Some(builtin_tool_names(allowed).join(",")));
            opt(
                "--allowedTools",
                (!allowed.is_empty()).then(|| allowed.join(",")),
            );
        }
        opt(
            "--disallowedTools",
            (!self.disallowed_tools.is_empty()).then(|| self.disallowed_tools.join(",")),
        );
        opt("--permission-mode", self.permission_mode.clone());
        opt("--append-system-prompt", self.append_system_prompt.clone());
        opt("--mcp-config", mcp_config_path.map(str::to_owned));
        match &self.resume {
            Some(id) => opt("--resume", Some(id.clone())),
            None => opt("--session-id", self.session_id.clone()),
        }
        opt(
            "--max-budget-usd",
            self.max_budget_usd
                .filter(|usd| usd.is_finite() && *usd > 0.0)
                .map(|usd| format!("{usd:.6}")),
        );
        args
    }
}

/// The built-in tools of a grant, for `--tools`: each name once, without
/// its permission specifier (`Bash(git *)` → `Bash`); MCP tools
/// (`mcp__…`) are not built-in and come from `--mcp-config`.
fn builtin_tool_names(allowed: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for tool in allowed {
        let name = tool.split('(').next().unwrap_or(tool).trim();
        if name.is_empty() || name.starts_with("mcp__") || names.iter().any(|n| n == name) {
            continue;
        }
        names.push(name.to_owned());
    }
    names
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// Not the agent's: a note of the runner about the run (an egress
    /// refusal, a capped limit), logged as a `ccs` line.
    Note,
    /// Output of the project's checks run after the agent ([`checks`]).
    Check,
}

/// One line the agent printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    pub stream: Stream,
    pub text: String,
}

/// How the agent process ended, as far as the runner can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunExit {
    /// The exit code; `None` when killed by a signal.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// The runner killed it because `stop` fired.
    pub stopped: bool,
    /// The container ran out of memory (Docker runner).
    pub oom_killed: bool,
    pub duration: Duration,
    /// Paths (relative, `/`-separated, sorted) the agent added, changed or
    /// deleted in its workspace — against the project, or for a workflow
    /// step against what the previous step left; `.git/` is not looked at.
    pub changed_files: Vec<String>,
    /// The checks run after the agent, in order; empty when none ran.
    pub checks: Vec<checks::CheckRun>,
    /// The workspace's changes packed for the next workflow step, when the
    /// spec asked for them and the agent exited 0 ([`changes::keep`]).
    pub changes: Option<Vec<u8>>,
    /// The agent's session, for a later run to resume, when the agent
    /// ended by itself and its transcript is within bounds ([`session`]).
    pub session: Option<session::Session>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The agent could not be started (missing binary, bad workspace, …).
    #[error("could not start the agent: {0}")]
    Start(String),
    /// The runner failed while the agent ran.
    #[error("runner failure: {0}")]
    Io(#[from] std::io::Error),
}

/// Something a run left on the host, with the labels that say whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// `container` or `network`; containers go first.
    pub kind: LeftoverKind,
    /// The daemon's id of it.
    pub id: String,
    /// The worker that made it.
    pub worker_id: String,
    /// The execution and attempt it ran.
    pub execution_id: String,
    pub attempt: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LeftoverKind {
    Container,
    Network,
}

/// A way to run the agent.
#[async_trait::async_trait]
pub trait Runner: Send + Sync + 'static {
    /// A short name for logs and metrics (`process`, `docker`).
    fn name(&self) -> &'static str;

    /// Runs the agent to its end, sending each output line to `lines` as it
    /// is printed. When `stop` fires, kills the agent and everything it
    /// started, then returns with `stopped: true`. Leaves nothing running
    /// and nothing on disk behind.
    async fn run(
        &self,
        spec: RunSpec,
        lines: mpsc::Sender<OutputLine>,
        stop: CancellationToken,
    ) -> Result<RunExit, RunnerError>;

    /// What runs left on the host that outlives a worker (containers,
    /// networks), whoever's they are. Runners whose runs die with their
    /// worker have none. See [`orphans`].
    async fn leftovers(&self) -> Result<Vec<Leftover>, RunnerError> {
        Ok(Vec::new())
    }

    /// Removes one leftover (and the run directory that went with it);
    /// `false` when it was already gone.
    async fn remove_leftover(&self, _leftover: &Leftover) -> Result<bool, RunnerError> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_is_the_only_tools_and_the_prompt_is_not_an_argument() {
        let options = AgentOptions {
            model: Some("sonnet".into()),
            max_turns: Some(5),
            allowed_tools: Some(vec![
                "Read".into(),
                "Bash(git status)".into(),
                "Bash(git diff *)".into(),
                "mcp__github".into(),
            ]),
            disallowed_tools: vec!["WebFetch".into()],
            permission_mode: Some("acceptEdits".into()),
            append_system_prompt: None,
            mcp_config: None,
            session_id: Some("0b5c7e1d-aaaa-4bbb-8ccc-ddddeeeeffff".into()),
            resume: None,
            max_budget_usd: Some(0.5),
        };
        assert_eq!(
            options.to_args(Some("/run/mcp.json")),
            [
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--include-partial-messages",
                "--strict-mcp-config",
                "--max-turns=5",
                "--model=sonnet",
                "--tools=Read,Bash",
                "--allowedTools=Read,Bash(git status),Bash(git diff *),mcp__github",
                "--disallowedTools=WebFetch",
                "--permission-mode=acceptEdits",
                "--mcp-config=/run/mcp.json",
                "--session-id=0b5c7e1d-aaaa-4bbb-8ccc-ddddeeeeffff",
                "--max-budget-usd=0.500000",
            ]
        );
    }

    #[test]
    fn no_grant_keeps_the_defaults_and_an_empty_one_means_no_tools() {
        let args = AgentOptions::default().to_args(None);
        assert!(!args.iter().any(|a| a.starts_with("--tools")), "{args:?}");
        assert!(
            !args.iter().any(|a| a.starts_with("--max-budget")),
            "{args:?}"
        );
        let none = AgentOptions {
            allowed_tools: Some(Vec::new()),
            ..AgentOptions::default()
        };
        let args = none.to_args(None);
        assert!(args.contains(&"--tools=".to_owned()), "{args:?}");
        assert!(
            !args.iter().any(|a| a.starts_with("--allowedTools")),
            "{args:?}"
        );
        // A resumed session is named with --resume, not --session-id.
        let resumed = AgentOptions {
            session_id: Some("a".into()),
            resume: Some("11111111-2222-4333-8444-555555555555".into()),
            ..AgentOptions::default()
        };
        let args = resumed.to_args(None);
        assert!(args.contains(&"--resume=11111111-2222-4333-8444-555555555555".to_owned()));
        assert!(
            !args.iter().any(|a| a.starts_with("--session-id")),
            "{args:?}"
        );
    }
}
