//! `workflow.safety.validation`: whether a step's work passes the gate.
//!
//! After an agent of a gated workflow exits cleanly having changed files,
//! its runner ran the project's checks in the same workspace
//! ([`crate::runner::checks`]); [`evaluate`] turns their exits into a
//! verdict, a pure function of the gate, the changed files and the checks:
//!
//! * `requireTests` — `test.command` ran to an exit (whatever its status);
//! * `requirePassingTests` — … and exited 0;
//! * `minCoverage` — `test.coverage` exited 0 and printed a percentage
//!   (the last `NN%` or `NN.N%` of its output, else a last line that is a
//!   bare number) of at least the minimum.
//!
//! A step whose agent changed nothing passes (there is nothing to check).
//! The execution job ([`crate::jobs::execute`]) records the [`Report`] on
//! the execution; a failed gate fails the execution, so the workflow routes
//! it like any other error (`onError`).

use serde::{Deserialize, Serialize};

use crate::project_config::ValidationGate;
use crate::runner::checks::{CheckKind, CheckRun};

/// What the gate found; stored as JSON in `executions.validation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub passed: bool,
    /// Why nothing was checked, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tests: Option<CheckReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<CoverageReport>,
    /// Each requirement that was not met, for people.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

/// How a check command ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// The coverage measured, against the minimum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoverageReport {
    #[serde(flatten)]
    pub check: CheckReport,
    pub percent: Option<f64>,
    pub min: f64,
}

impl Report {
    /// The error recorded on a step whose gate failed.
    pub fn error(&self) -> String {
        format!("validation gate failed: {}", self.failures.join("; "))
    }
}

/// The gate's verdict on a step that ended cleanly.
pub fn evaluate(gate: &ValidationGate, changed_files: &[String], checks: &[CheckRun]) -> Report {
    let mut report = Report {
        passed: true,
        skipped: None,
        tests: None,
        coverage: None,
        failures: Vec::new(),
    };
    if !gate.needs_tests() {
        report.skipped = Some("the gate requires nothing".into());
        return report;
    }
    if changed_files.is_empty() {
        report.skipped = Some("the agent changed no files".into());
        return report;
    }
    let find = |kind| checks.iter().find(|c| c.kind == kind);
    let tests = find(CheckKind::Test);
    report.tests = tests.map(check_report);
    match tests {
        None => report.failures.push("the tests did not run".into()),
        Some(CheckRun {
            exit_code: None,
            error,
            ..
        }) => report.failures.push(format!(
            "the tests did not run to an end: {}",
            error.as_deref().unwrap_or("no exit status")
        )),
        Some(CheckRun {
            exit_code: Some(code),
            ..
        }) if *code != 0 && gate.require_passing_tests => report
            .failures
            .push(format!("the tests failed (exit code {code})")),
        Some(_) => {}
    }
    if let Some(min) = gate.min_coverage {
        let coverage = find(CheckKind::Coverage);
        let percent = coverage.and_then(|c| coverage_percent(&c.tail));
        report.coverage = coverage.map(|c| CoverageReport {
            check: check_report(c),
            percent,
            min,
        });
        match (coverage, percent) {
            (None, _) => report
                .failures
                .push("the coverage command did not run".into()),
            (Some(c), _) if c.exit_code != Some(0) => report.failures.push(match c.exit_code {
                Some(code) => format!("the coverage command failed (exit code {code})"),
                None => format!(
                    "the coverage command did not run to an end: {}",
                    c.error.as_deref().unwrap_or("no exit status")
                ),
            }),
            (Some(_), None) => report
                .failures
                .push("the coverage command printed no percentage".into()),
            (Some(_), Some(p)) if p + 1e-9 < min => report
                .failures
                .push(format!("coverage {p}% is below minCoverage {min}%")),
            (Some(_), Some(_)) => {}
        }
    }
    report.passed = report.failures.is_empty();
    report
}

fn check_report(run: &CheckRun) -> CheckReport {
    CheckReport {
        exit_code: run.exit_code,
        error: run.error.clone(),
        duration_ms: run.duration.as_millis() as u64,
    }
}

/// The coverage percentage a command printed: the last number directly
/// followed by `%` (`TOTAL … 84.21%`, `Coverage: 80 %` is not one), else a
/// last non-empty line that is a number.
pub fn coverage_percent(lines: &[String]) -> Option<f64> {
    for line in lines.iter().rev() {
        if let Some(p) = last_percentage(line) {
            return Some(p);
        }
    }
    let last = lines.iter().rev().find(|l| !l.trim().is_empty())?;
    last.trim()
        .parse::<f64>()
        .ok()
        .filter(|p| p.is_finite() && (0.0..=100.0).contains(p))
}

fn last_percentage(line: &str) -> Option<f64> {
    let bytes = line.as_bytes();
    let mut found = None;
    for (i, b) in bytes.iter().enumerate() {
        if *b != b'%' {
            continue;
        }
        let mut start = i;
        while start > 0 && (bytes[start - 1].is_ascii_digit() || bytes[start - 1] == b'.') {
            start -= 1;
        }
        if let Ok(p) = line[start..i].parse::<f64>()
            && (0.0..=100.0).contains(&p)
        {
            found = Some(p);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run(kind: CheckKind, exit_code: Option<i32>, tail: &[&str]) -> CheckRun {
        CheckRun {
            kind,
            exit_code,
            error: exit_code.is_none().then(|| "stopped".to_owned()),
            duration: Duration::from_millis(7),
            tail: tail.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn gate(tests: bool, passing: bool, min: Option<f64>) -> ValidationGate {
        ValidationGate {
            require_tests: tests,
            require_passing_tests: passing,
            min_coverage: min,
        }
    }

    const CHANGED: &[String] = &[];

    fn changed() -> Vec<String> {
        vec!["src/lib.rs".into()]
    }

    #[test]
    fn nothing_changed_nothing_checked() {
        let r = evaluate(&gate(true, true, Some(80.0)), CHANGED, &[]);
        assert!(r.passed);
        assert_eq!(r.skipped.as_deref(), Some("the agent changed no files"));
    }

    #[test]
    fn passing_tests_pass_and_failing_ones_fail() {
        let g = gate(true, true, None);
        let ok = evaluate(&g, &changed(), &[run(CheckKind::Test, Some(0), &[])]);
        assert!(ok.passed, "{ok:?}");
        assert_eq!(ok.tests.unwrap().exit_code, Some(0));
        let bad = evaluate(&g, &changed(), &[run(CheckKind::Test, Some(3), &[])]);
        assert!(!bad.passed);
        assert_eq!(
            bad.error(),
            "validation gate failed: the tests failed (exit code 3)"
        );
    }

    #[test]
    fn require_tests_alone_needs_them_run_not_passing() {
        let g = gate(true, false, None);
        assert!(evaluate(&g, &changed(), &[run(CheckKind::Test, Some(1), &[])]).passed);
        let stopped = evaluate(&g, &changed(), &[run(CheckKind::Test, None, &[])]);
        assert!(!stopped.passed);
        assert!(stopped.failures[0].contains("did not run to an end"));
        assert!(!evaluate(&g, &changed(), &[]).passed);
    }

    #[test]
    fn coverage_is_read_and_compared() {
        let g = gate(false, false, Some(80.0));
        let checks = |pct: &str| {
            vec![
                run(CheckKind::Test, Some(0), &[]),
                run(CheckKind::Coverage, Some(0), &["Filename  Lines", pct, ""]),
            ]
        };
        let ok = evaluate(&g, &changed(), &checks("TOTAL   120   10   91.67%"));
        assert!(ok.passed, "{ok:?}");
        assert_eq!(ok.coverage.as_ref().unwrap().percent, Some(91.67));
        let low = evaluate(&g, &changed(), &checks("TOTAL 72.5%"));
        assert!(!low.passed);
        assert_eq!(low.failures, ["coverage 72.5% is below minCoverage 80%"]);
        let none = evaluate(&g, &changed(), &checks("all good"));
        assert_eq!(
            none.failures,
            ["the coverage command printed no percentage"]
        );
        let exact = evaluate(&g, &changed(), &checks("80%"));
        assert!(exact.passed);
        let failed = evaluate(
            &g,
            &changed(),
            &[
                run(CheckKind::Test, Some(0), &[]),
                run(CheckKind::Coverage, Some(2), &["95%"]),
            ],
        );
        assert_eq!(
            failed.failures,
            ["the coverage command failed (exit code 2)"]
        );
    }

    #[test]
    fn percentages_are_found_where_tools_print_them() {
        let p = |lines: &[&str]| {
            coverage_percent(&lines.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        };
        assert_eq!(p(&["83.3"]), Some(83.3));
        assert_eq!(p(&["lines: 12.5% (1 of 8)", "done"]), Some(12.5));
        assert_eq!(p(&["a 10% b 20%"]), Some(20.0));
        assert_eq!(p(&["150%"]), None);
        assert_eq!(p(&["nothing"]), None);
        assert_eq!(p(&[]), None);
    }

    #[test]
    fn the_report_serializes_for_the_api() {
        let g = gate(true, true, Some(50.0));
        let r = evaluate(
            &g,
            &changed(),
            &[
                run(CheckKind::Test, Some(0), &[]),
                run(CheckKind::Coverage, Some(0), &["61%"]),
            ],
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["passed"], true);
        assert_eq!(json["tests"]["exitCode"], 0);
        assert_eq!(json["coverage"]["percent"], 61.0);
        assert_eq!(json["coverage"]["min"], 50.0);
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }
}
