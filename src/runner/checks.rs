//! The project's checks, run in the agent's workspace after the agent.
//!
//! A workflow whose `safety.validation` gate needs the project's tests
//! gives its steps [`Checks`]: `test.command` and, for `minCoverage`,
//! `test.coverage` from `container.yaml`. When the agent exits 0 having
//! changed files, the runner runs each command with `sh -c` in the same
//! workspace and the same kind of sandbox (the Docker runner: a container of
//! the same image, limits, user and network; the process runner: a child
//! with the same scrubbed environment), under the same `stop` token, so the
//! run's timeout and cancel cover them too. Their output reaches the caller
//! as [`Stream::Check`] lines; the runner reports each command's exit and
//! the tail of its output ([`CheckRun`]). Whether that passes the gate is
//! not the runner's business: [`crate::workflows::validation`] decides.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{OutputLine, Stream};

/// How many of a check's last output lines are kept for its report (the
/// coverage percentage is read from them).
pub const TAIL_LINES: usize = 50;

/// The commands of a validation gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checks {
    /// `test.command`: success is exit status 0.
    pub test: String,
    /// `test.coverage`: prints the coverage percentage.
    pub coverage: Option<String>,
}

impl Checks {
    /// The commands to run, in order, with their names.
    pub fn commands(&self) -> Vec<(CheckKind, &str)> {
        let mut commands = vec![(CheckKind::Test, self.test.as_str())];
        if let Some(coverage) = &self.coverage {
            commands.push((CheckKind::Coverage, coverage.as_str()));
        }
        commands
    }
}

/// Which check a command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    Test,
    Coverage,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Coverage => "coverage",
        }
    }
}

/// How one check command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRun {
    pub kind: CheckKind,
    /// Its exit code; `None` when it was killed or could not start.
    pub exit_code: Option<i32>,
    /// Why it did not run to an exit, when it did not.
    pub error: Option<String>,
    pub duration: Duration,
    /// Its last [`TAIL_LINES`] output lines (stdout and stderr as printed).
    pub tail: Vec<String>,
}

impl CheckRun {
    /// A check that could not be started (or run) at all.
    pub fn not_run(kind: CheckKind, error: String, tail: Vec<String>) -> Self {
        Self {
            kind,
            exit_code: None,
            error: Some(error),
            duration: Duration::ZERO,
            tail,
        }
    }
}

/// Whether the runner should run the checks after the agent: only for a
/// clean exit that changed something (nothing changed, nothing to check).
pub fn should_run(
    checks: Option<&Checks>,
    exit_code: Option<i32>,
    stopped: bool,
    changed: &[String],
) -> bool {
    checks.is_some() && !stopped && exit_code == Some(0) && !changed.is_empty()
}

/// A channel for one check's output: what is sent to it reaches `lines` as
/// [`Stream::Check`] lines; the returned task ends, once every sender is
/// dropped, with the last [`TAIL_LINES`] lines.
pub fn relay(
    lines: mpsc::Sender<OutputLine>,
) -> (mpsc::Sender<OutputLine>, JoinHandle<Vec<String>>) {
    let (tx, mut rx) = mpsc::channel::<OutputLine>(64);
    let task = tokio::spawn(async move {
        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        while let Some(line) = rx.recv().await {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.text.clone());
            // The caller may be gone (shutting down): keep draining so the
            // check never blocks on a full channel.
            let _ = lines
                .send(OutputLine {
                    stream: Stream::Check,
                    text: line.text,
                })
                .await;
        }
        tail.into_iter().collect()
    });
    (tx, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_run_only_after_a_clean_exit_that_changed_files() {
        let checks = Checks {
            test: "make test".into(),
            coverage: None,
        };
        let changed = vec!["src/lib.rs".to_owned()];
        assert!(should_run(Some(&checks), Some(0), false, &changed));
        assert!(!should_run(None, Some(0), false, &changed));
        assert!(!should_run(Some(&checks), Some(1), false, &changed));
        assert!(!should_run(Some(&checks), None, false, &changed));
        assert!(!should_run(Some(&checks), Some(0), true, &changed));
        assert!(!should_run(Some(&checks), Some(0), false, &[]));
    }

    #[test]
    fn commands_come_test_first() {
        let checks = Checks {
            test: "t".into(),
            coverage: Some("c".into()),
        };
        assert_eq!(
            checks.commands(),
            vec![(CheckKind::Test, "t"), (CheckKind::Coverage, "c")]
        );
    }

    #[tokio::test]
    async fn relay_tags_lines_and_keeps_the_tail() {
        let (out_tx, mut out_rx) = mpsc::channel(1024);
        let (tx, tail) = relay(out_tx);
        for i in 0..(TAIL_LINES + 5) {
            tx.send(OutputLine {
                stream: Stream::Stdout,
                text: format!("line {i}"),
            })
            .await
            .unwrap();
        }
        drop(tx);
        let tail = tail.await.unwrap();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail[0], "line 5");
        let first = out_rx.recv().await.unwrap();
        assert_eq!(first.stream, Stream::Check);
        assert_eq!(first.text, "line 0");
    }
}
