//! The service's secrets, and masking their values out of everything stored.
//!
//! A project's `.claude/container.yaml` never holds a secret: its `env` and
//! `mcpServers[].env` values say `${NAME}`, and the worker resolves `NAME`
//! from its own secrets when it prepares a run. Two sources, read once when a
//! worker starts ([`crate::settings::WorkerArgs::load_secrets`]):
//!
//! * environment variables `CCS_SECRET_<NAME>` of the worker process
//!   (`CCS_SECRET_GITHUB_TOKEN=ghp_…` defines `GITHUB_TOKEN`); they win over
//! * the `--secrets-file` / `CCS_SECRETS_FILE`: one `NAME=value` per line;
//!   blank lines and lines starting with `#` are skipped, `export NAME=value`
//!   is accepted, the value runs verbatim to the end of the line (one pair of
//!   surrounding `"` or `'` is removed). A malformed line stops the worker at
//!   start, naming the line number, never the value.
//!
//! Produced here, consumed by [`crate::jobs::execute`]: resolved values go
//! into the agent's environment (and the MCP config file) only. The values a
//! run uses are handed to its job as a mask list; [`Masker`] replaces each
//! of them — raw and JSON-escaped — with `***` in every log line, the result
//! and the error before they are stored, so neither the database nor an API
//! answer ever holds one. A reference to an undefined secret fails the
//! execution before anything starts.
//!
//! Nothing is persisted, so a crash loses nothing: the next worker reads the
//! same sources again.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::Path;

use crate::project_config::interpolate;

/// The prefix of the environment variables that define secrets.
pub const ENV_PREFIX: &str = "CCS_SECRET_";

/// Why the secrets could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read the secrets file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("secrets file {path}, line {line}: {problem}")]
    Syntax {
        path: String,
        line: usize,
        problem: &'static str,
    },
}

/// Secret values by name. `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct Secrets {
    values: BTreeMap<String, String>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A `${NAME}` that no secret defines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field}: secret `{name}` is not defined; set {ENV_PREFIX}{name} in the worker's \
     environment or add `{name}=…` to its secrets file"
)]
pub struct UndefinedSecret {
    /// Where the reference is (`env.API_KEY`, `mcpServers[github].env.TOKEN`).
    pub field: String,
    pub name: String,
}

impl Secrets {
    /// Secrets from `file` (if any) and the `CCS_SECRET_*` variables of
    /// `env`, which win.
    ///
    /// # Errors
    ///
    /// An unreadable file, or a line that is not `NAME=value`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Self, SecretsError> {
        let mut values = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| SecretsError::Read {
                path: path.display().to_string(),
                source,
            })?;
            parse_file(&text, &mut values).map_err(|(line, problem)| SecretsError::Syntax {
                path: path.display().to_string(),
                line,
                problem,
            })?;
        }
        for (name, value) in env {
            let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
                continue;
            };
            if let Some(name) = name.strip_prefix(ENV_PREFIX)
                && crate::project_config::is_identifier(name)
            {
                values.insert(name.to_owned(), value.to_owned());
            }
        }
        Ok(Self { values })
    }

    /// Secrets given directly (tests, embedding).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// How many secrets are defined.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Replaces every `${NAME}` of `template` with the secret `NAME`, and
    /// records the values used in `used`. `field` names the place in errors.
    ///
    /// # Errors
    ///
    /// The first reference to an undefined secret.
    pub fn resolve(
        &self,
        template: &str,
        field: &str,
        used: &mut Vec<String>,
    ) -> Result<String, UndefinedSecret> {
        interpolate(template, |name| {
            let value = self.values.get(name)?;
            if !used.contains(value) {
                used.push(value.clone());
            }
            Some(value.clone())
        })
        .map_err(|name| UndefinedSecret {
            field: field.to_owned(),
            name,
        })
    }
}

/// Parses the secrets file; `Err((line number, problem))`.
fn parse_file(
    text: &str,
    values: &mut BTreeMap<String, String>,
) -> Result<(), (usize, &'static str)> {
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let trimmed = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let Some((name, value)) = trimmed.split_once('=') else {
            return Err((i + 1, "expected NAME=value"));
        };
        let name = name.trim();
        if !crate::project_config::is_identifier(name) {
            return Err((i + 1, "the name must be letters, digits and `_`"));
        }
        let value = value.strip_suffix('\r').unwrap_or(value);
        let value = ['"', '\'']
            .iter()
            .find_map(|q| {
                value
                    .strip_prefix(*q)
                    .and_then(|v| v.strip_suffix(*q))
                    .filter(|_| value.len() >= 2)
            })
            .unwrap_or(value);
        values.insert(name.to_owned(), value.to_owned());
    }
    Ok(())
}

/// The text that stands for a masked value.
pub const MASK: &str = "***";

/// Replaces secret values with [`MASK`] in text about to be stored.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Every form of every value.
    needles: Vec<String>,
    /// All of them at once (aho-corasick); `None` when there are none.
    matcher: Option<aho_corasick::AhoCorasick>,
}

impl Masker {
    /// A masker for `values`; empty values are ignored.
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut needles: Vec<String> = Vec::new();
        for value in values {
            let value = value.as_ref();
            if value.is_empty() {
                continue;
            }
            // The raw value, and as it appears inside a JSON string (the
            // agent's stream-json lines escape quotes, backslashes, control
            // characters).
            let json = serde_json::to_string(value).unwrap_or_default();
            let json = json
                .strip_prefix('"')
                .and_then(|j| j.strip_suffix('"'))
                .unwrap_or_default()
                .to_owned();
            for form in [value.to_owned(), json] {
                if !form.is_empty() && !needles.contains(&form) {
                    needles.push(form);
                }
            }
        }
        // Only a pattern set too large for memory fails to build.
        let matcher = (!needles.is_empty())
            .then(|| aho_corasick::AhoCorasick::new(&needles).ok())
            .flatten();
        Self { needles, matcher }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every secret value replaced by [`MASK`]: every byte
    /// that any occurrence of any value covers (overlapping ones included)
    /// is masked, each covered stretch by one [`MASK`].
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Some(matcher) = &self.matcher else {
            // No values, or a matcher that could not be built: fail closed.
            return if self.needles.is_empty() {
                Cow::Borrowed(text)
            } else {
                Cow::Borrowed(MASK)
            };
        };
        let mut covered: Vec<(usize, usize)> = matcher
            .find_overlapping_iter(text)
            .map(|m| (m.start(), m.end()))
            .collect();
        if covered.is_empty() {
            return Cow::Borrowed(text);
        }
        covered.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        let mut stretch: Option<(usize, usize)> = None;
        for (start, end) in covered {
            match &mut stretch {
                Some((_, e)) if start <= *e => *e = (*e).max(end),
                _ => {
                    if let Some((s, e)) = stretch.take() {
                        out.push_str(&text[at..s]);
                        out.push_str(MASK);
                        at = e;
                    }
                    stretch = Some((start, end));
                }
            }
        }
        if let Some((s, e)) = stretch {
            out.push_str(&text[at..s]);
            out.push_str(MASK);
            at = e;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }

    /// [`Masker::mask`] of an optional text, owned.
    pub fn mask_opt(&self, text: Option<String>) -> Option<String> {
        text.map(|t| match self.mask(&t) {
            Cow::Borrowed(_) => t,
            Cow::Owned(masked) => masked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn file_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets");
        std::fs::write(
            &path,
            "# comment\n\nGITHUB_TOKEN=ghp_file\nexport QUOTED=\"a b=c\"\n  SINGLE='x'\nEMPTY=\nCRLF=v\r\n",
        )
        .unwrap();
        let env = os(&[
            ("CCS_SECRET_GITHUB_TOKEN", "ghp_env"),
            ("CCS_SECRET_OTHER", "o"),
            ("CCS_SECRET_", "ignored"),
            ("PATH", "/bin"),
        ]);
        let s = Secrets::load(Some(&path), env).unwrap();
        let get = |name: &str| s.values.get(name).map(String::as_str);
        assert_eq!(get("GITHUB_TOKEN"), Some("ghp_env"));
        assert_eq!(get("QUOTED"), Some("a b=c"));
        assert_eq!(get("SINGLE"), Some("x"));
        assert_eq!(get("EMPTY"), Some(""));
        assert_eq!(get("CRLF"), Some("v"));
        assert_eq!(get("OTHER"), Some("o"));
        assert_eq!(get("PATH"), None);
        assert_eq!(s.len(), 6);
        let debug = format!("{s:?}");
        assert!(
            debug.contains("GITHUB_TOKEN") && !debug.contains("ghp_"),
            "{debug}"
        );
    }

    #[test]
    fn bad_files_name_the_line_not_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets");
        std::fs::write(&path, "OK=1\nno equals sign s3cret\n").unwrap();
        let err = Secrets::load(Some(&path), []).unwrap_err().to_string();
        assert!(err.contains("line 2: expected NAME=value"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        std::fs::write(&path, "BAD-NAME=s3cret\n").unwrap();
        let err = Secrets::load(Some(&path), []).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let err = Secrets::load(Some(&dir.path().join("missing")), [])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read the secrets file"), "{err}");
    }

    #[test]
    fn resolve_records_used_values() {
        let s = Secrets::from_pairs([("A", "alpha"), ("B", "beta")]);
        let mut used = Vec::new();
        assert_eq!(
            s.resolve("Bearer ${A} ${A} $${B}", "env.X", &mut used)
                .unwrap(),
            "Bearer alpha alpha ${B}"
        );
        assert_eq!(used, ["alpha"]);
        let err = s.resolve("${MISSING}", "env.Y", &mut used).unwrap_err();
        assert_eq!(err.name, "MISSING");
        assert_eq!(
            err.to_string(),
            "env.Y: secret `MISSING` is not defined; set CCS_SECRET_MISSING in the worker's \
             environment or add `MISSING=…` to its secrets file"
        );
    }

    #[test]
    fn masks_raw_and_json_forms() {
        let m = Masker::new(["s3cr\"et", "abc", "abcdef", ""]);
        assert_eq!(m.mask("x s3cr\"et y"), "x *** y");
        assert_eq!(m.mask(r#"{"result":"s3cr\"et"}"#), r#"{"result":"***"}"#);
        assert_eq!(m.mask("abcdef abc"), "*** ***");
        assert!(matches!(m.mask("nothing here"), Cow::Borrowed(_)));
        assert_eq!(m.mask_opt(Some("abc".into())).as_deref(), Some("***"));
        assert!(Masker::new(Vec::<String>::new()).is_empty());
        // Overlapping values: every byte either covers is masked.
        let m = Masker::new(["ab", "bcdef"]);
        assert_eq!(m.mask("xabcdefy ab"), format!("x{MASK}y {MASK}"));
    }
}
