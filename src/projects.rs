//! Registering a project: the API (`POST /api/v1/projects`) and
//! `ccs project add` both come here.
//!
//! The project's `.claude/container.yaml` and `.claude/workflow.yaml` are
//! read from its directory (or taken from the request), validated — an
//! error names the file, the line and the field — and stored as text, so
//! every worker sees the same configuration.
//!
//! The files are read off the async runtime, never through a symbolic link
//! (neither `.claude` nor the file may be one), only when they are regular
//! files (not a device such as `/dev/zero`, not a FIFO), and only up to
//! [`MAX_CONFIG_BYTES`]: the directory is the project's, and what is in it
//! is not trusted.

use std::path::{Path, PathBuf};

use crate::project_config::{self, ContainerConfig, NetworkMode};
use crate::settings::RunnerKind;
use crate::store::{NewProject, Project, Store, StoreError};

/// Configuration given with a request rather than read from the directory.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// YAML text.
    Yaml(String),
}

impl ConfigSource {
    /// JSON is YAML: an object is re-serialised, a string taken as YAML.
    pub fn from_json(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::String(s) => Self::Yaml(s),
            other => Self::Yaml(other.to_string()),
        }
    }

    fn text(&self) -> &str {
        match self {
            Self::Yaml(s) => s,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewProjectRequest {
    pub name: String,
    pub path: PathBuf,
    pub description: Option<String>,
    pub container: Option<ConfigSource>,
    pub workflow: Option<ConfigSource>,
    /// The GitHub repository the project answers for, `owner/name`.
    pub repository: Option<String>,
    /// GitHub trigger settings (`None`: the defaults).
    pub github: Option<crate::github::triggers::TriggerConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("{0}")]
    Invalid(String),
    #[error("a project named {0:?} already exists")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The largest configuration file read: 256 KiB.
pub const MAX_CONFIG_BYTES: u64 = 256 * 1024;

/// What the workers' runner can enforce, and what the operator lets
/// projects ask for: a project whose `container.yaml` asks for something
/// else is refused when it is registered, naming the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerPolicy {
    /// The runner the workers use (`--runner`).
    pub runner: RunnerKind,
    /// `--allow-unsafe-container-settings`: accept `networkMode: host` or a
    /// named network, capabilities kept, `noNewPrivileges: false`.
    pub allow_unsafe: bool,
}

impl Default for RunnerPolicy {
    fn default() -> Self {
        Self {
            runner: RunnerKind::Process,
            allow_unsafe: false,
        }
    }
}

impl RunnerPolicy {
    /// Why `container` cannot run under this policy, naming the setting.
    ///
    /// # Errors
    ///
    /// The first setting the runner cannot enforce or the operator does
    /// not allow.
    pub fn check(&self, c: &ContainerConfig) -> Result<(), String> {
        let runner = self.runner.as_str();
        let s = &c.security;
        if !self.allow_unsafe {
            let unsafe_flag = "(the operator's --allow-unsafe-container-settings permits it)";
            match &s.network_mode {
                NetworkMode::Bridge | NetworkMode::None => {}
                other => {
                    return Err(format!(
                        "security.networkMode `{}` is refused: runs get `bridge` (egress through the proxy) or `none` {unsafe_flag}",
                        other.as_docker()
                    ));
                }
            }
            if !s.no_new_privileges {
                return Err(format!(
                    "security.noNewPrivileges `false` is refused {unsafe_flag}"
                ));
            }
            if !s
                .drop_capabilities
                .iter()
                .any(|c| c.eq_ignore_ascii_case("ALL"))
            {
                return Err(format!(
                    "security.dropCapabilities must include ALL {unsafe_flag}"
                ));
            }
        }
        match self.runner {
            RunnerKind::Process if crate::runner::sandbox::sandbox_uid(c).is_none() => {
                Err(format!(
                    "security.runAsUser: the {runner} runner takes a numeric uid (a user name is resolved only by an image)"
                ))
            }
            RunnerKind::Host if s.allowed_domains.is_some() => Err(format!(
                "security.allowedDomains: the {runner} runner cannot restrict egress (use --runner process or docker)"
            )),
            RunnerKind::Host if s.network_mode == NetworkMode::None => Err(format!(
                "security.networkMode `none`: the {runner} runner cannot cut the network"
            )),
            _ => Ok(()),
        }
    }
}

/// Registers a project under the default [`RunnerPolicy`] (the bubblewrap
/// process runner, no unsafe settings).
pub async fn register(store: &Store, req: NewProjectRequest) -> Result<Project, ProjectError> {
    register_with(store, RunnerPolicy::default(), req).await
}

/// Registers a project whose configuration `policy` accepts.
///
/// # Errors
///
/// A bad name or path, invalid YAML, a setting the policy refuses
/// ([`ProjectError::Invalid`], a 422), a taken name.
pub async fn register_with(
    store: &Store,
    policy: RunnerPolicy,
    req: NewProjectRequest,
) -> Result<Project, ProjectError> {
    let name = req.name.trim();
    if name.is_empty()
        || name.len() > 200
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ProjectError::Invalid(format!(
            "project name {name:?} must be 1 to 200 characters of letters, digits, '-', '_' or '.'"
        )));
    }
    let given = (req.path.clone(), req.container, req.workflow);
    let (path, container_yaml, workflow_yaml) =
        tokio::task::spawn_blocking(move || read_project(given.0, given.1, given.2))
            .await
            .map_err(|e| ProjectError::Invalid(format!("reading the project failed: {e}")))??;
    let container = match &container_yaml {
        Some(text) => project_config::parse_container(".claude/container.yaml", text)
            .map_err(|e| ProjectError::Invalid(e.to_string()))?,
        None => Default::default(),
    };
    policy
        .check(&container)
        .map_err(|e| ProjectError::Invalid(format!(".claude/container.yaml: {e}")))?;
    if let Some(text) = &workflow_yaml {
        project_config::parse_workflow_in_project(".claude/workflow.yaml", text, &container)
            .map_err(|e| ProjectError::Invalid(e.to_string()))?;
    }
    let repository = req
        .repository
        .as_deref()
        .map(crate::github::parse_repository)
        .transpose()
        .map_err(ProjectError::Invalid)?;
    if let Some(config) = &req.github {
        config.validate().map_err(ProjectError::Invalid)?;
    }
    let github_config = req
        .github
        .as_ref()
        .map(|c| serde_json::to_string(c).unwrap_or_default());
    let project = store
        .create_project(&NewProject {
            name: name.to_owned(),
            path: path.display().to_string(),
            description: req.description,
            container_yaml,
            workflow_yaml,
            repository,
            github_config,
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict { value, .. } => ProjectError::Exists(value),
            other => ProjectError::Store(other),
        })?;
    Ok(project)
}

/// The project's canonical directory and its two configuration texts (the
/// given ones, else the files'). Blocking: run off the async runtime.
type ProjectFiles = (PathBuf, Option<String>, Option<String>);

fn read_project(
    path: PathBuf,
    container: Option<ConfigSource>,
    workflow: Option<ConfigSource>,
) -> Result<ProjectFiles, ProjectError> {
    let dir = std::fs::canonicalize(&path)
        .map_err(|e| ProjectError::Invalid(format!("project path {}: {e}", path.display())))?;
    if !dir.is_dir() {
        return Err(ProjectError::Invalid(format!(
            "project path {} is not a directory",
            dir.display()
        )));
    }
    let claude_dir = dir.join(".claude");
    let container = config_text(container, &claude_dir, "container.yaml")?;
    let workflow = config_text(workflow, &claude_dir, "workflow.yaml")?;
    Ok((dir, container, workflow))
}

/// The given configuration, else the content of `.claude/<name>`, else none.
fn config_text(
    given: Option<ConfigSource>,
    claude_dir: &Path,
    name: &str,
) -> Result<Option<String>, ProjectError> {
    if let Some(given) = given {
        return Ok(Some(given.text().to_owned()));
    }
    let shown = format!(".claude/{name}");
    let refuse = |why: String| ProjectError::Invalid(format!("{shown}: {why}"));
    match std::fs::symlink_metadata(claude_dir) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(ProjectError::Invalid(
                ".claude is a symbolic link; ccs does not follow links in a project's configuration"
                    .to_owned(),
            ));
        }
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(ProjectError::Invalid(
                ".claude is not a directory".to_owned(),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ProjectError::Invalid(format!(".claude: {e}"))),
    }
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    // O_NOFOLLOW: a link is refused (ELOOP), not followed; O_NONBLOCK: a
    // FIFO cannot hold the open up.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(claude_dir.join(name))
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refuse(
                "is a symbolic link; ccs does not follow links in a project's configuration"
                    .to_owned(),
            ));
        }
        Err(e) => return Err(refuse(e.to_string())),
    };
    let meta = file.metadata().map_err(|e| refuse(e.to_string()))?;
    if !meta.is_file() {
        return Err(refuse("is not a regular file".to_owned()));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(refuse(format!(
            "is {} bytes; the limit is {MAX_CONFIG_BYTES}",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(e.to_string()))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(refuse(format!(
            "is over the limit of {MAX_CONFIG_BYTES} bytes"
        )));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| refuse("is not UTF-8 text".to_owned()))
}
