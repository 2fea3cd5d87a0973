//! A project's own configuration: `.claude/container.yaml` (what the agent's
//! container may use) and `.claude/workflow.yaml` (a multi-agent workflow),
//! parsed into typed values and validated, with errors that name the file,
//! the line and the field.
//!
//! ## Moving parts
//!
//! | file | does |
//! |---|---|
//! | `mod.rs` | entry points: [`load_dir`] for a checked-out project, [`parse_container`] / [`parse_workflow`] for YAML posted to the API |
//! | `yaml.rs` | the YAML front end: typed deserialization with located errors, and the path → line index used by validation |
//! | `container.rs` | the `container.yaml` types, defaults and rules |
//! | `workflow.rs` | the `workflow.yaml` types and rules: routing, reachability, variables, limits |
//! | `units.rs` | `2Gi`, `600s`, `$5.00`, `500m` as [`MemorySize`], [`DurationSpec`], [`Money`], [`CpuCount`] |
//! | `template.rs` | the `${NAME}` syntax: scanning and [`interpolate`] |
//! | `error.rs` | [`ConfigError`]: `file:line:col: field: message` |
//!
//! Parsing is two steps. First the text is deserialized into the types
//! (serde, `deny_unknown_fields` everywhere): syntax errors, wrong types,
//! unknown keys and malformed units stop here, located by the parser and named
//! by their dotted path. Then the rules serde cannot express run over the
//! typed value, and each problem is placed by looking its path up in an index
//! of the document's nodes. When several rules fail, the error returned is
//! the first in the file.
//!
//! [`parse_workflow_in_project`] adds the checks that need both files (an
//! agent's MCP servers and tools must be ones the project's `container.yaml`
//! provides, validation gates need its `test` command); [`load_dir`] applies
//! them, with [`ContainerConfig::default()`] standing in for a missing
//! `container.yaml`.
//!
//! Nothing here resolves secrets, evaluates conditions or runs anything: the
//! values are what the runner and the workflow engine start from.
//!
//! ## YAML library
//!
//! `serde-saphyr` (2.x). `serde_yaml` is deprecated and archived; its forks
//! `serde_yaml_ng` and `serde_norway` keep libyaml and report a location only
//! for their own errors, so a rule checked after deserialization (a `next`
//! naming no agent) would need a second parser to find its line; `saphyr` has
//! marked nodes but no serde support. `serde-saphyr` is actively maintained,
//! parses YAML 1.2, attaches line and column to every error (custom errors
//! from our `Deserialize` impls included), offers `Spanned<T>` (used to build
//! the path → line index from the same parser), rejects duplicate keys,
//! bounds depth and size by default (a hostile request body cannot exhaust
//! the API), is fuzzed and documented as panic-free, and exposes its
//! deserializer so `serde_path_to_error` can name the failing field.
//!
//! ## Safety of errors
//!
//! Messages quote keys and the offending scalar (a tool name, a unit) but
//! never an `env` value, and name files by their label
//! (`.claude/workflow.yaml`), never by an absolute path. [`load_dir`] does not
//! follow symbolic links, so a repository cannot make the service read (and
//! echo parts of) a file outside it.

mod container;
mod error;
mod template;
mod units;
mod workflow;
mod yaml;

use std::io::Read;
use std::path::Path;

pub use container::{
    AgentDefaults, ContainerConfig, KNOWN_TOOLS, McpServer, NetworkMode, PermissionMode, Resources,
    RunAsUser, Security, TestConfig, ToolGrant, ToolRisk, ToolsConfig,
};
pub use container::{OverBudgetPolicy, ProjectLimits};
pub use error::{ConfigError, ConfigErrorKind};
pub use template::{Reference, interpolate, is_context_name, is_identifier, references};
pub use units::{CpuCount, DurationSpec, MemorySize, Money, UnitError};
pub use workflow::{
    AgentContainer, AgentSpec, ApprovalRule, Branch, Budget, ErrorAction, GithubNotifications,
    Next, Notifications, NotifyEvent, OnError, Safety, SlackNotifications, Trigger, TriggerKind,
    UndefinedVariable, ValidationGate, VariableRef, WEBHOOK_ENDPOINTS, WorkflowConfig,
    WorkflowSettings,
};
pub use yaml::MAX_FILE_BYTES;

use yaml::{Issues, SourceMap, parse_document};

/// Path of the container configuration, relative to the project directory.
pub const CONTAINER_FILE: &str = ".claude/container.yaml";
/// Path of the workflow configuration, relative to the project directory.
pub const WORKFLOW_FILE: &str = ".claude/workflow.yaml";

/// A project's configuration files, each `None` when absent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProjectConfig {
    /// `.claude/container.yaml`.
    pub container: Option<ContainerConfig>,
    /// `.claude/workflow.yaml`.
    pub workflow: Option<WorkflowConfig>,
}

impl ProjectConfig {
    /// The container configuration, or the defaults when the file is absent.
    pub fn container_or_default(&self) -> ContainerConfig {
        self.container.clone().unwrap_or_default()
    }
}

/// Reads and validates `DIR/.claude/container.yaml` and
/// `DIR/.claude/workflow.yaml`, each if present. The workflow is also checked
/// against the container configuration (see [`parse_workflow_in_project`]).
///
/// # Errors
///
/// The first problem found: a file that cannot be read (a symbolic link, not
/// UTF-8, larger than [`MAX_FILE_BYTES`]), or one that does not parse or
/// validate. Errors name the files by their relative paths.
pub fn load_dir(project_dir: &Path) -> Result<ProjectConfig, ConfigError> {
    let container = read_config_file(project_dir, CONTAINER_FILE)?
        .map(|text| parse_container(CONTAINER_FILE, &text))
        .transpose()?;
    let defaults = ContainerConfig::default();
    let project = container.as_ref().unwrap_or(&defaults);
    let workflow = read_config_file(project_dir, WORKFLOW_FILE)?
        .map(|text| parse_workflow_in_project(WORKFLOW_FILE, &text, project))
        .transpose()?;
    Ok(ProjectConfig {
        container,
        workflow,
    })
}

/// Parses and validates a `container.yaml`; `file_label` names it in errors.
/// An empty document is the default configuration.
///
/// # Errors
///
/// The first problem in the file, see [`ConfigError`].
pub fn parse_container(file_label: &str, text: &str) -> Result<ContainerConfig, ConfigError> {
    let config: ContainerConfig = parse_document(file_label, text)?.unwrap_or_default();
    let map = SourceMap::build(text);
    let mut issues = Issues::new(file_label, &map);
    config.validate(&mut issues);
    issues.finish()?;
    Ok(config)
}

/// Parses and validates a `workflow.yaml` on its own; `file_label` names it
/// in errors.
///
/// # Errors
///
/// The first problem in the file, see [`ConfigError`]; an empty document is
/// an error (a workflow needs a name and agents).
pub fn parse_workflow(file_label: &str, text: &str) -> Result<WorkflowConfig, ConfigError> {
    parse_workflow_with(file_label, text, None)
}

/// Like [`parse_workflow`], and also checks the workflow against the
/// project's container configuration: every `agents[].container.mcpServers`
/// entry is defined in `container.mcpServers`; every agent tool is within
/// `container.tools.allowed` (when the project restricts tools) and not
/// disallowed; a `safety.validation` gate that runs tests has a
/// `test.command` (and `test.coverage` for `minCoverage`).
///
/// # Errors
///
/// As [`parse_workflow`], plus those cross-file problems (reported in the
/// workflow file).
pub fn parse_workflow_in_project(
    file_label: &str,
    text: &str,
    container: &ContainerConfig,
) -> Result<WorkflowConfig, ConfigError> {
    parse_workflow_with(file_label, text, Some(container))
}

fn parse_workflow_with(
    file_label: &str,
    text: &str,
    container: Option<&ContainerConfig>,
) -> Result<WorkflowConfig, ConfigError> {
    let Some(mut config) = parse_document::<WorkflowConfig>(file_label, text)? else {
        return Err(ConfigError::file_level(
            file_label,
            ConfigErrorKind::Syntax,
            "the workflow file is empty: it needs a `name` and `agents`",
        ));
    };
    let map = SourceMap::build(text);
    config.locate_variables(text, &map);
    let mut issues = Issues::new(file_label, &map);
    config.validate(&mut issues);
    if let Some(container) = container {
        config.validate_against(container, &mut issues);
    }
    issues.finish()?;
    Ok(config)
}

/// Reads `dir/relative` as UTF-8 text; `Ok(None)` when it does not exist.
fn read_config_file(dir: &Path, relative: &str) -> Result<Option<String>, ConfigError> {
    let read_error =
        |message: String| ConfigError::file_level(relative, ConfigErrorKind::Read, message);
    let claude_dir = dir.join(".claude");
    let path = dir.join(relative);
    for (checked, what) in [(&claude_dir, "the .claude directory"), (&path, "the file")] {
        match std::fs::symlink_metadata(checked) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(read_error(format!(
                    "{what} is a symbolic link, which is not followed"
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(read_error(format!("cannot read: {}", e.kind()))),
        }
    }
    if !path.is_file() {
        return Err(read_error("not a regular file".to_owned()));
    }
    let file =
        std::fs::File::open(&path).map_err(|e| read_error(format!("cannot read: {}", e.kind())))?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_FILE_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(format!("cannot read: {}", e.kind())))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(read_error(format!(
            "file is larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| read_error("file is not valid UTF-8".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A fresh project directory with an empty `.claude/`, removed on drop.
    struct TempProject(tempfile::TempDir);

    impl TempProject {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir(dir.path().join(".claude")).unwrap();
            Self(dir)
        }

        fn path(&self) -> &Path {
            self.0.path()
        }

        fn write(&self, relative: &str, text: &str) {
            fs::write(self.path().join(relative), text).unwrap();
        }
    }

    const WITH_TESTS: &str =
        "\ntest:\n  command: cargo test\n  coverage: cargo llvm-cov --summary-only\n";

    #[test]
    fn loads_both_seed_files() {
        let p = TempProject::new();
        p.write(
            CONTAINER_FILE,
            &format!("{}{WITH_TESTS}", container::tests::SEED),
        );
        p.write(WORKFLOW_FILE, workflow::tests::SEED);
        let config = load_dir(p.path()).unwrap();
        assert_eq!(
            config.container.unwrap().name.as_deref(),
            Some("my-project")
        );
        assert_eq!(config.workflow.unwrap().agents.len(), 3);
    }

    #[test]
    fn missing_files_are_none() {
        let p = TempProject::new();
        assert_eq!(load_dir(p.path()).unwrap(), ProjectConfig::default());
        let nowhere = p.path().join("does-not-exist");
        assert_eq!(load_dir(&nowhere).unwrap(), ProjectConfig::default());
        assert_eq!(
            ProjectConfig::default().container_or_default(),
            ContainerConfig::default()
        );
    }

    #[test]
    fn workflow_alone_is_checked_against_default_container() {
        let p = TempProject::new();
        // The seed's commenter uses the `github` MCP server, which only the
        // seed's container.yaml defines.
        p.write(WORKFLOW_FILE, workflow::tests::SEED);
        let err = load_dir(p.path()).unwrap_err();
        assert_eq!(err.file, WORKFLOW_FILE);
        assert_eq!(err.line, Some(40));
        assert_eq!(
            err.field.as_deref(),
            Some("agents[2].container.mcpServers[0]")
        );
        assert_eq!(
            err.to_string(),
            ".claude/workflow.yaml:40:20: agents[2].container.mcpServers[0]: MCP server `github` \
             is not defined in the project's container.yaml `mcpServers`"
        );
    }

    #[test]
    fn container_errors_name_the_relative_file() {
        let p = TempProject::new();
        p.write(CONTAINER_FILE, "resources:\n  memory: 2Gb\n");
        let err = load_dir(p.path()).unwrap_err();
        assert_eq!(err.file, ".claude/container.yaml");
        assert_eq!(err.line, Some(2));
        assert!(!err.to_string().contains(&*p.path().to_string_lossy()));
    }

    #[test]
    fn unreadable_files_are_read_errors() {
        let p = TempProject::new();
        fs::write(p.path().join(CONTAINER_FILE), [0xff, 0xfe, b'a']).unwrap();
        let err = load_dir(p.path()).unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::Read);
        assert!(err.message.contains("UTF-8"));

        fs::remove_file(p.path().join(CONTAINER_FILE)).unwrap();
        fs::create_dir(p.path().join(CONTAINER_FILE)).unwrap();
        let err = load_dir(p.path()).unwrap_err();
        assert!(err.message.contains("not a regular file"), "{err}");
    }

    #[test]
    fn oversized_files_are_refused() {
        let p = TempProject::new();
        p.write(CONTAINER_FILE, &"#".repeat(MAX_FILE_BYTES + 10));
        let err = load_dir(p.path()).unwrap_err();
        assert!(err.message.contains("larger than"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_are_not_followed() {
        let p = TempProject::new();
        let outside = p.path().join("outside.yaml");
        fs::write(&outside, "secret: value\n").unwrap();
        std::os::unix::fs::symlink(&outside, p.path().join(CONTAINER_FILE)).unwrap();
        let err = load_dir(p.path()).unwrap_err();
        assert!(err.message.contains("symbolic link"), "{err}");
        assert!(!err.to_string().contains("secret"));

        let q = TempProject::new();
        fs::remove_dir(q.path().join(".claude")).unwrap();
        std::os::unix::fs::symlink(p.path(), q.path().join(".claude")).unwrap();
        let err = load_dir(q.path()).unwrap_err();
        assert!(err.message.contains("symbolic link"), "{err}");
    }

    #[test]
    fn parse_functions_use_the_given_label() {
        let err = parse_workflow("request body", "name: x\nagents: nope\n").unwrap_err();
        assert_eq!(err.file, "request body");
        assert!(err.to_string().starts_with("request body:2:"), "{err}");
        let err = parse_container("body", "tools: 5\n").unwrap_err();
        assert_eq!(err.file, "body");
    }

    /// Mutated copies of the seed files (characters deleted, inserted,
    /// lines repeated, with a fixed pseudo-random sequence) produce values or
    /// errors, never panics.
    #[test]
    fn mutated_seed_documents_do_not_panic() {
        const ALPHABET: &[char] = &[
            ':', '-', '[', ']', '{', '}', '&', '*', '!', '|', '>', '\'', '"', '#', '\n', ' ', '$',
            '?', '%', '@', '`', ',', '\t', 'é', '0', 'a',
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |bound: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(state >> 33).unwrap_or(0) % bound.max(1)
        };
        for seed in [container::tests::SEED, workflow::tests::SEED] {
            for _ in 0..300 {
                let mut chars: Vec<char> = seed.chars().collect();
                for _ in 0..=next(4) {
                    let at = next(chars.len());
                    match next(3) {
                        0 => {
                            let end = (at + next(20)).min(chars.len());
                            chars.drain(at..end);
                        }
                        1 => chars.insert(at, ALPHABET[next(ALPHABET.len())]),
                        _ => {
                            let end = (at + next(40)).min(chars.len());
                            let copy: Vec<char> = chars[at..end].to_vec();
                            chars.splice(at..at, copy);
                        }
                    }
                }
                let text: String = chars.into_iter().collect();
                let _ = parse_container("c", &text);
                let _ = parse_workflow("w", &text);
            }
        }
    }

    /// Malformed or hostile documents produce errors, never panics.
    #[test]
    fn malformed_documents_do_not_panic() {
        let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let aliases = "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n\
                       c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n\
                       e: [*d, *d, *d, *d, *d, *d, *d, *d]\n";
        let documents = [
            "",
            "\u{feff}",
            ":",
            "- - -",
            "{",
            "]",
            "\"unterminated",
            "'",
            "a: b: c",
            "name: [unclosed",
            "? [complex, key]\n: value\n",
            "agents:\n  - *undefined_alias\n",
            "agents: !!binary aGVsbG8=\n",
            "name: !custom x\nagents: []\n",
            "\t- tab",
            "name: x\nagents:\n  - name: a\n    prompt: p\n    next:\n      - if:\n          nested: map\n        then: a\n",
            "name: x\nagents:\n  - name: a\n    prompt: \"${\"\n    next: [[[]]]\n",
            "name: x\nagents:\n  - name: é\n    prompt: ${ünïcode} ${é}\n",
            "resources: {memory: 99999999999999999999999Ti, cpu: 1e400, timeout: 9999999999999999999999d}\n",
            "security: {runAsUser: 99999999999999999999}\n",
            "workflow:\n  budget:\n    maxCostPerExecution: 1e308\n",
            "env: {A: !!null ''}\n",
            "<<: {a: 1}\n",
            "name: &x x\nagents: *x\n",
            "%YAML 1.2\n---\nname: x\n",
            "--- |\n  text\n",
            "...\n",
            &nested,
            aliases,
        ];
        for text in documents {
            let _ = parse_container("c", text);
            let _ = parse_workflow("w", text);
            let _ = SourceMap::build(text);
        }
    }
}
