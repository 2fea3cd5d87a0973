//! The one error type of project configuration: where it is and what is wrong.
//!
//! Every problem found in `.claude/container.yaml` or `.claude/workflow.yaml`
//! (unreadable file, YAML syntax, wrong type, unknown key, failed validation)
//! becomes a [`ConfigError`] naming the file, the 1-based line and column when
//! known, and the dotted path of the field (`agents[2].next`,
//! `resources.memory`). Its `Display` is the compiler-style
//! `file:line:col: field: message`, with the parts that are unknown left out:
//!
//! ```text
//! .claude/workflow.yaml:41:11: agents[2].onError.next: no agent named `analyser` (did you mean `analyzer`?)
//! .claude/container.yaml:3:1: unknown field `resorces`, expected one of …
//! .claude/container.yaml: cannot read file: permission denied
//! ```
//!
//! The message never contains the value of an `env` entry, so an error can be
//! logged or returned to an API client without leaking a secret.

use std::fmt;

/// What kind of problem a [`ConfigError`] reports, for callers that map it to
/// a status (an unreadable file is the operator's problem, the rest the
/// author's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigErrorKind {
    /// The file exists but could not be read (permissions, not UTF-8, too large).
    Read,
    /// The text is not YAML, or not the expected shape: syntax, wrong type,
    /// unknown or missing key, a malformed unit such as `2Gx`.
    Syntax,
    /// Well-formed, but a rule of the format is broken: a `next` naming no
    /// agent, an unknown tool, a zero timeout, …
    Invalid,
}

/// A problem in a project configuration file, with its location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", prefix(.file, *.line, *.column, .field.as_deref()))]
pub struct ConfigError {
    /// Label of the file, as given to the parser (`.claude/workflow.yaml`, or
    /// whatever an API request called the body). Never an absolute path.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    /// Dotted path of the field, e.g. `agents[2].next` or `security.networkMode`.
    pub field: Option<String>,
    /// What is wrong, in one sentence without the location.
    pub message: String,
    /// Broad category, see [`ConfigErrorKind`].
    pub kind: ConfigErrorKind,
}

impl ConfigError {
    /// An error about the file as a whole (no line, no field).
    pub fn file_level(
        file: impl Into<String>,
        kind: ConfigErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            line: None,
            column: None,
            field: None,
            message: message.into(),
            kind,
        }
    }
}

/// `file:line:col: field: ` with the unknown parts left out.
fn prefix(file: &str, line: Option<usize>, column: Option<usize>, field: Option<&str>) -> String {
    let location = match (line, column) {
        (Some(line), Some(column)) => format!(":{line}:{column}"),
        (Some(line), None) => format!(":{line}"),
        (None, _) => String::new(),
    };
    let field = field.map_or(String::new(), |f| format!("{f}: "));
    format!("{file}{location}: {field}")
}

/// The candidate closest to `word` when it is close enough to be a likely
/// typo (same letters in another case, or at most two edits away), for
/// "did you mean …?" hints.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let distance = if candidate.to_lowercase() == lower {
            0
        } else {
            strsim::levenshtein(&lower, &candidate.to_lowercase())
        };
        let close_enough = distance <= 2 && distance < word.chars().count();
        if close_enough && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

impl fmt::Display for ConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Syntax => "syntax",
            Self::Invalid => "invalid",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(line: Option<usize>, column: Option<usize>, field: Option<&str>) -> ConfigError {
        ConfigError {
            file: ".claude/workflow.yaml".into(),
            line,
            column,
            field: field.map(str::to_owned),
            message: "no agent named `x`".into(),
            kind: ConfigErrorKind::Invalid,
        }
    }

    #[test]
    fn display_has_every_known_part() {
        assert_eq!(
            error(Some(12), Some(5), Some("agents[2].next")).to_string(),
            ".claude/workflow.yaml:12:5: agents[2].next: no agent named `x`"
        );
    }

    #[test]
    fn display_leaves_out_unknown_parts() {
        assert_eq!(
            error(Some(12), None, Some("agents[2].next")).to_string(),
            ".claude/workflow.yaml:12: agents[2].next: no agent named `x`"
        );
        assert_eq!(
            error(Some(3), Some(1), None).to_string(),
            ".claude/workflow.yaml:3:1: no agent named `x`"
        );
        assert_eq!(
            error(None, None, None).to_string(),
            ".claude/workflow.yaml: no agent named `x`"
        );
        // A column without a line is meaningless and not shown.
        assert_eq!(
            error(None, Some(4), Some("name")).to_string(),
            ".claude/workflow.yaml: name: no agent named `x`"
        );
    }

    #[test]
    fn suggestions() {
        let names = ["analyzer", "reviewer", "commenter"];
        assert_eq!(did_you_mean("analyser", names), Some("analyzer"));
        assert_eq!(did_you_mean("Reviewer", names), Some("reviewer"));
        assert_eq!(did_you_mean("deploy", names), None);
        assert_eq!(did_you_mean("x", ["y"]), None);
    }

    #[test]
    fn file_level_error() {
        let e = ConfigError::file_level("c.yaml", ConfigErrorKind::Read, "cannot read file");
        assert_eq!(e.to_string(), "c.yaml: cannot read file");
        assert_eq!(e.kind, ConfigErrorKind::Read);
        assert_eq!(e.kind.to_string(), "read");
    }
}
