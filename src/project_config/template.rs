//! `${NAME}` references in prompts and `env` values: syntax, scanning and
//! substitution, defined once for every user of the configuration.
//!
//! * `${NAME}` is a reference when `NAME` is an identifier
//!   (`[A-Za-z_][A-Za-z0-9_]*`). Anything else between `${` and `}` (`${ x }`,
//!   `${a.b}`, `${VAR:-default}`, an unclosed `${`) is ordinary text, so shell
//!   snippets quoted in a prompt stay as they are.
//! * `$${NAME}` is an escape: it stands for the literal text `${NAME}`.
//! * By convention (the seed's), **UPPER_CASE** names come from the run's
//!   context (`${PR_DIFF}`, `${PR_NUMBER}`, or a secret in `env`) and
//!   **lower_case** names are the `output` of an earlier agent
//!   (`${analysis_result}`); see [`is_context_name`].

/// One `${NAME}` found in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference<'a> {
    /// The name between the braces.
    pub name: &'a str,
    /// Byte offset of the `$` in the scanned text.
    pub offset: usize,
}

/// A piece of a scanned template.
enum Piece<'a> {
    Text(&'a str),
    Reference(Reference<'a>),
}

/// Whether `name` is an identifier: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `name` follows the context-variable convention: UPPER_CASE
/// (`[A-Z][A-Z0-9_]*`), like `PR_DIFF` or `GITHUB_TOKEN`.
pub fn is_context_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Splits `template` into text and references (escapes already turned into text).
fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut consumed = 0;
    while let Some(dollar) = rest.find('$') {
        let after = &rest[dollar..];
        if after.starts_with("$${") {
            // Escape: emit everything up to and including the first `$`,
            // skip the second one.
            out.push(Piece::Text(&rest[..=dollar]));
            rest = &rest[dollar + 2..];
            consumed += dollar + 2;
            continue;
        }
        if let Some(body) = after.strip_prefix("${")
            && let Some(close) = body.find('}')
        {
            let name = &body[..close];
            if is_identifier(name) {
                out.push(Piece::Text(&rest[..dollar]));
                out.push(Piece::Reference(Reference {
                    name,
                    offset: consumed + dollar,
                }));
                let skip = dollar + 2 + close + 1;
                rest = &rest[skip..];
                consumed += skip;
                continue;
            }
        }
        // A lone `$`: ordinary text.
        out.push(Piece::Text(&rest[..=dollar]));
        rest = &rest[dollar + 1..];
        consumed += dollar + 1;
    }
    out.push(Piece::Text(rest));
    out
}

/// Every `${NAME}` reference in `template`, in order (escaped ones excluded).
pub fn references(template: &str) -> Vec<Reference<'_>> {
    pieces(template)
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Reference(r) => Some(r),
            Piece::Text(_) => None,
        })
        .collect()
}

/// Replaces every `${NAME}` with `lookup(NAME)` and every `$${` with `${`.
///
/// # Errors
///
/// The name of the first reference `lookup` does not know.
pub fn interpolate<F>(template: &str, mut lookup: F) -> Result<String, String>
where
    F: FnMut(&str) -> Option<String>,
{
    let mut out = String::with_capacity(template.len());
    for piece in pieces(template) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Reference(r) => match lookup(r.name) {
                Some(value) => out.push_str(&value),
                None => return Err(r.name.to_owned()),
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<&str> {
        references(text).into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn finds_references_in_order() {
        assert_eq!(
            names("Post to PR #${PR_NUMBER}:\n${review_text} ${PR_NUMBER}"),
            ["PR_NUMBER", "review_text", "PR_NUMBER"]
        );
        let refs = references("ab${x}");
        assert_eq!(refs[0].offset, 2);
    }

    #[test]
    fn ignores_non_references() {
        assert!(names("$HOME ${ x } ${a.b} ${VAR:-d} ${} ${1x} ${unclosed $ $$").is_empty());
        assert_eq!(names("${ok}${"), ["ok"]);
    }

    #[test]
    fn escapes_are_not_references() {
        assert!(names("$${x}").is_empty());
        assert_eq!(names("$${x} ${y}"), ["y"]);
        assert_eq!(references("$${x} ${y}")[0].offset, 6);
    }

    #[test]
    fn interpolates() {
        let lookup = |name: &str| match name {
            "PR_DIFF" => Some("diff --git".to_owned()),
            "x" => Some("X".to_owned()),
            _ => None,
        };
        assert_eq!(
            interpolate("a ${PR_DIFF} b ${x}${x} $${x} $5 ${ x }", lookup).unwrap(),
            "a diff --git b XX ${x} $5 ${ x }"
        );
        assert_eq!(
            interpolate("${x} ${missing}", lookup).unwrap_err(),
            "missing"
        );
        assert_eq!(
            interpolate("héllo ${x} wörld", lookup).unwrap(),
            "héllo X wörld"
        );
    }

    #[test]
    fn context_names_are_upper_case() {
        for name in ["PR_DIFF", "A", "X1", "GITHUB_TOKEN"] {
            assert!(is_context_name(name), "{name}");
        }
        for name in ["review_text", "Pr", "_X", "1A", "", "PR-DIFF"] {
            assert!(!is_context_name(name), "{name}");
        }
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("_a1"));
        assert!(!is_identifier("1a"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("a-b"));
    }
}
