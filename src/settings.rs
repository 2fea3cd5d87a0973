//! Typed configuration, read once at start from flags and `CCS_*`
//! environment variables (clap). Every role reads [`DatabaseArgs`]; the API
//! adds [`ApiArgs`], workers add [`WorkerArgs`]. `ccs.example.env` lists
//! them all with their defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::limits::rate::{RateLimiters, RateSpec};
use crate::project_config::{Money, OverBudgetPolicy};
use crate::queue::reaper::Heartbeat;

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: sqlite://…, mysql://… or postgres://… (default: SQLite
    /// in the data directory).
    #[arg(long, env = "CCS_DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Directory for the embedded database and run workspaces.
    #[arg(long, env = "CCS_DATA_DIR", default_value = ".ccs", global = true)]
    pub data_dir: PathBuf,

    /// Connections per pool.
    #[arg(
        long,
        env = "CCS_DB_MAX_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pub db_max_connections: u32,
}

impl DatabaseArgs {
    /// The URL to connect to: the flag, or SQLite in the data directory.
    pub fn url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("ccs.db").display()),
        }
    }
}

/// How agents run: read by workers (which runner to build) and by the API
/// (which project settings to refuse at registration, [`crate::projects::RunnerPolicy`]).
#[derive(Debug, Clone, Args)]
pub struct RunnerArgs {
    /// How agents run: `process` (a bubblewrap sandbox), `docker`, or
    /// `host` (no isolation; trusted local use only).
    #[arg(long, env = "CCS_RUNNER", value_enum, default_value_t = RunnerKind::Process, global = true)]
    pub runner: RunnerKind,

    /// Accept project settings that weaken isolation: `networkMode: host`
    /// or a named network, capabilities not dropped, `noNewPrivileges:
    /// false` (refused at registration otherwise).
    #[arg(long, env = "CCS_ALLOW_UNSAFE_CONTAINER_SETTINGS", global = true)]
    pub allow_unsafe_container_settings: bool,
}

impl RunnerArgs {
    pub fn policy(&self) -> crate::projects::RunnerPolicy {
        crate::projects::RunnerPolicy {
            runner: self.runner,
            allow_unsafe: self.allow_unsafe_container_settings,
        }
    }
}

/// The API process.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Address the API listens on.
    #[arg(long, env = "CCS_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, env = "CCS_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Longest prompt accepted, in bytes (longer: 422).
    #[arg(long, env = "CCS_MAX_PROMPT_BYTES", default_value_t = 256 * 1024)]
    pub max_prompt_bytes: usize,

    /// Ingestion rate limits (per API process).
    #[command(flatten)]
    pub rate_limits: RateLimitArgs,

    /// What project settings registration refuses: set from the global
    /// [`RunnerArgs`] once parsed (not a flag of its own).
    #[arg(skip)]
    pub runner_policy: crate::projects::RunnerPolicy,

    /// The secret of the GitHub webhook (or GitHub App): deliveries to
    /// `POST /webhook/github` must be signed with it. Unset: that endpoint
    /// answers 404. See docs/github.md.
    #[arg(long, env = "CCS_GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub github_webhook_secret: Option<crate::github::WebhookSecret>,

    /// The dashboard's settings.
    #[command(flatten)]
    pub ui: crate::ui::UiConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunnerKind {
    /// The agent as a child process in a bubblewrap sandbox.
    Process,
    /// The agent in a locked-down Docker container.
    Docker,
    /// The agent as a plain child process of the worker, with no isolation:
    /// it can read what the worker reads and reach what it reaches.
    /// Trusted local use only; never the default.
    Host,
}

impl RunnerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Docker => "docker",
            Self::Host => "host",
        }
    }
}

/// A worker process.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Jobs this process runs at once.
    #[arg(long, env = "CCS_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,

    /// The agent program (and leading arguments, space-separated).
    #[arg(long, env = "CCS_AGENT_COMMAND", default_value = "claude")]
    pub agent_command: String,

    /// Wall-clock limit of a run when the project sets none.
    #[arg(long, env = "CCS_DEFAULT_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub default_timeout: Duration,

    /// How often a worker proves it is alive.
    #[arg(long, env = "CCS_HEARTBEAT_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,

    /// Heartbeats a worker may miss before its jobs are handed back.
    #[arg(long, env = "CCS_MISSED_HEARTBEATS", default_value_t = 3)]
    pub missed_heartbeats: u32,

    /// How often an idle worker looks for new jobs.
    #[arg(long, env = "CCS_POLL_INTERVAL", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,

    /// On SIGTERM, how long running jobs may take to finish before they are
    /// stopped and handed back.
    #[arg(long, env = "CCS_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Where run workspaces are made (default: <data-dir>/runs).
    #[arg(long, env = "CCS_WORK_DIR")]
    pub work_dir: Option<PathBuf>,

    /// Worker environment variables the agent may see (comma-separated).
    #[arg(
        long,
        env = "CCS_PASS_ENV",
        value_delimiter = ',',
        default_value = "ANTHROPIC_API_KEY,CLAUDE_CODE_OAUTH_TOKEN,ANTHROPIC_BASE_URL,HTTPS_PROXY,HTTP_PROXY,NO_PROXY"
    )]
    pub pass_env: Vec<String>,

    /// Fleet-wide limits and budgets this worker enforces.
    #[command(flatten)]
    pub limits: LimitArgs,

    /// Address of the worker's own /healthz and /metrics (`ccs worker`).
    #[arg(long, env = "CCS_WORKER_LISTEN", default_value = "127.0.0.1:3001")]
    pub worker_listen: SocketAddr,

    /// A file of `NAME=value` lines: the secrets `${NAME}` references in a
    /// project's `env` and `mcpServers[].env` resolve to, besides the
    /// `CCS_SECRET_<NAME>` environment variables (which win). See
    /// [`crate::secrets`].
    #[arg(long, env = "CCS_SECRETS_FILE")]
    pub secrets_file: Option<PathBuf>,

    /// Settings of the Docker runner (`--runner docker`).
    #[command(flatten)]
    pub docker: DockerArgs,

    /// How workers talk to GitHub (docs/github.md).
    #[command(flatten)]
    pub github: GithubArgs,

    /// Settings of the bubblewrap sandbox (`--runner process`).
    #[command(flatten)]
    pub sandbox: SandboxArgs,

    /// Egress settings of both sandboxed runners.
    #[command(flatten)]
    pub egress: EgressArgs,
}

/// How workers act on GitHub deliveries: the API they call, as whom, and
/// where their comments link to. With neither a token nor an App, GitHub
/// deliveries are recorded as failed ("no GitHub credentials").
#[derive(Debug, Clone, Default, Args)]
pub struct GithubArgs {
    /// GitHub's REST API (GitHub Enterprise Server: `https://HOST/api/v3`).
    #[arg(
        long,
        env = "CCS_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,

    /// A personal access token (the simple alternative to an App).
    #[arg(long, env = "CCS_GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<crate::github::client::Token>,

    /// The GitHub App's id (with `--github-app-private-key-file`).
    #[arg(long, env = "CCS_GITHUB_APP_ID")]
    pub github_app_id: Option<String>,

    /// The GitHub App's private key (PEM), as downloaded from GitHub.
    #[arg(long, env = "CCS_GITHUB_APP_PRIVATE_KEY_FILE")]
    pub github_app_private_key_file: Option<PathBuf>,

    /// How long a user's permission on a repository is remembered.
    #[arg(long, env = "CCS_GITHUB_PERMISSION_CACHE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub github_permission_cache: Duration,

    /// The address people reach this service at (`https://ccs.example.com`),
    /// for the links in GitHub comments. Unset: comments name the run's id.
    #[arg(long, env = "CCS_PUBLIC_URL")]
    pub public_url: Option<String>,
}

/// Settings of the bubblewrap sandbox of `--runner process`.
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// The bubblewrap program.
    #[arg(
        long = "sandbox-bwrap",
        env = "CCS_SANDBOX_BWRAP",
        default_value = "bwrap"
    )]
    pub bwrap: PathBuf,

    /// Host paths shown read-only inside the sandbox at the same place
    /// (comma-separated): toolchains outside /usr, say.
    #[arg(long = "sandbox-bind", env = "CCS_SANDBOX_BIND", value_delimiter = ',')]
    pub ro_binds: Vec<PathBuf>,

    /// Host paths shown read-write inside the sandbox at the same place
    /// (comma-separated). Every run can write there: shared caches only.
    #[arg(
        long = "sandbox-bind-rw",
        env = "CCS_SANDBOX_BIND_RW",
        value_delimiter = ','
    )]
    pub rw_binds: Vec<PathBuf>,
}

impl Default for SandboxArgs {
    fn default() -> Self {
        Self {
            bwrap: "bwrap".into(),
            ro_binds: Vec::new(),
            rw_binds: Vec::new(),
        }
    }
}

/// Where sandboxed agents may connect, besides their project's
/// `security.allowedDomains`.
#[derive(Debug, Clone, Default, Args)]
pub struct EgressArgs {
    /// The model's API host, reachable by every run through the egress
    /// proxy (`host` or `host:port`, comma-separated). Default: the host of
    /// `ANTHROPIC_BASE_URL` when set, else `api.anthropic.com`.
    #[arg(
        long = "model-api-host",
        env = "CCS_MODEL_API_HOST",
        value_delimiter = ','
    )]
    pub model_api_hosts: Vec<String>,

    /// Non-public networks (CIDR, comma-separated) that allowed names may
    /// resolve to. By default the proxy refuses loopback, private,
    /// link-local (cloud metadata), CGNAT, multicast and reserved addresses.
    #[arg(
        long = "egress-allow-cidr",
        env = "CCS_EGRESS_ALLOW_CIDRS",
        value_delimiter = ','
    )]
    pub allow_cidrs: Vec<ipnet::IpNet>,
}

impl EgressArgs {
    /// The model API hosts: the setting, else `ANTHROPIC_BASE_URL`'s host,
    /// else `api.anthropic.com`.
    pub fn model_hosts(&self) -> Vec<String> {
        if !self.model_api_hosts.is_empty() {
            return self.model_api_hosts.clone();
        }
        let from_base_url = std::env::var("ANTHROPIC_BASE_URL").ok().and_then(|url| {
            let rest = url.split_once("://")?.1;
            let authority = rest.split('/').next()?;
            (!authority.is_empty()).then(|| authority.to_owned())
        });
        vec![from_base_url.unwrap_or_else(|| "api.anthropic.com".to_owned())]
    }
}

/// Settings of the Docker runner; ignored by the process runner. Inside the
/// container the agent command is `--agent-command` (default `claude`).
#[derive(Debug, Clone, Args)]
pub struct DockerArgs {
    /// The agent image, for projects whose container.yaml names no
    /// `baseImage` (`deploy/agent/Dockerfile` builds one).
    #[arg(long, env = "CCS_AGENT_IMAGE", default_value = "ccs-agent:latest")]
    pub agent_image: String,

    /// Let a project's `security.runAsUser` run the agent as root (refused
    /// otherwise).
    #[arg(long, env = "CCS_ALLOW_ROOT_CONTAINERS")]
    pub allow_root_containers: bool,

    /// Extra `/etc/hosts` entries of every agent container, `NAME:IP`
    /// (comma-separated); the egress proxy resolves those names the same way.
    #[arg(
        long = "docker-add-host",
        env = "CCS_DOCKER_ADD_HOSTS",
        value_delimiter = ','
    )]
    pub add_hosts: Vec<String>,

    /// The Docker daemon: `unix:///var/run/docker.sock` (default),
    /// `tcp://…` or `http://…`.
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,

    /// Debugging and tests: write each container's `docker inspect` JSON to
    /// `<dir>/<container name>.json` before removing it. The dumps hold the
    /// containers' environment, secrets included: never in production.
    #[arg(
        long = "docker-inspect-dir",
        env = "CCS_DOCKER_INSPECT_DIR",
        hide = true
    )]
    pub inspect_dir: Option<PathBuf>,
}

impl Default for DockerArgs {
    fn default() -> Self {
        Self {
            agent_image: "ccs-agent:latest".into(),
            allow_root_containers: false,
            add_hosts: Vec::new(),
            docker_host: None,
            inspect_dir: None,
        }
    }
}

impl WorkerArgs {
    pub fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            interval: self.heartbeat_interval,
            missed: self.missed_heartbeats.max(1),
        }
    }

    /// The service's secrets: the `--secrets-file` and the `CCS_SECRET_*`
    /// variables of this process, read now.
    pub fn load_secrets(&self) -> Result<crate::secrets::Secrets, crate::secrets::SecretsError> {
        crate::secrets::Secrets::load(self.secrets_file.as_deref(), std::env::vars_os())
    }

    pub fn agent_command(&self) -> Vec<String> {
        self.agent_command
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

/// Ingestion rate limits of the API (see `docs/limits.md`). Each API
/// process counts on its own: with N replicas a key gets up to N times
/// its limit. Unset: not limited.
#[derive(Debug, Clone, Default, Args)]
pub struct RateLimitArgs {
    /// Submissions per API key (`POST /webhook/execute`,
    /// `POST /api/v1/executions`): `60/min`, `10/s`, `1000/hour`. Over it:
    /// 429 with `Retry-After`.
    #[arg(long = "rate-limit-per-key", env = "CCS_RATE_LIMIT_PER_KEY")]
    pub per_key: Option<RateSpec>,

    /// Requests per Slack team (by team id), same syntax.
    #[arg(
        long = "rate-limit-per-slack-team",
        env = "CCS_RATE_LIMIT_PER_SLACK_TEAM"
    )]
    pub per_slack_team: Option<RateSpec>,

    /// Requests per GitHub repository (by `owner/repo`), same syntax.
    #[arg(
        long = "rate-limit-per-github-repo",
        env = "CCS_RATE_LIMIT_PER_GITHUB_REPO"
    )]
    pub per_github_repo: Option<RateSpec>,
}

impl RateLimitArgs {
    /// The limiters these settings describe, with empty counters.
    pub fn limiters(&self) -> RateLimiters {
        RateLimiters::new(self.per_key, self.per_slack_team, self.per_github_repo)
    }
}

/// Fleet-wide limits and budgets a worker enforces, through the database,
/// before and while an agent runs (see `docs/limits.md`). A project's own
/// files (`container.yaml` `limits:`, `workflow.yaml` `workflow.budget`)
/// and limits set through `PUT /api/v1/budget` win over these defaults.
/// Every worker of a fleet should have the same values.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Executions of one project running at once, across all workers
    /// (default: not limited).
    #[arg(long, env = "CCS_PROJECT_MAX_CONCURRENT")]
    pub project_max_concurrent: Option<u32>,

    /// Executions of one project starting in any 60 seconds, across all
    /// workers (default: not limited).
    #[arg(long, env = "CCS_PROJECT_MAX_STARTS_PER_MINUTE")]
    pub project_max_starts_per_minute: Option<u32>,

    /// The ceiling of one run, in USD: reserved against the daily budgets
    /// before it starts; a run whose running cost estimate passes it is
    /// stopped (`budget_exceeded`).
    #[arg(long, env = "CCS_MAX_COST_PER_EXECUTION", default_value = "5.00")]
    pub max_cost_per_execution: Money,

    /// Daily budget of every project, in USD (default: none).
    #[arg(long, env = "CCS_PROJECT_DAILY_BUDGET")]
    pub project_daily_budget: Option<Money>,

    /// Daily budget of the whole service, in USD (default: none).
    #[arg(long, env = "CCS_GLOBAL_DAILY_BUDGET")]
    pub global_daily_budget: Option<Money>,

    /// Daily budget of every API key, for the runs it submits, in USD
    /// (default: none).
    #[arg(long, env = "CCS_API_KEY_DAILY_BUDGET")]
    pub api_key_daily_budget: Option<Money>,

    /// Write a notification when a daily budget is this percent spent
    /// (1-100; default: only when it is used up).
    #[arg(long, env = "CCS_BUDGET_ALERT_PERCENT", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub budget_alert_percent: Option<u8>,

    /// A run whose ceiling does not fit in a daily budget: `wait` (stays
    /// queued until the next UTC day) or `refuse` (ends `budget_exceeded`).
    #[arg(long, env = "CCS_WHEN_OVER_BUDGET", value_enum, default_value_t = OverBudgetPolicy::Wait)]
    pub when_over_budget: OverBudgetPolicy,

    /// How long a run whose project is at its concurrency limit waits in
    /// the queue before it tries again (with ±25% jitter).
    #[arg(long, env = "CCS_ADMISSION_RETRY", default_value = "2s", value_parser = humantime::parse_duration)]
    pub admission_retry: Duration,

    /// Model prices for running cost estimates: a JSON or YAML file of
    /// `{"models": {"sonnet": {"input": 3, "output": 15, "cache_write": 3.75,
    /// "cache_read": 0.3}, …}, "fallback": {…}}` in USD per million tokens
    /// (default: what the Claude Code version ccs is tested with charges,
    /// docs/claude-cli.md). A model no key matches is priced at the highest
    /// rates of the table (and `fallback`), with a warning.
    #[arg(long, env = "CCS_PRICE_TABLE")]
    pub price_table: Option<PathBuf>,

    /// The longest line of agent output kept, in bytes: a longer line is
    /// cut there and marked (`…[line cut: longer than N bytes]`), the rest
    /// dropped unread into memory.
    #[arg(long, env = "CCS_MAX_LINE_BYTES", default_value_t = crate::runner::lines::DEFAULT_MAX_LINE_BYTES)]
    pub max_line_bytes: usize,

    /// The most agent output stored per execution, in bytes: past it the
    /// log says so and stores no more of the agent's lines (the run goes
    /// on; its cost and result are still read).
    #[arg(long, env = "CCS_MAX_LOG_BYTES", default_value_t = DEFAULT_MAX_LOG_BYTES)]
    pub max_log_bytes: u64,

    /// How long what finished is kept in full: logs, workflow events,
    /// workspace packs and done queue jobs older than this are deleted by
    /// the hourly retention job (the executions' summaries stay).
    #[arg(long, env = "CCS_RETENTION", default_value = "30days", value_parser = humantime::parse_duration)]
    pub retention: Duration,
}

/// `--max-log-bytes` by default: 64 MiB.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 64 * 1024 * 1024;

impl Default for LimitArgs {
    fn default() -> Self {
        Self {
            project_max_concurrent: None,
            project_max_starts_per_minute: None,
            max_cost_per_execution: Money::from_cents(500),
            project_daily_budget: None,
            global_daily_budget: None,
            api_key_daily_budget: None,
            budget_alert_percent: None,
            when_over_budget: OverBudgetPolicy::Wait,
            admission_retry: Duration::from_secs(2),
            price_table: None,
            max_line_bytes: crate::runner::lines::DEFAULT_MAX_LINE_BYTES,
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}
