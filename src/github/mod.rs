//! The GitHub integration: a mention, label or assignment on GitHub starts a
//! run, and the run answers in the issue or pull request.
//!
//! The moving parts, in the order a delivery meets them:
//!
//! | part | process | what it does |
//! |---|---|---|
//! | [`signature`] | API | checks `X-Hub-Signature-256` (HMAC-SHA256 of the raw body, constant-time) |
//! | [`ingest`] | API | validates, rate-limits per repository, records the delivery in `github_deliveries` with its `ccs::inbound-events` job in one transaction, answers `202` (`200` for a redelivery) |
//! | [`crate::jobs::github_event`] | worker | finds the project of the repository, asks [`triggers`] what the delivery wants, checks the sender's permission ([`Github::may_trigger`]), starts or cancels runs, reacts 👀 |
//! | [`crate::jobs::github_answer`] | worker | keeps the thread's tracking comment up to date until the run ends ([`answer`]) |
//! | [`client`] | worker | GitHub's REST API as a token or a GitHub App |
//!
//! **Crash safety.** A `202` means the delivery and its job are committed.
//! A worker that dies while acting on a delivery leaves the job to be
//! handed back by the reaper; the job's effects are keyed by the delivery
//! id, so a second run does what the first did not, and nothing twice.
//!
//! Setup, the trigger table and what each answer looks like:
//! `docs/github.md`.

pub mod answer;
pub mod client;
pub mod event;
pub mod ingest;
pub mod signature;
pub mod triggers;

pub use signature::WebhookSecret;

/// Checks a repository name: `owner/name`, each part 1 to 100 of GitHub's
/// characters (letters, digits, `-`, `_`, `.`).
pub fn parse_repository(s: &str) -> Result<String, String> {
    let s = s.trim();
    let ok = |part: &str| {
        !part.is_empty()
            && part.len() <= 100
            && part != "."
            && part != ".."
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match s.split_once('/') {
        Some((owner, name)) if ok(owner) && ok(name) => Ok(s.to_owned()),
        _ => Err(format!(
            "repository {s:?} must be `owner/name` (letters, digits, '-', '_', '.')"
        )),
    }
}

/// What workers need to act on GitHub: the client, and what it remembers
/// for a while (who may trigger, the App's own login).
pub struct Github {
    pub client: client::GithubClient,
    /// Base of the links to runs in comments (`--public-url`).
    pub public_url: Option<String>,
    permission_ttl: std::time::Duration,
    /// (repository, login) → may trigger, until.
    permissions:
        std::sync::Mutex<std::collections::HashMap<(String, String), (bool, std::time::Instant)>>,
    app_login: tokio::sync::OnceCell<Option<String>>,
}

impl std::fmt::Debug for Github {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Github")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl Github {
    /// The GitHub side of a worker, from its settings: `None` without
    /// credentials (a token, or an App id and key).
    pub fn from_args(args: &crate::settings::GithubArgs) -> anyhow::Result<Option<Self>> {
        use anyhow::Context as _;
        let credentials = match (
            &args.github_token,
            &args.github_app_id,
            &args.github_app_private_key_file,
        ) {
            (_, Some(app_id), Some(key_file)) => client::Credentials::App {
                app_id: app_id.clone(),
                private_key_pem: std::fs::read(key_file).with_context(|| {
                    format!("cannot read the GitHub App key {}", key_file.display())
                })?,
            },
            (_, Some(_), None) | (_, None, Some(_)) => anyhow::bail!(
                "a GitHub App needs both --github-app-id and --github-app-private-key-file"
            ),
            (Some(token), None, None) => client::Credentials::Token(token.clone()),
            (None, None, None) => return Ok(None),
        };
        let client = client::GithubClient::new(&args.github_api_url, credentials)?;
        Ok(Some(Self {
            client,
            public_url: args
                .public_url
                .as_deref()
                .map(|u| u.trim_end_matches('/').to_owned()),
            permission_ttl: args.github_permission_cache,
            permissions: Default::default(),
            app_login: tokio::sync::OnceCell::new(),
        }))
    }

    /// Whether `user` may trigger runs on `repo`: write permission or
    /// better, asked of GitHub and remembered for `--github-permission-cache`.
    pub async fn may_trigger(
        &self,
        installation: Option<i64>,
        repo: &str,
        user: &str,
    ) -> Result<bool, client::GithubError> {
        let key = (repo.to_owned(), user.to_ascii_lowercase());
        if let Ok(cache) = self.permissions.lock()
            && let Some((may, until)) = cache.get(&key)
            && std::time::Instant::now() < *until
        {
            return Ok(*may);
        }
        let may = client::can_write(&self.client.permission(installation, repo, user).await?);
        if let Ok(mut cache) = self.permissions.lock() {
            cache.retain(|_, (_, until)| std::time::Instant::now() < *until);
            cache.insert(key, (may, std::time::Instant::now() + self.permission_ttl));
        }
        Ok(may)
    }

    /// The App's bot login, asked once; `None` with a token (or when GitHub
    /// would not say: the comment marker still keeps ccs from answering
    /// itself).
    pub async fn app_login(&self) -> Option<&str> {
        self.app_login
            .get_or_init(|| async {
                match self.client.app_login().await {
                    Ok(login) => login,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot learn the GitHub App's login");
                        None
                    }
                }
            })
            .await
            .as_deref()
    }

    /// Where a person sees an execution.
    pub fn execution_link(&self, execution_id: &str) -> String {
        match &self.public_url {
            Some(base) => format!("[`{execution_id}`]({base}/api/v1/executions/{execution_id})"),
            None => format!("`{execution_id}`"),
        }
    }
}
