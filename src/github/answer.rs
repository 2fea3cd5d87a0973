//! What ccs writes in a GitHub thread: the tracking comment's text at each
//! stage of a run, and the prompt a thread's request becomes. Pure
//! functions; the jobs post them ([`crate::jobs::github_event`],
//! [`crate::jobs::github_answer`]).
//!
//! Every comment starts with [`OWN_MARKER`], so ccs never takes its own
//! comment for a request.

use crate::store::{Execution, ExecutionStatus, StepRow, WorkflowRun, run_status};

use super::triggers::{OWN_MARKER, RunRequest};

/// The most of a request, and of the thread's description, put into a
/// prompt.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// The most of a run's result quoted in the final comment (GitHub takes
/// 65 536 characters per comment).
pub const MAX_RESULT_CHARS: usize = 30_000;

/// The prompt of a run a thread asked for. What the people on GitHub wrote
/// is quoted as such: it is a request, never the service's instruction.
pub fn prompt(repo: &str, r: &RunRequest) -> String {
    let kind = if r.thread.is_pull_request {
        "pull request"
    } else {
        "issue"
    };
    let mut p = format!(
        "You are working in the repository {repo}, on {kind} #{} \"{}\".\n\
         @{} asked ({}):\n\n{}\n",
        r.thread.number,
        cut(&r.title, 300),
        r.actor,
        r.reason.as_str(),
        cut(&r.request, MAX_REQUEST_BYTES),
    );
    if !r.body.trim().is_empty() && r.request.trim() != r.body.trim() {
        p.push_str(&format!(
            "\nThe {kind}'s description:\n\n{}\n",
            cut(&r.body, MAX_REQUEST_BYTES)
        ));
    }
    if let Some((branch, head_repo)) = &r.head {
        p.push_str(&format!(
            "\nThe pull request's branch: {branch} ({head_repo}).\n"
        ));
    }
    p
}

/// The tracking comment while the run waits or runs.
pub fn working(link: &str, status: ExecutionStatus) -> String {
    let stage = match status {
        ExecutionStatus::Queued => "queued",
        _ => "working…",
    };
    format!("{OWN_MARKER}\n👀 **{stage}** — run {link}\n")
}

/// The tracking comment once the run has ended.
pub fn finished(e: &Execution, link: &str) -> String {
    let (icon, what) = match e.status {
        ExecutionStatus::Succeeded => ("✅", "done"),
        ExecutionStatus::Cancelled => ("⏹️", "stopped"),
        ExecutionStatus::TimedOut => ("⏱️", "timed out"),
        ExecutionStatus::BudgetExceeded => ("💸", "stopped at its budget"),
        _ => ("❌", "failed"),
    };
    let mut facts = vec![format!("run {link}")];
    if let Some(ms) = e.duration_ms {
        facts.push(
            humantime::format_duration(std::time::Duration::from_secs(
                (ms.max(0) as u64).div_ceil(1000),
            ))
            .to_string(),
        );
    }
    if let Some(cost) = e.cost_usd {
        facts.push(format!(
            "${cost:.4}{}",
            if e.cost_estimated { " (estimated)" } else { "" }
        ));
    }
    let mut text = format!("{OWN_MARKER}\n{icon} **{what}** — {}\n", facts.join(" · "));
    if let Some(result) = e.result.as_deref().filter(|r| !r.trim().is_empty()) {
        text.push_str(&format!("\n{}\n", cut(result, MAX_RESULT_CHARS)));
    }
    if e.status != ExecutionStatus::Succeeded
        && let Some(error) = &e.error
    {
        text.push_str(&format!("\n> {}\n", cut(error, 2000).replace('\n', "\n> ")));
    }
    text
}

/// The tracking comment of a workflow run: its state and a checklist of
/// its steps.
pub fn workflow(w: &WorkflowRun, steps: &[StepRow]) -> String {
    let ended = run_status::is_terminal(&w.status) || w.status == run_status::BUDGET_EXCEEDED;
    let icon = match w.status.as_str() {
        run_status::SUCCEEDED => "✅",
        run_status::FAILED | run_status::BUDGET_EXCEEDED => "❌",
        run_status::CANCELLED => "⏹️",
        _ => "👀",
    };
    let mut text = format!(
        "{OWN_MARKER}\n{icon} **workflow {}** — run `{}` · ${:.4}\n\n",
        w.status.replace('_', " "),
        w.id,
        w.cost_usd
    );
    for s in steps {
        let done = matches!(s.status.as_str(), "succeeded" | "failed" | "cancelled");
        text.push_str(&format!(
            "- [{}] {} ({})\n",
            if done { "x" } else { " " },
            s.agent,
            s.status.replace('_', " ")
        ));
    }
    if ended && let Some(error) = &w.error {
        text.push_str(&format!("\n> {}\n", cut(error, 2000).replace('\n', "\n> ")));
    }
    text
}

/// A one-off answer: the request was refused or could not start.
pub fn refused(why: &str) -> String {
    format!("{OWN_MARKER}\n⚠️ {why}\n")
}

/// At most `max` bytes of `s`, on a character boundary, marked when cut.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (cut)", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::triggers::{Reason, Thread};

    fn execution(status: ExecutionStatus) -> Execution {
        Execution {
            id: "e1".into(),
            project_id: 1,
            workflow_id: None,
            status,
            prompt: String::new(),
            source: "github".into(),
            idempotency_key: None,
            result: Some("Fixed the flaky test.".into()),
            error: None,
            cost_usd: Some(0.25),
            cost_estimated: false,
            num_turns: Some(2),
            session_id: None,
            exit_code: Some(0),
            duration_ms: Some(12_300),
            attempts: 1,
            cancel_requested: false,
            worker_id: None,
            api_key_id: None,
            created_at: 0,
            started_at: None,
            finished_at: None,
            timeout_ms: None,
            validation: None,
            base_execution_id: None,
            resume_from: None,
        }
    }

    #[test]
    fn the_final_comment_says_how_it_went() {
        let text = finished(&execution(ExecutionStatus::Succeeded), "`e1`");
        assert!(text.starts_with(OWN_MARKER), "{text}");
        assert!(
            text.contains("✅ **done** — run `e1` · 13s · $0.2500"),
            "{text}"
        );
        assert!(text.contains("Fixed the flaky test."), "{text}");
        let mut failed = execution(ExecutionStatus::Failed);
        failed.error = Some("the agent exited with code 1\nsecond line".into());
        let text = finished(&failed, "`e1`");
        assert!(text.contains("❌ **failed**"), "{text}");
        assert!(
            text.contains("> the agent exited with code 1\n> second line"),
            "{text}"
        );
        assert!(working("`e1`", ExecutionStatus::Running).contains("working…"));
    }

    #[test]
    fn the_prompt_quotes_the_request_and_is_bounded() {
        let r = RunRequest {
            thread: Thread {
                number: 7,
                is_pull_request: false,
            },
            reason: Reason::Mention,
            actor: "alice".into(),
            comment: None,
            request: "@claude fix it".into(),
            title: "Flaky".into(),
            body: "x".repeat(MAX_REQUEST_BYTES + 10),
            head: None,
        };
        let p = prompt("acme/w", &r);
        assert!(p.contains("issue #7 \"Flaky\""), "{p}");
        assert!(
            p.contains("@alice asked (mention):\n\n@claude fix it"),
            "{p}"
        );
        assert!(p.contains("… (cut)"));
        assert!(p.len() < 2 * MAX_REQUEST_BYTES);
    }
}
