//! Which deliveries start a run, which stop one, and which are ignored:
//! pure functions of the event, its payload and the project's
//! [`TriggerConfig`]. The table in `docs/github.md` is this module's.
//!
//! | event, action | triggers when | does |
//! |---|---|---|
//! | `issue_comment` created | the comment contains the phrase | a run on the issue or pull request |
//! | `pull_request_review_comment` created | the comment contains the phrase | a run on the pull request |
//! | `pull_request_review` submitted | the review body contains the phrase | a run on the pull request |
//! | `issues` / `pull_request` opened | the title or body contains the phrase | a run on it |
//! | `issues` labeled | the label is the trigger label | a run on the issue |
//! | `issues` / `pull_request` assigned | the assignee is the trigger assignee | a run on it |
//! | `pull_request` opened, synchronize, ready_for_review | the project's workflow has `trigger.endpoint: /webhook/github` (drafts skipped) | a run of the workflow |
//! | any comment above | it is the phrase followed by `stop` alone | cancels the thread's running run |
//!
//! Never triggering: the service's own comments (they carry
//! [`OWN_MARKER`], and the App's bot login is never obeyed), bots not
//! allow-listed, edits and deletions. Who may trigger is decided after this
//! by [`Decision::actor`]'s permission on the repository (write or better),
//! unless the actor is allow-listed ([`TriggerConfig::allows_without_check`]).

use serde::Deserialize;

use super::event::Account;

/// Every comment ccs writes carries this (invisible in rendered Markdown),
/// so that it never answers itself — whatever account it writes as.
pub const OWN_MARKER: &str = "<!-- ccs -->";

/// A project's trigger settings (`github` on the project; all optional).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TriggerConfig {
    /// The phrase that summons a run (default `@claude`), matched without
    /// regard to case, as a whole word.
    pub trigger_phrase: String,
    /// The issue label that starts a run (default `claude`).
    pub label: Option<String>,
    /// The user whose assignment starts a run (default: none).
    pub assignee: Option<String>,
    /// Logins that may trigger without a permission check.
    pub allowed_users: Vec<String>,
    /// Bot logins (`dependabot[bot]`, …) that may trigger; other bots never
    /// do.
    pub allowed_bots: Vec<String>,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        Self {
            trigger_phrase: "@claude".into(),
            label: Some("claude".into()),
            assignee: None,
            allowed_users: Vec::new(),
            allowed_bots: Vec::new(),
        }
    }
}

impl TriggerConfig {
    /// A project's settings: its own, else the defaults.
    pub fn of_project(project: &crate::store::Project) -> Self {
        project
            .github_config
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default()
    }

    /// Checks what a person wrote: a phrase of 1 to 100 characters with
    /// no whitespace.
    pub fn validate(&self) -> Result<(), String> {
        let p = self.trigger_phrase.trim();
        if p.is_empty() || p.len() > 100 || p.chars().any(char::is_whitespace) {
            return Err("github.triggerPhrase must be 1 to 100 characters without spaces".into());
        }
        Ok(())
    }

    /// Whether `login` may trigger without asking GitHub for its
    /// permission on the repository.
    pub fn allows_without_check(&self, login: &str) -> bool {
        self.allowed_users
            .iter()
            .chain(&self.allowed_bots)
            .any(|u| u.eq_ignore_ascii_case(login))
    }
}

/// An issue or a pull request: the thread a run answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Thread {
    pub number: i64,
    pub is_pull_request: bool,
}

/// Which kind of comment triggered a run (their reactions live at
/// different paths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentKind {
    /// A comment on an issue or on a pull request's conversation.
    Issue,
    /// A comment on a line of a pull request's diff.
    ReviewComment,
}

/// The comment that summoned a run, for the 👀 reaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerComment {
    pub id: i64,
    pub kind: CommentKind,
}

/// Why a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Mention,
    Label,
    Assigned,
    Opened,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mention => "mention",
            Self::Label => "label",
            Self::Assigned => "assigned",
            Self::Opened => "opened",
        }
    }
}

/// A run to start on a thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    pub thread: Thread,
    pub reason: Reason,
    pub actor: String,
    pub comment: Option<TriggerComment>,
    /// What was asked: the comment, or the issue's title and body.
    pub request: String,
    pub title: String,
    /// The issue's or pull request's description.
    pub body: String,
    /// A pull request's head: branch and repository (`owner/name`).
    pub head: Option<(String, String)>,
}

/// What a delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing; why, for the delivery's record.
    Ignore(String),
    /// A run of the agent on a thread.
    Run(RunRequest),
    /// A run of the project's workflow for a pull request, with its context.
    Workflow {
        thread: Thread,
        actor: String,
        context: serde_json::Map<String, serde_json::Value>,
    },
    /// Cancel the thread's running run.
    Stop { thread: Thread, actor: String },
}

impl Decision {
    /// Who asked (whose permission decides), unless nothing is asked.
    pub fn actor(&self) -> Option<&str> {
        match self {
            Self::Ignore(_) => None,
            Self::Run(r) => Some(&r.actor),
            Self::Workflow { actor, .. } | Self::Stop { actor, .. } => Some(actor),
        }
    }
}

/// What the project contributes besides its [`TriggerConfig`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ProjectTriggers<'a> {
    pub config: Option<&'a TriggerConfig>,
    /// The workflow's `trigger.endpoint` is `/webhook/github`.
    pub workflow_on_pull_requests: bool,
    /// The login of the GitHub App's bot (`name[bot]`), when known.
    pub app_login: Option<&'a str>,
}

// ----- payloads (only what is read) -----------------------------------------

#[derive(Debug, Deserialize)]
struct Payload {
    action: Option<String>,
    sender: Option<Account>,
    issue: Option<Issue>,
    pull_request: Option<PullRequest>,
    comment: Option<Comment>,
    review: Option<Review>,
    label: Option<Label>,
    assignee: Option<Account>,
    repository: Option<Repo>,
}

#[derive(Debug, Deserialize)]
struct Repo {
    full_name: String,
}

#[derive(Debug, Deserialize)]
struct Issue {
    number: i64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: Option<String>,
    /// Present when the issue is a pull request.
    pull_request: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct PullRequest {
    number: i64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    draft: bool,
    head: Option<Head>,
    base: Option<Head>,
    html_url: Option<String>,
    diff_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Head {
    #[serde(rename = "ref")]
    branch: String,
    sha: Option<String>,
    repo: Option<Repo>,
}

#[derive(Debug, Deserialize)]
struct Comment {
    id: i64,
    #[serde(default)]
    body: String,
    user: Option<Account>,
}

#[derive(Debug, Deserialize)]
struct Review {
    #[serde(default)]
    body: Option<String>,
    user: Option<Account>,
}

#[derive(Debug, Deserialize)]
struct Label {
    name: String,
}

/// Decides what delivery `event` with `payload` asks of a project.
pub fn decide(event: &str, payload: &serde_json::Value, project: ProjectTriggers<'_>) -> Decision {
    let default = TriggerConfig::default();
    let config = project.config.unwrap_or(&default);
    let p: Payload = match Payload::deserialize(payload) {
        Ok(p) => p,
        Err(e) => return Decision::Ignore(format!("unexpected {event} payload: {e}")),
    };
    let action = p.action.as_deref().unwrap_or_default();
    let Some(sender) = &p.sender else {
        return Decision::Ignore("the delivery names no sender".into());
    };
    if project
        .app_login
        .is_some_and(|app| app.eq_ignore_ascii_case(&sender.login))
    {
        return Decision::Ignore("sent by this service's own GitHub App".into());
    }
    if sender.is_bot()
        && !config
            .allowed_bots
            .iter()
            .any(|b| b.eq_ignore_ascii_case(&sender.login))
    {
        return Decision::Ignore(format!(
            "sent by the bot {}, which is not allowed",
            sender.login
        ));
    }
    let actor = sender.login.clone();
    let phrase = config.trigger_phrase.trim();
    match (event, action) {
        ("issue_comment", "created") | ("pull_request_review_comment", "created") => {
            let Some(comment) = &p.comment else {
                return Decision::Ignore("a comment event without a comment".into());
            };
            if comment.body.contains(OWN_MARKER) {
                return Decision::Ignore("a comment of this service's own".into());
            }
            if comment
                .user
                .as_ref()
                .is_some_and(|u| u.login != sender.login)
            {
                return Decision::Ignore("the comment's author is not its sender".into());
            }
            let (thread, title, body, head) = match (event, &p.issue, &p.pull_request) {
                ("issue_comment", Some(issue), _) => (
                    Thread {
                        number: issue.number,
                        is_pull_request: issue.pull_request.is_some(),
                    },
                    issue.title.clone(),
                    issue.body.clone().unwrap_or_default(),
                    None,
                ),
                (_, _, Some(pr)) => (
                    Thread {
                        number: pr.number,
                        is_pull_request: true,
                    },
                    pr.title.clone(),
                    pr.body.clone().unwrap_or_default(),
                    pr_head(pr),
                ),
                _ => {
                    return Decision::Ignore(
                        "a comment on neither an issue nor a pull request".into(),
                    );
                }
            };
            if !mentions(&comment.body, phrase) {
                return Decision::Ignore(format!("the comment does not mention {phrase}"));
            }
            if is_stop(&comment.body, phrase) {
                return Decision::Stop { thread, actor };
            }
            let kind = if event == "issue_comment" {
                CommentKind::Issue
            } else {
                CommentKind::ReviewComment
            };
            Decision::Run(RunRequest {
                thread,
                reason: Reason::Mention,
                actor,
                comment: Some(TriggerComment {
                    id: comment.id,
                    kind,
                }),
                request: comment.body.clone(),
                title,
                body,
                head,
            })
        }
        ("pull_request_review", "submitted") => {
            let (Some(review), Some(pr)) = (&p.review, &p.pull_request) else {
                return Decision::Ignore("a review event without a review".into());
            };
            let text = review.body.clone().unwrap_or_default();
            if review
                .user
                .as_ref()
                .is_some_and(|u| u.login != sender.login)
            {
                return Decision::Ignore("the review's author is not its sender".into());
            }
            if text.contains(OWN_MARKER) || !mentions(&text, phrase) {
                return Decision::Ignore(format!("the review does not mention {phrase}"));
            }
            let thread = Thread {
                number: pr.number,
                is_pull_request: true,
            };
            if is_stop(&text, phrase) {
                return Decision::Stop { thread, actor };
            }
            Decision::Run(RunRequest {
                thread,
                reason: Reason::Mention,
                actor,
                comment: None,
                request: text,
                title: pr.title.clone(),
                body: pr.body.clone().unwrap_or_default(),
                head: pr_head(pr),
            })
        }
        ("pull_request", "opened" | "synchronize" | "ready_for_review")
            if project.workflow_on_pull_requests =>
        {
            let Some(pr) = &p.pull_request else {
                return Decision::Ignore("a pull_request event without a pull request".into());
            };
            if pr.draft {
                return Decision::Ignore("a draft pull request".into());
            }
            Decision::Workflow {
                thread: Thread {
                    number: pr.number,
                    is_pull_request: true,
                },
                actor: actor.clone(),
                context: workflow_context(pr, p.repository.as_ref(), &actor, action),
            }
        }
        ("issues" | "pull_request", "opened" | "labeled" | "assigned") => {
            let (thread, title, body, head) = match (&p.issue, &p.pull_request) {
                (Some(issue), _) if event == "issues" => (
                    Thread {
                        number: issue.number,
                        is_pull_request: false,
                    },
                    issue.title.clone(),
                    issue.body.clone().unwrap_or_default(),
                    None,
                ),
                (_, Some(pr)) if event == "pull_request" => (
                    Thread {
                        number: pr.number,
                        is_pull_request: true,
                    },
                    pr.title.clone(),
                    pr.body.clone().unwrap_or_default(),
                    pr_head(pr),
                ),
                _ => return Decision::Ignore(format!("a {event} event without its subject")),
            };
            let reason = match action {
                "opened" if mentions(&title, phrase) || mentions(&body, phrase) => Reason::Opened,
                "labeled"
                    if event == "issues"
                        && config.label.as_deref().is_some_and(|want| {
                            p.label
                                .as_ref()
                                .is_some_and(|l| l.name.eq_ignore_ascii_case(want))
                        }) =>
                {
                    Reason::Label
                }
                "assigned"
                    if config.assignee.as_deref().is_some_and(|want| {
                        p.assignee
                            .as_ref()
                            .is_some_and(|a| a.login.eq_ignore_ascii_case(want))
                    }) =>
                {
                    Reason::Assigned
                }
                _ => return Decision::Ignore(format!("{event} {action}: no trigger matched")),
            };
            let request = format!("{title}\n\n{body}");
            Decision::Run(RunRequest {
                thread,
                reason,
                actor,
                comment: None,
                request,
                title,
                body,
                head,
            })
        }
        _ => Decision::Ignore(format!("{event} {action}: not a trigger")),
    }
}

fn pr_head(pr: &PullRequest) -> Option<(String, String)> {
    let head = pr.head.as_ref()?;
    Some((head.branch.clone(), head.repo.as_ref()?.full_name.clone()))
}

/// The workflow context of a pull request event (documented in
/// `docs/github.md`). `PR_DIFF` is filled in by the job, which fetches it.
fn workflow_context(
    pr: &PullRequest,
    repo: Option<&Repo>,
    sender: &str,
    action: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let mut c = serde_json::Map::new();
    let mut put = |k: &str, v: String| {
        c.insert(k.to_owned(), serde_json::Value::String(v));
    };
    put("PR_NUMBER", pr.number.to_string());
    put("PR_TITLE", pr.title.clone());
    put("PR_BODY", pr.body.clone().unwrap_or_default());
    put("PR_URL", pr.html_url.clone().unwrap_or_default());
    put("PR_DIFF_URL", pr.diff_url.clone().unwrap_or_default());
    put(
        "REPO",
        repo.map(|r| r.full_name.clone()).unwrap_or_default(),
    );
    put("SENDER", sender.to_owned());
    put("ACTION", action.to_owned());
    if let Some(head) = &pr.head {
        put("HEAD_REF", head.branch.clone());
        put("HEAD_SHA", head.sha.clone().unwrap_or_default());
    }
    if let Some(base) = &pr.base {
        put("BASE_REF", base.branch.clone());
    }
    c
}

/// Whether `text` mentions `phrase` as a whole word, ignoring case: the
/// characters around it are not letters, digits, `-`, `_` or `/`.
pub fn mentions(text: &str, phrase: &str) -> bool {
    find_mention(text, phrase).is_some()
}

fn find_mention(text: &str, phrase: &str) -> Option<usize> {
    if phrase.is_empty() {
        return None;
    }
    let lower = text.to_lowercase();
    let want = phrase.to_lowercase();
    let word = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '/' | '.');
    let mut from = 0;
    while let Some(at) = lower[from..].find(&want) {
        let start = from + at;
        let end = start + want.len();
        let before_ok = lower[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !word(c) || c == '.');
        let after = lower[end..].chars().next();
        // A trailing period or comma ends a sentence, not the word.
        let after_ok = after.is_none_or(|c| !word(c) || c == '.');
        if before_ok && after_ok {
            return Some(start);
        }
        from = end;
    }
    None
}

/// Whether the comment is the phrase followed by `stop` and nothing else
/// (punctuation aside).
pub fn is_stop(text: &str, phrase: &str) -> bool {
    let Some(at) = find_mention(text, phrase) else {
        return false;
    };
    let lower = text.to_lowercase();
    let before = lower[..at].trim();
    let after = lower[at + phrase.len()..]
        .trim()
        .trim_end_matches(['.', '!']);
    before.is_empty() && after == "stop"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(login: &str) -> serde_json::Value {
        json!({ "login": login, "type": if login.ends_with("[bot]") { "Bot" } else { "User" } })
    }

    fn issue_comment(body: &str, by: &str, on_pr: bool) -> serde_json::Value {
        let mut issue = json!({ "number": 7, "title": "Flaky", "body": "it flakes" });
        if on_pr {
            issue["pull_request"] = json!({ "url": "…" });
        }
        json!({
            "action": "created",
            "issue": issue,
            "comment": { "id": 11, "body": body, "user": user(by) },
            "repository": { "full_name": "acme/w" },
            "sender": user(by),
        })
    }

    fn run(d: Decision) -> RunRequest {
        match d {
            Decision::Run(r) => r,
            other => panic!("not a run: {other:?}"),
        }
    }

    const NONE: ProjectTriggers<'static> = ProjectTriggers {
        config: None,
        workflow_on_pull_requests: false,
        app_login: None,
    };

    #[test]
    fn mentions_are_whole_words_without_case() {
        assert!(mentions("@claude fix it", "@claude"));
        assert!(mentions("please, @Claude.", "@claude"));
        assert!(mentions("hey\n@CLAUDE: look", "@claude"));
        assert!(!mentions("@claudette fix it", "@claude"));
        assert!(!mentions("mail me at x@claude.com", "@claude"));
        assert!(!mentions("see acme/@claude", "@claude"));
        assert!(!mentions("nothing here", "@claude"));
        assert!(!mentions("anything", ""));
    }

    #[test]
    fn stop_is_the_phrase_and_stop_alone() {
        assert!(is_stop("@claude stop", "@claude"));
        assert!(is_stop("  @Claude   STOP! ", "@claude"));
        assert!(!is_stop("@claude stop the flaky test", "@claude"));
        assert!(!is_stop("please @claude stop", "@claude"));
        assert!(!is_stop("@claude", "@claude"));
    }

    #[test]
    fn a_comment_mentioning_the_phrase_runs_on_its_thread() {
        let r = run(decide(
            "issue_comment",
            &issue_comment("@claude fix it", "alice", false),
            NONE,
        ));
        assert_eq!(
            r.thread,
            Thread {
                number: 7,
                is_pull_request: false
            }
        );
        assert_eq!(r.reason, Reason::Mention);
        assert_eq!(r.actor, "alice");
        assert_eq!(
            r.comment,
            Some(TriggerComment {
                id: 11,
                kind: CommentKind::Issue
            })
        );
        assert_eq!(r.request, "@claude fix it");
        assert_eq!(r.title, "Flaky");
        let r = run(decide(
            "issue_comment",
            &issue_comment("@claude review", "alice", true),
            NONE,
        ));
        assert!(r.thread.is_pull_request);
        // Without the phrase, edited, or deleted: nothing.
        for (payload, why) in [
            (issue_comment("fix it", "alice", false), "does not mention"),
            (
                {
                    let mut p = issue_comment("@claude x", "alice", false);
                    p["action"] = json!("edited");
                    p
                },
                "not a trigger",
            ),
        ] {
            match decide("issue_comment", &payload, NONE) {
                Decision::Ignore(reason) => assert!(reason.contains(why), "{reason}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn review_comments_and_review_bodies_run_on_the_pull_request() {
        let pr = json!({ "number": 9, "title": "Add x", "body": "adds x",
            "head": { "ref": "feature", "sha": "abc", "repo": { "full_name": "acme/w" } },
            "base": { "ref": "main", "repo": { "full_name": "acme/w" } } });
        let payload = json!({ "action": "created", "pull_request": pr,
            "comment": { "id": 5, "body": "@claude why this line?", "user": user("bob") },
            "sender": user("bob") });
        let r = run(decide("pull_request_review_comment", &payload, NONE));
        assert_eq!(
            r.thread,
            Thread {
                number: 9,
                is_pull_request: true
            }
        );
        assert_eq!(r.comment.unwrap().kind, CommentKind::ReviewComment);
        assert_eq!(r.head, Some(("feature".into(), "acme/w".into())));
        let payload = json!({ "action": "submitted", "pull_request": pr,
            "review": { "body": "LGTM but @claude add tests", "user": user("bob") },
            "sender": user("bob") });
        let r = run(decide("pull_request_review", &payload, NONE));
        assert_eq!(r.comment, None);
        assert_eq!(r.request, "LGTM but @claude add tests");
    }

    #[test]
    fn opened_labeled_and_assigned() {
        let issue = json!({ "number": 3, "title": "Bug", "body": "@claude please look" });
        let opened = json!({ "action": "opened", "issue": issue, "sender": user("carol") });
        assert_eq!(run(decide("issues", &opened, NONE)).reason, Reason::Opened);
        let quiet = json!({ "action": "opened", "issue": { "number": 3, "title": "Bug", "body": "x" }, "sender": user("carol") });
        assert!(matches!(
            decide("issues", &quiet, NONE),
            Decision::Ignore(_)
        ));
        let labeled = json!({ "action": "labeled", "issue": { "number": 3, "title": "Bug" }, "label": { "name": "Claude" }, "sender": user("carol") });
        let r = run(decide("issues", &labeled, NONE));
        assert_eq!((r.reason, r.request.as_str()), (Reason::Label, "Bug\n\n"));
        let other_label = json!({ "action": "labeled", "issue": { "number": 3, "title": "Bug" }, "label": { "name": "bug" }, "sender": user("carol") });
        assert!(matches!(
            decide("issues", &other_label, NONE),
            Decision::Ignore(_)
        ));
        let assigned = json!({ "action": "assigned", "issue": { "number": 3, "title": "Bug" }, "assignee": user("claude-bot"), "sender": user("carol") });
        // No assignee configured by default.
        assert!(matches!(
            decide("issues", &assigned, NONE),
            Decision::Ignore(_)
        ));
        let config = TriggerConfig {
            assignee: Some("claude-bot".into()),
            ..Default::default()
        };
        let with = ProjectTriggers {
            config: Some(&config),
            ..NONE
        };
        assert_eq!(
            run(decide("issues", &assigned, with)).reason,
            Reason::Assigned
        );
        let pr_assigned = json!({ "action": "assigned", "pull_request": { "number": 4, "title": "PR" }, "assignee": user("claude-bot"), "sender": user("carol") });
        let r = run(decide("pull_request", &pr_assigned, with));
        assert_eq!(
            r.thread,
            Thread {
                number: 4,
                is_pull_request: true
            }
        );
    }

    #[test]
    fn pull_requests_start_the_workflow_when_it_listens_to_github() {
        let payload = json!({ "action": "synchronize", "sender": user("dave"),
            "repository": { "full_name": "acme/w" },
            "pull_request": { "number": 12, "title": "Speed up", "body": "faster", "draft": false,
                "html_url": "https://github.com/acme/w/pull/12",
                "head": { "ref": "fast", "sha": "f00", "repo": { "full_name": "acme/w" } },
                "base": { "ref": "main" } } });
        assert!(matches!(
            decide("pull_request", &payload, NONE),
            Decision::Ignore(_)
        ));
        let on = ProjectTriggers {
            workflow_on_pull_requests: true,
            ..NONE
        };
        match decide("pull_request", &payload, on) {
            Decision::Workflow {
                thread,
                actor,
                context,
            } => {
                assert_eq!(thread.number, 12);
                assert_eq!(actor, "dave");
                assert_eq!(context["PR_NUMBER"], "12");
                assert_eq!(context["PR_TITLE"], "Speed up");
                assert_eq!(context["REPO"], "acme/w");
                assert_eq!(context["SENDER"], "dave");
                assert_eq!(context["HEAD_REF"], "fast");
                assert_eq!(context["BASE_REF"], "main");
            }
            other => panic!("{other:?}"),
        }
        let mut draft = payload.clone();
        draft["pull_request"]["draft"] = json!(true);
        assert!(matches!(
            decide("pull_request", &draft, on),
            Decision::Ignore(_)
        ));
        let mut closed = payload;
        closed["action"] = json!("closed");
        assert!(matches!(
            decide("pull_request", &closed, on),
            Decision::Ignore(_)
        ));
    }

    #[test]
    fn stop_cancels_the_thread() {
        assert_eq!(
            decide(
                "issue_comment",
                &issue_comment("@claude stop", "alice", false),
                NONE
            ),
            Decision::Stop {
                thread: Thread {
                    number: 7,
                    is_pull_request: false
                },
                actor: "alice".into()
            }
        );
    }

    #[test]
    fn own_comments_and_unlisted_bots_never_trigger() {
        let own = issue_comment(
            &format!("{OWN_MARKER}\n@claude is working…"),
            "alice",
            false,
        );
        assert!(
            matches!(decide("issue_comment", &own, NONE), Decision::Ignore(r) if r.contains("own"))
        );
        let app = ProjectTriggers {
            app_login: Some("ccs-app[bot]"),
            ..NONE
        };
        let by_app = issue_comment("@claude again", "ccs-app[bot]", false);
        assert!(
            matches!(decide("issue_comment", &by_app, app), Decision::Ignore(r) if r.contains("own GitHub App"))
        );
        let by_bot = issue_comment("@claude bump deps", "dependabot[bot]", false);
        assert!(
            matches!(decide("issue_comment", &by_bot, NONE), Decision::Ignore(r) if r.contains("bot"))
        );
        let config = TriggerConfig {
            allowed_bots: vec!["dependabot[bot]".into()],
            ..Default::default()
        };
        let allowed = ProjectTriggers {
            config: Some(&config),
            ..NONE
        };
        assert_eq!(
            run(decide("issue_comment", &by_bot, allowed)).actor,
            "dependabot[bot]"
        );
        assert!(config.allows_without_check("Dependabot[bot]"));
        assert!(!config.allows_without_check("alice"));
    }

    #[test]
    fn a_custom_phrase_replaces_the_default() {
        let config = TriggerConfig {
            trigger_phrase: "/ccs".into(),
            ..Default::default()
        };
        let with = ProjectTriggers {
            config: Some(&config),
            ..NONE
        };
        assert!(matches!(
            decide(
                "issue_comment",
                &issue_comment("@claude x", "a", false),
                with
            ),
            Decision::Ignore(_)
        ));
        assert_eq!(
            run(decide(
                "issue_comment",
                &issue_comment("/ccs x", "a", false),
                with
            ))
            .request,
            "/ccs x"
        );
        assert!(
            TriggerConfig {
                trigger_phrase: "two words".into(),
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(TriggerConfig::default().validate().is_ok());
    }
}
