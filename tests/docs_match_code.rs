//! The docs name what the code has: every metric the code records is
//! described (`ccs::telemetry::METRICS`, its `# HELP`) and listed in
//! docs/metrics.md, and no doc, README or deploy file names a metric the
//! code does not export.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ccs::telemetry::METRICS;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files under `dir` whose names end with one of `exts`.
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path, exts));
        } else if exts
            .iter()
            .any(|e| path.extension().is_some_and(|x| x == *e))
        {
            out.push(path);
        }
    }
    out
}

/// Metric names the code records: the first string literal after
/// `metrics::counter!(`, `gauge!(` or `histogram!(`.
fn recorded_in_code() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for path in files(&root().join("src"), &["rs"]) {
        let text = std::fs::read_to_string(&path).unwrap();
        for mac in ["counter!(", "gauge!(", "histogram!("] {
            for (i, _) in text.match_indices(&format!("metrics::{mac}")) {
                let rest = &text[i..];
                let Some(open) = rest.find('"') else { continue };
                let name = &rest[open + 1..];
                let name = &name[..name.find('"').unwrap()];
                // `metrics::counter!(name, …)` with a variable: telemetry's own loop.
                if rest[..open].contains(',') {
                    continue;
                }
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// `ccs_…` metric names mentioned in `text` (histogram series suffixes
/// folded into their family).
fn metric_names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("ccs_") {
        if text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        if ["_total", "_seconds", "_depth"]
            .iter()
            .any(|s| family.ends_with(s))
        {
            out.insert(family.to_owned());
        }
    }
    out
}

#[test]
fn every_recorded_metric_is_described_and_documented() {
    let described: BTreeSet<String> = METRICS.iter().map(|(n, _, _)| n.to_string()).collect();
    let recorded = recorded_in_code();
    assert!(recorded.len() > 5, "{recorded:?}");
    for name in &recorded {
        assert!(
            described.contains(name),
            "{name} is recorded but not in telemetry::METRICS"
        );
    }
    let page = std::fs::read_to_string(root().join("docs/metrics.md")).unwrap();
    for (name, _, help) in METRICS {
        assert!(!help.is_empty(), "{name} has no help text");
        assert!(
            page.contains(&format!("| `{name}` |")),
            "docs/metrics.md has no row for {name}"
        );
    }
    // Nothing described that no code records (the cost counter is
    // rendered by telemetry itself).
    for name in &described {
        assert!(
            recorded.contains(name) || name == "ccs_execution_cost_usd_total",
            "{name} is in telemetry::METRICS but nothing records it"
        );
    }
}

#[test]
fn docs_name_only_metrics_that_exist() {
    let described: BTreeSet<String> = METRICS.iter().map(|(n, _, _)| n.to_string()).collect();
    let mut docs = files(&root().join("docs"), &["md"]);
    docs.extend(files(
        &root().join("deploy"),
        &["yml", "yaml", "json", "md"],
    ));
    docs.push(root().join("README.md"));
    docs.extend(files(&root().join("src"), &["rs"]));
    for path in docs {
        let text = std::fs::read_to_string(&path).unwrap();
        for name in metric_names_in(&text) {
            assert!(
                described.contains(&name),
                "{} names {name}, which ccs does not export",
                path.display()
            );
        }
    }
}
