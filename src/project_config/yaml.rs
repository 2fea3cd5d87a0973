//! The YAML front end: text in, typed value and a position index out.
//!
//! Two passes over the same text, both with `serde-saphyr`:
//!
//! 1. **Typed pass** — [`parse_document`] deserializes straight into the
//!    format's structs, through `serde_path_to_error` so a failure knows the
//!    dotted path of the field (`agents[2].container.tools`) as well as the
//!    line and column serde-saphyr attaches to every error.
//! 2. **Position pass** — [`SourceMap::build`] reads the document again into a
//!    small tree of `serde_saphyr::Spanned` nodes and flattens it into
//!    "dotted path → position of the key and of the value". Validation works
//!    on the typed values with paths and asks the map for the line, so the
//!    public types stay free of span wrappers.
//!
//! Parser options: duplicate keys are an error (serde-saphyr's default), the
//! nesting depth and event counts are bounded (its default budget, which is
//! what makes a YAML bomb in an API request body harmless), and booleans are
//! YAML 1.2's `true`/`false` only, so `readOnlyRoot: yes` is refused instead of
//! being read as a string or a boolean depending on the parser.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, IgnoredAny, Visitor};
use serde_saphyr::{Localizer, Location, MessageFormatter, SnippetMode, Spanned};

use super::error::{ConfigError, ConfigErrorKind};

/// Largest file accepted, in bytes. Configuration files are a few kilobytes;
/// this only stops a pathological input before the parser sees it.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// A 1-based line and column, and the byte offset of that point in the text
/// when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
    pub byte_offset: Option<usize>,
}

impl Pos {
    fn from_location(location: Location) -> Option<Self> {
        if location == Location::UNKNOWN || location.line() == 0 {
            return None;
        }
        Some(Self {
            line: usize::try_from(location.line()).ok()?,
            column: usize::try_from(location.column()).ok()?,
            byte_offset: location
                .span()
                .byte_offset()
                .and_then(|o| usize::try_from(o).ok()),
        })
    }
}

fn parser_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.with_snippet = false;
    options
}

/// Deserializes one YAML document of `text` into `T`.
///
/// `Ok(None)` when the document is empty (no content, or only comments).
pub(crate) fn parse_document<T: DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<Option<T>, ConfigError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(ConfigError::file_level(
            file,
            ConfigErrorKind::Read,
            format!("file is larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    let mut path: Option<String> = None;
    let result = serde_saphyr::with_deserializer_from_str_with_options(
        text,
        parser_options(),
        |deserializer| {
            serde_path_to_error::deserialize::<_, Option<T>>(deserializer).map_err(|e| {
                path = Some(e.path().to_string());
                e.into_inner()
            })
        },
    );
    result.map_err(|e| syntax_error(file, text, path.as_deref(), &e))
}

/// Turns a serde-saphyr error into a [`ConfigError`].
///
/// Placed at the node its path names when the document has that node (for a
/// missing field that is the mapping lacking it, where the parser would point
/// at its last key), else where the parser stopped.
fn syntax_error(
    file: &str,
    text: &str,
    path: Option<&str>,
    error: &serde_saphyr::Error,
) -> ConfigError {
    let indexed = path
        .filter(|p| !p.contains('?') && *p != ".")
        .and_then(|p| SourceMap::build(text).exact(p));
    let pos = indexed.or_else(|| error.location().and_then(Pos::from_location));
    let message = if matches!(
        error.without_snippet(),
        serde_saphyr::Error::MultipleDocuments { .. }
    ) {
        "a file holds one YAML document; remove the `---` separator and what follows".to_owned()
    } else {
        let mut options = serde_saphyr::RenderOptions::new(&PlainMessages);
        options.snippets = SnippetMode::Off;
        error.render_with_options(options)
    };
    ConfigError {
        file: file.to_owned(),
        line: pos.map(|p| p.line),
        column: pos.map(|p| p.column),
        field: path.and_then(clean_path),
        message,
        kind: ConfigErrorKind::Syntax,
    }
}

/// `serde_path_to_error` writes `.` for the root and `?` for a segment it
/// could not name (a key that failed to deserialize): keep what is known.
fn clean_path(path: &str) -> Option<String> {
    let known = match path.find('?') {
        Some(i) => &path[..i],
        None => path,
    };
    let known = known.trim_end_matches('.');
    (!known.is_empty()).then(|| known.to_owned())
}

/// serde-saphyr's messages for users (no developer hints such as option
/// names), without the " at line X, column Y" suffix:
/// [`ConfigError`] carries the location in its own fields.
struct PlainMessages;

struct NoLocationSuffix;

impl Localizer for NoLocationSuffix {
    fn attach_location<'a>(&self, base: Cow<'a, str>, _location: Location) -> Cow<'a, str> {
        base
    }

    fn alias_defined_at(&self, _defined: Location) -> String {
        String::new()
    }

    fn alias_used_at(&self, _used: Location) -> String {
        String::new()
    }
}

impl MessageFormatter for PlainMessages {
    fn localizer(&self) -> &dyn Localizer {
        &NoLocationSuffix
    }

    fn format_message<'a>(&self, error: &'a serde_saphyr::Error) -> Cow<'a, str> {
        serde_saphyr::UserMessageFormatter.format_message(error)
    }
}

// ---------------------------------------------------------------------------
// Position index

/// Where a node is: the key that names it (for a mapping entry) and the value.
#[derive(Debug, Clone, Copy)]
struct Entry {
    key: Option<Pos>,
    value: Option<Pos>,
}

/// Dotted path (`agents[2].next`, same spelling as `serde_path_to_error`,
/// keys as written in the file) → position.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceMap {
    entries: HashMap<String, Entry>,
}

impl SourceMap {
    /// Indexes every node of `text`. An index that cannot be built (only
    /// possible for text the typed pass already refused) is empty: errors then
    /// name the field without a line.
    pub fn build(text: &str) -> Self {
        let mut map = Self::default();
        let tree: Result<Spanned<Node>, _> =
            serde_saphyr::from_str_with_options(text, parser_options());
        if let Ok(root) = tree {
            map.record(String::new(), None, &root);
        }
        map
    }

    fn record(&mut self, path: String, key: Option<Pos>, node: &Spanned<Node>) {
        if let Node::Seq(items) = &node.value {
            for (i, item) in items.iter().enumerate() {
                self.record(format!("{path}[{i}]"), None, item);
            }
        }
        if let Node::Map(entries) = &node.value {
            for (k, v) in entries {
                let child = if path.is_empty() {
                    k.value.0.clone()
                } else {
                    format!("{path}.{}", k.value.0)
                };
                self.record(child, Pos::from_location(k.referenced), v);
            }
        }
        self.entries.insert(
            path,
            Entry {
                key,
                value: Pos::from_location(node.referenced),
            },
        );
    }

    /// Position to report for `path`: its key if it is a mapping entry, else
    /// the value; for a path not in the file (a missing field), the nearest
    /// enclosing one that is.
    pub fn field(&self, path: &str) -> Option<Pos> {
        let mut current = path;
        loop {
            if let Some(entry) = self.entries.get(current)
                && let Some(pos) = entry.key.or(entry.value)
            {
                return Some(pos);
            }
            current = parent(current)?;
        }
    }

    /// Position of the node at exactly `path`: its key, else its value.
    pub fn exact(&self, path: &str) -> Option<Pos> {
        self.entries.get(path).and_then(|e| e.key.or(e.value))
    }

    /// Position of the value at exactly `path`.
    pub fn value(&self, path: &str) -> Option<Pos> {
        self.entries.get(path).and_then(|e| e.value)
    }

    /// Position of the first occurrence of `needle` in the source text of the
    /// value at `path` (for a `${NAME}` inside a multi-line prompt). Falls back
    /// to the value's own position when the text cannot be found (escaped in a
    /// double-quoted string, or no byte offsets).
    pub fn find_in_value(&self, text: &str, path: &str, needle: &str) -> Option<Pos> {
        let start = self.value(path)?;
        let found = start
            .byte_offset
            .and_then(|offset| Some((offset, text.get(offset..)?)))
            .and_then(|(offset, rest)| Some(offset + rest.find(needle)?));
        let Some(at) = found else {
            return Some(start);
        };
        let before = text.get(..at)?;
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..)?.chars().count() + 1;
        Some(Pos {
            line,
            column,
            byte_offset: Some(at),
        })
    }
}

/// `agents[2].next` → `agents[2]` → `agents` → the root (`""`) → `None`.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// A YAML node with positions, only as much as the index needs.
enum Node {
    Scalar,
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<KeyText>, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;

        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML node")
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Node::Map(entries))
            }
        }

        deserializer.deserialize_any(NodeVisitor)
    }
}

/// A mapping key as text; a non-scalar key (legal YAML, never used by these
/// formats) becomes `?`.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyText;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping key")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }

            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText("~".to_owned()))
            }

            fn visit_none<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText("~".to_owned()))
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<KeyText, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(KeyText("?".to_owned()))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<KeyText, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(KeyText("?".to_owned()))
            }
        }

        deserializer.deserialize_any(KeyVisitor)
    }
}

// ---------------------------------------------------------------------------
// Collecting validation problems

/// Validation problems of one file, each placed with the [`SourceMap`].
pub(crate) struct Issues<'a> {
    file: &'a str,
    map: &'a SourceMap,
    found: Vec<ConfigError>,
}

impl<'a> Issues<'a> {
    pub fn new(file: &'a str, map: &'a SourceMap) -> Self {
        Self {
            file,
            map,
            found: Vec::new(),
        }
    }

    pub fn map(&self) -> &SourceMap {
        self.map
    }

    /// A problem with the field at `path`, reported at its key.
    pub fn field(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let pos = self.map.field(&path);
        self.at(path, pos, message);
    }

    /// A problem with the field at `path`, reported at `pos`.
    pub fn at(&mut self, path: impl Into<String>, pos: Option<Pos>, message: impl Into<String>) {
        let path = path.into();
        self.found.push(ConfigError {
            file: self.file.to_owned(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            field: (!path.is_empty()).then_some(path),
            message: message.into(),
            kind: ConfigErrorKind::Invalid,
        });
    }

    /// All problems, first in the file first (problems without a line last).
    pub fn into_sorted(mut self) -> Vec<ConfigError> {
        self.found
            .sort_by_key(|e| (e.line.unwrap_or(usize::MAX), e.column.unwrap_or(usize::MAX)));
        self.found
    }

    /// `Ok` when nothing was found, else the first problem in the file.
    pub fn finish(self) -> Result<(), ConfigError> {
        match self.into_sorted().into_iter().next() {
            Some(first) => Err(first),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only the errors are tested")]
    struct Doc {
        name: String,
        #[serde(default)]
        items: Vec<Item>,
        flag: Option<bool>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only the errors are tested")]
    struct Item {
        a: String,
    }

    fn err(text: &str) -> ConfigError {
        parse_document::<Doc>("f.yaml", text).unwrap_err()
    }

    #[test]
    fn typed_errors_carry_line_column_and_path() {
        let e = err("name: x\nitems:\n  - a: b\n  - a: [1]\n");
        assert_eq!((e.line, e.column), (Some(4), Some(5)));
        assert_eq!(e.field.as_deref(), Some("items[1].a"));
        assert_eq!(e.kind, ConfigErrorKind::Syntax);
        assert!(!e.message.contains("line"), "{}", e.message);

        let e = err("name: x\nitems:\n  - b: c\n");
        assert_eq!(e.line, Some(3));
        assert_eq!(e.field.as_deref(), Some("items[0].b"));
        assert!(e.message.contains("unknown field `b`"), "{}", e.message);
    }

    #[test]
    fn missing_fields_point_at_the_mapping() {
        let e = err("name: x\nitems:\n  - a: b\n  - {}\n");
        assert_eq!((e.line, e.column), (Some(4), Some(5)));
        assert_eq!(e.field.as_deref(), Some("items[1]"));
    }

    #[test]
    fn syntax_errors_use_the_parser_location() {
        let e = err("name: x\nitems:\n  - a: [b\n");
        assert_eq!(e.line, Some(3));
        assert_eq!(e.kind, ConfigErrorKind::Syntax);
    }

    #[test]
    fn root_errors_have_no_field() {
        let e = err("items: []\n");
        assert_eq!(e.field, None);
        assert!(e.message.contains("missing field `name`"));
        let e = err("- 1\n");
        assert_eq!(e.field, None);
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = err("name: x\nname: y\n");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("duplicate"), "{}", e.message);
        assert_eq!(e.field, None);
    }

    #[test]
    fn yaml_1_1_booleans_are_refused() {
        let e = err("name: x\nflag: yes\n");
        assert_eq!(e.line, Some(2));
        assert_eq!(e.field.as_deref(), Some("flag"));
    }

    #[test]
    fn multiple_documents_are_refused() {
        let e = err("name: x\n---\nname: y\n");
        assert!(e.message.contains("one YAML document"), "{}", e.message);
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn empty_documents_are_none() {
        assert!(parse_document::<Doc>("f", "").unwrap().is_none());
        assert!(
            parse_document::<Doc>("f", "# only a comment\n")
                .unwrap()
                .is_none()
        );
        assert!(parse_document::<Doc>("f", "~\n").unwrap().is_none());
    }

    #[test]
    fn oversized_input_is_refused() {
        let text = format!("name: {}\n", "x".repeat(MAX_FILE_BYTES));
        let e = parse_document::<Doc>("f", &text).unwrap_err();
        assert_eq!(e.kind, ConfigErrorKind::Read);
    }

    #[test]
    fn clean_path_keeps_the_known_part() {
        assert_eq!(clean_path("."), None);
        assert_eq!(clean_path("?"), None);
        assert_eq!(clean_path("a.b"), Some("a.b".into()));
        assert_eq!(clean_path("a.?"), Some("a".into()));
        assert_eq!(clean_path("a[1].?"), Some("a[1]".into()));
    }

    #[test]
    fn source_map_indexes_keys_items_and_values() {
        let text = "name: x\nitems:\n  - a: b\n  -   a: c\nnested:\n  deep:\n    k: [1, 2]\n";
        let map = SourceMap::build(text);
        let at = |p: &str| map.field(p).map(|p| (p.line, p.column));
        assert_eq!(at("name"), Some((1, 1)));
        assert_eq!(at("items"), Some((2, 1)));
        assert_eq!(at("items[1]"), Some((4, 7)));
        assert_eq!(at("items[1].a"), Some((4, 7)));
        assert_eq!(
            map.value("items[1].a").map(|p| (p.line, p.column)),
            Some((4, 10))
        );
        assert_eq!(at("nested.deep.k[1]"), Some((7, 12)));
        // Missing fields fall back to the nearest enclosing node.
        assert_eq!(at("nested.deep.missing"), Some((6, 3)));
        assert_eq!(at("items[7].a"), Some((2, 1)));
        assert_eq!(at("missing"), Some((1, 1)));
    }

    #[test]
    fn source_map_of_broken_text_is_empty() {
        let map = SourceMap::build("a: [\n");
        assert_eq!(map.field("a"), None);
    }

    #[test]
    fn find_in_value_locates_text_inside_block_scalars() {
        let text = "p: |\n  first line\n  uses ${x} here\nq: 1\n";
        let map = SourceMap::build(text);
        let pos = map.find_in_value(text, "p", "${x}").unwrap();
        assert_eq!((pos.line, pos.column), (3, 8));
        // Not found: the value's own position.
        let pos = map.find_in_value(text, "p", "${nope}").unwrap();
        assert_eq!(pos.line, 2);
        assert!(map.find_in_value(text, "missing", "${x}").is_none());
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent("a[2].next"), Some("a[2]"));
        assert_eq!(parent("a[2]"), Some("a"));
        assert_eq!(parent("a"), Some(""));
        assert_eq!(parent(""), None);
    }

    #[test]
    fn issues_report_the_first_in_the_file() {
        let map = SourceMap::build("a: 1\nb: 2\n");
        let mut issues = Issues::new("f", &map);
        issues.field("b", "second");
        issues.at("zzz", None, "no line");
        issues.field("a", "first");
        let first = issues.finish().unwrap_err();
        assert_eq!(first.message, "first");
        assert_eq!(first.line, Some(1));
        assert_eq!(first.kind, ConfigErrorKind::Invalid);
    }
}
