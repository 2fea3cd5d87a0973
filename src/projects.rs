//! Registering a project: the API (`POST /api/v1/projects`) and
//! `ccs project add` both come here.
//!
//! The project's `.claude/container.yaml` and `.claude/workflow.yaml` are
//! read from its directory (or taken from the request), validated — an
//! error names the file, the line and the field — and stored as text, so
//! every worker sees the same configuration.

use std::path::PathBuf;

use crate::project_config;
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

pub async fn register(store: &Store, req: NewProjectRequest) -> Result<Project, ProjectError> {
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
    let path = std::fs::canonicalize(&req.path)
        .map_err(|e| ProjectError::Invalid(format!("project path {}: {e}", req.path.display())))?;
    if !path.is_dir() {
        return Err(ProjectError::Invalid(format!(
            "project path {} is not a directory",
            path.display()
        )));
    }
    let claude_dir = path.join(".claude");
    let container_yaml = config_text(req.container, &claude_dir.join("container.yaml"))?;
    let workflow_yaml = config_text(req.workflow, &claude_dir.join("workflow.yaml"))?;
    let container = match &container_yaml {
        Some(text) => project_config::parse_container(".claude/container.yaml", text)
            .map_err(|e| ProjectError::Invalid(e.to_string()))?,
        None => Default::default(),
    };
    if let Some(text) = &workflow_yaml {
        project_config::parse_workflow_in_project(".claude/workflow.yaml", text, &container)
            .map_err(|e| ProjectError::Invalid(e.to_string()))?;
    }
    let project = store
        .create_project(&NewProject {
            name: name.to_owned(),
            path: path.display().to_string(),
            description: req.description,
            container_yaml,
            workflow_yaml,
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict { value, .. } => ProjectError::Exists(value),
            other => ProjectError::Store(other),
        })?;
    Ok(project)
}

/// The given configuration, else the file's content, else none.
fn config_text(
    given: Option<ConfigSource>,
    file: &std::path::Path,
) -> Result<Option<String>, ProjectError> {
    if let Some(given) = given {
        return Ok(Some(given.text().to_owned()));
    }
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ProjectError::Invalid(format!("{}: {e}", file.display()))),
    }
}
