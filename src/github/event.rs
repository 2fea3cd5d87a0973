//! What ccs reads from every delivery before anything else: the event's
//! name and action, the repository, the sender and the installation. The
//! event-specific parts are read by [`super::triggers`].

use serde::Deserialize;

/// The events the inbound-events job acts on; any other is recorded as
/// ignored and answered `202`.
pub const HANDLED_EVENTS: &[&str] = &[
    "issue_comment",
    "issues",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
];

/// Longest `X-GitHub-Event` / `X-GitHub-Delivery` accepted.
pub const MAX_HEADER_LEN: usize = 100;

/// The fields every event carries (all optional: `ping` has no action,
/// an organisation event no repository).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Envelope {
    pub action: Option<String>,
    pub repository: Option<Repository>,
    pub sender: Option<Account>,
    pub installation: Option<Installation>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Repository {
    /// `owner/name`.
    pub full_name: String,
    #[serde(default)]
    pub default_branch: Option<String>,
}

/// A user, bot or organisation.
#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    pub login: String,
    /// `User`, `Bot` or `Organization`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

impl Account {
    pub fn is_bot(&self) -> bool {
        self.kind.as_deref() == Some("Bot") || self.login.ends_with("[bot]")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Installation {
    pub id: i64,
}

impl Envelope {
    /// Reads the envelope of a JSON object. The caller has checked that
    /// `body` is a JSON object; a field of the wrong type is an error.
    pub fn parse(body: &serde_json::Value) -> Result<Self, serde_json::Error> {
        Self::deserialize(body)
    }

    pub fn repository_name(&self) -> Option<&str> {
        self.repository.as_ref().map(|r| r.full_name.as_str())
    }
}

/// Whether ccs acts on `event`.
pub fn is_handled(event: &str) -> bool {
    HANDLED_EVENTS.contains(&event)
}
