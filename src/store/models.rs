//! The rows of the store, as Rust types.

use serde::Serialize;
use sqlx::any::AnyRow;

use super::{Result, StoreError, get, opt_text, text};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub path: String,
    pub description: Option<String>,
    #[serde(skip)]
    pub container_yaml: Option<String>,
    #[serde(skip)]
    pub workflow_yaml: Option<String>,
    /// The GitHub repository it answers for, `owner/name`.
    pub repository: Option<String>,
    /// Its GitHub trigger settings (JSON; `None`: the defaults).
    #[serde(skip)]
    pub github_config: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Project {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(Self {
            id: get(r, "id")?,
            name: text(r, "name")?,
            path: text(r, "path")?,
            description: opt_text(r, "description")?,
            container_yaml: opt_text(r, "container_yaml")?,
            workflow_yaml: opt_text(r, "workflow_yaml")?,
            repository: opt_text(r, "repository")?,
            github_config: opt_text(r, "github_config")?,
            created_at: get(r, "created_at")?,
            updated_at: get(r, "updated_at")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct NewProject {
    pub name: String,
    pub path: String,
    pub description: Option<String>,
    pub container_yaml: Option<String>,
    pub workflow_yaml: Option<String>,
    pub repository: Option<String>,
    pub github_config: Option<String>,
}

/// What an API key may do. `admin` implies the others, `execute` implies
/// `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Execute,
    Read,
    Admin,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Execute => "execute",
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "execute" => Some(Self::Execute),
            "read" => Some(Self::Read),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub(crate) fn join(perms: &[Permission]) -> String {
        perms
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether holding `self` grants `wanted`.
    pub fn grants(self, wanted: Permission) -> bool {
        match self {
            Self::Admin => true,
            Self::Execute => matches!(wanted, Self::Execute | Self::Read),
            Self::Read => wanted == Self::Read,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub key_hash: String,
    pub key_prefix: String,
    pub permissions: Vec<Permission>,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    pub id: i64,
    pub name: String,
    #[serde(skip)]
    pub key_hash: String,
    pub key_prefix: String,
    pub permissions: Vec<Permission>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub use_count: i64,
    pub created_at: i64,
}

impl ApiKeyRecord {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self> {
        let perms = text(r, "permissions")?;
        let permissions = perms
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                Permission::parse(s).ok_or_else(|| StoreError::Corrupt(format!("permission {s:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            id: get(r, "id")?,
            name: text(r, "name")?,
            key_hash: text(r, "key_hash")?,
            key_prefix: text(r, "key_prefix")?,
            permissions,
            expires_at: get(r, "expires_at")?,
            revoked_at: get(r, "revoked_at")?,
            last_used_at: get(r, "last_used_at")?,
            use_count: get(r, "use_count")?,
            created_at: get(r, "created_at")?,
        })
    }

    pub fn allows(&self, wanted: Permission) -> bool {
        self.permissions.iter().any(|p| p.grants(wanted))
    }
}

/// The states of an execution; see `docs/state-machines.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
    BudgetExceeded,
}

impl ExecutionStatus {
    pub const ALL: [Self; 7] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::TimedOut,
        Self::BudgetExceeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
            Self::BudgetExceeded => "budget_exceeded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
}

#[derive(Debug, Clone)]
pub struct NewExecution {
    pub project_id: i64,
    pub workflow_id: Option<String>,
    pub prompt: String,
    pub source: String,
    pub idempotency_key: Option<String>,
    pub api_key_id: Option<i64>,
    /// The execution whose Claude Code session this one continues.
    pub resume_from: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub id: String,
    pub project_id: i64,
    pub workflow_id: Option<String>,
    pub status: ExecutionStatus,
    pub prompt: String,
    pub source: String,
    pub idempotency_key: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub cost_usd: Option<f64>,
    pub cost_estimated: bool,
    pub num_turns: Option<i64>,
    pub session_id: Option<String>,
    pub exit_code: Option<i64>,
    pub duration_ms: Option<i64>,
    pub attempts: i64,
    pub cancel_requested: bool,
    pub worker_id: Option<String>,
    /// The API key that submitted it.
    pub api_key_id: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Wall-clock limit set by the run's `maxRuntime` (workflow steps).
    pub timeout_ms: Option<i64>,
    /// What a workflow's validation gate found
    /// ([`crate::workflows::validation::Report`]).
    pub validation: Option<serde_json::Value>,
    /// A workflow step's predecessor whose workspace changes it starts from.
    pub base_execution_id: Option<String>,
    /// The execution whose Claude Code session this one continues
    /// (`resumeFrom`).
    pub resume_from: Option<String>,
}

impl Execution {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self> {
        let status = text(r, "status")?;
        Ok(Self {
            id: text(r, "id")?,
            project_id: get(r, "project_id")?,
            workflow_id: opt_text(r, "workflow_id")?,
            status: ExecutionStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("execution status {status:?}")))?,
            prompt: text(r, "prompt")?,
            source: text(r, "source")?,
            idempotency_key: opt_text(r, "idempotency_key")?,
            result: opt_text(r, "result")?,
            error: opt_text(r, "error")?,
            cost_usd: get(r, "cost_usd")?,
            cost_estimated: get::<i64>(r, "cost_estimated")? != 0,
            num_turns: get(r, "num_turns")?,
            session_id: opt_text(r, "session_id")?,
            exit_code: get(r, "exit_code")?,
            duration_ms: get(r, "duration_ms")?,
            attempts: get(r, "attempts")?,
            cancel_requested: get::<i64>(r, "cancel_requested")? != 0,
            worker_id: opt_text(r, "worker_id")?,
            api_key_id: get(r, "api_key_id")?,
            created_at: get(r, "created_at")?,
            started_at: get(r, "started_at")?,
            finished_at: get(r, "finished_at")?,
            timeout_ms: get(r, "timeout_ms")?,
            validation: opt_text(r, "validation")?
                .map(|v| serde_json::from_str(&v))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("execution validation: {e}")))?,
            base_execution_id: opt_text(r, "base_execution_id")?,
            resume_from: opt_text(r, "resume_from")?,
        })
    }
}

/// How a run ended, as recorded on its execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: ExecutionStatus,
    pub result: Option<String>,
    pub error: Option<String>,
    pub cost_usd: Option<f64>,
    pub cost_estimated: bool,
    pub num_turns: Option<i64>,
    pub session_id: Option<String>,
    pub exit_code: Option<i64>,
    pub duration_ms: Option<i64>,
    /// The validation gate's report, JSON.
    pub validation: Option<String>,
    /// The workspace's packed changes, kept for the next workflow step.
    pub changes: Option<Vec<u8>>,
    /// The agent's Claude Code session, kept for a later run to resume.
    pub session: Option<crate::runner::session::Session>,
}

/// One log row of an execution.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogLine {
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    pub text: String,
}

impl LogLine {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(Self {
            seq: get(r, "seq")?,
            at: get(r, "at")?,
            kind: text(r, "kind")?,
            text: text(r, "text")?,
        })
    }
}
