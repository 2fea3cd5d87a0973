//! GitHub's REST API, the few calls ccs makes, over `reqwest`, with the
//! two ways GitHub lets a service authenticate:
//!
//! * **a GitHub App** (recommended): ccs signs a JWT with the App's private
//!   key (RS256, `iat` 60 s in the past against clock drift, `exp` 9 minutes
//!   ahead — GitHub refuses more than 10), exchanges it for an
//!   *installation token* of the installation the delivery came from
//!   (`POST /app/installations/{id}/access_tokens`), and caches that token
//!   until 5 minutes before it expires (they live one hour; runs outlive
//!   one token, so every call asks the cache);
//! * **a personal access token** (`CCS_GITHUB_TOKEN`): used as is.
//!
//! Tokens are [`Token`]s: `Debug` prints `***`, nothing logs them, and
//! error messages carry GitHub's status and message, never a header.
//!
//! Calls: a collaborator's permission, reactions, issue comments (create,
//! update), a pull request's diff, the App's own login. Every answer is
//! bounded ([`MAX_ANSWER_BYTES`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::triggers::{CommentKind, TriggerComment};

/// GitHub's API version ccs speaks.
pub const API_VERSION: &str = "2022-11-28";

/// The largest answer read (a diff is cut there).
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// An installation token is renewed when it has less than this left.
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A GitHub token. `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token's text, for an `Authorization` header or a git
    /// credential; never for a log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl std::str::FromStr for Token {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err("a GitHub token must not be empty".into());
        }
        Ok(Self(s.trim().to_owned()))
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("GitHub answered {status} to {what}: {message}")]
    Status {
        status: u16,
        what: String,
        message: String,
    },
    #[error("cannot reach GitHub for {what}: {source}")]
    Transport {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("unexpected answer from GitHub to {what}: {message}")]
    Answer { what: String, message: String },
    #[error("GitHub App authentication: {0}")]
    AppAuth(String),
    #[error("a GitHub App needs the delivery's installation id")]
    NoInstallation,
}

impl GithubError {
    /// Worth trying again later (GitHub or the network had a moment).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// How ccs authenticates.
pub enum Credentials {
    /// A personal access token (or any token GitHub takes as is).
    Token(Token),
    /// A GitHub App: its id and RSA private key (PEM).
    App {
        app_id: String,
        private_key_pem: Vec<u8>,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Credentials::Token(***)"),
            Self::App { app_id, .. } => write!(f, "Credentials::App({app_id}, key ***)"),
        }
    }
}

enum Auth {
    Token(Token),
    App(AppAuth),
}

struct AppAuth {
    app_id: String,
    key: jsonwebtoken::EncodingKey,
    /// Installation id → token and when it stops being used.
    tokens: Mutex<HashMap<i64, (Token, Instant)>>,
}

/// The claims of a GitHub App JWT.
#[derive(Debug, serde::Serialize, Deserialize)]
pub struct AppClaims {
    pub iat: u64,
    pub exp: u64,
    pub iss: String,
}

impl AppAuth {
    /// A JWT for `/app` calls: RS256, issued 60 s ago, valid 9 minutes.
    fn jwt(&self) -> Result<String, GithubError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = AppClaims {
            iat: now.saturating_sub(60),
            exp: now + 9 * 60,
            iss: self.app_id.clone(),
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &self.key,
        )
        .map_err(|e| GithubError::AppAuth(format!("cannot sign the JWT: {e}")))
    }

    fn cached(&self, installation: i64) -> Option<Token> {
        let tokens = self.tokens.lock().ok()?;
        let (token, use_until) = tokens.get(&installation)?;
        (Instant::now() < *use_until).then(|| token.clone())
    }
}

/// A client of GitHub's REST API.
pub struct GithubClient {
    http: reqwest::Client,
    api_url: String,
    auth: Auth,
}

impl fmt::Debug for GithubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubClient")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct InstallationToken {
    token: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Deserialize)]
struct PermissionAnswer {
    permission: String,
}

#[derive(Deserialize)]
struct Created {
    id: i64,
}

#[derive(Deserialize)]
struct AppAnswer {
    slug: String,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    message: Option<String>,
}

impl GithubClient {
    /// A client of the API at `api_url` (`https://api.github.com`, or a
    /// GitHub Enterprise Server's `https://HOST/api/v3`).
    pub fn new(api_url: &str, credentials: Credentials) -> Result<Self, GithubError> {
        let auth = match credentials {
            Credentials::Token(t) => Auth::Token(t),
            Credentials::App {
                app_id,
                private_key_pem,
            } => Auth::App(AppAuth {
                app_id,
                key: jsonwebtoken::EncodingKey::from_rsa_pem(&private_key_pem).map_err(|e| {
                    GithubError::AppAuth(format!("the private key is not an RSA PEM key: {e}"))
                })?,
                tokens: Mutex::new(HashMap::new()),
            }),
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("ccs/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|source| GithubError::Transport {
                what: "building the client".into(),
                source,
            })?;
        Ok(Self {
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            auth,
        })
    }

    /// The token to act on a repository of `installation` with: the
    /// personal token, or the installation's (cached, renewed 5 minutes
    /// before it expires).
    pub async fn token(&self, installation: Option<i64>) -> Result<Token, GithubError> {
        let app = match &self.auth {
            Auth::Token(t) => return Ok(t.clone()),
            Auth::App(app) => app,
        };
        let installation = installation.ok_or(GithubError::NoInstallation)?;
        if let Some(token) = app.cached(installation) {
            return Ok(token);
        }
        let what = format!("POST /app/installations/{installation}/access_tokens");
        let answer: InstallationToken = self
            .send(
                self.http
                    .post(format!(
                        "{}/app/installations/{installation}/access_tokens",
                        self.api_url
                    ))
                    .bearer_auth(app.jwt()?),
                &what,
            )
            .await?;
        let left = (answer.expires_at - chrono::Utc::now())
            .to_std()
            .unwrap_or_default();
        let use_until = Instant::now() + left.saturating_sub(TOKEN_REFRESH_MARGIN);
        let token = Token(answer.token);
        if let Ok(mut tokens) = app.tokens.lock() {
            tokens.insert(installation, (token.clone(), use_until));
        }
        Ok(token)
    }

    /// The App's bot login (`<slug>[bot]`), whose comments never trigger;
    /// `None` with a personal token.
    pub async fn app_login(&self) -> Result<Option<String>, GithubError> {
        let Auth::App(app) = &self.auth else {
            return Ok(None);
        };
        let answer: AppAnswer = self
            .send(
                self.http
                    .get(format!("{}/app", self.api_url))
                    .bearer_auth(app.jwt()?),
                "GET /app",
            )
            .await?;
        Ok(Some(format!("{}[bot]", answer.slug)))
    }

    /// A user's permission on a repository: `admin`, `write`, `read` or
    /// `none` (`maintain` counts as `write`, `triage` as `read`).
    pub async fn permission(
        &self,
        installation: Option<i64>,
        repo: &str,
        user: &str,
    ) -> Result<String, GithubError> {
        let path = format!("/repos/{repo}/collaborators/{user}/permission");
        let answer: PermissionAnswer = self.get(installation, &path).await?;
        Ok(answer.permission)
    }

    /// Adds a reaction (`eyes`, `+1`, …) to a comment.
    pub async fn react(
        &self,
        installation: Option<i64>,
        repo: &str,
        comment: TriggerComment,
        content: &str,
    ) -> Result<(), GithubError> {
        let kind = match comment.kind {
            CommentKind::Issue => "issues",
            CommentKind::ReviewComment => "pulls",
        };
        let path = format!("/repos/{repo}/{kind}/comments/{}/reactions", comment.id);
        let _: serde_json::Value = self
            .write(
                installation,
                reqwest::Method::POST,
                &path,
                &serde_json::json!({ "content": content }),
            )
            .await?;
        Ok(())
    }

    /// Comments on an issue or pull request; returns the comment's id.
    pub async fn comment(
        &self,
        installation: Option<i64>,
        repo: &str,
        number: i64,
        body: &str,
    ) -> Result<i64, GithubError> {
        let path = format!("/repos/{repo}/issues/{number}/comments");
        let created: Created = self
            .write(
                installation,
                reqwest::Method::POST,
                &path,
                &serde_json::json!({ "body": body }),
            )
            .await?;
        Ok(created.id)
    }

    /// Replaces an issue comment's body.
    pub async fn update_comment(
        &self,
        installation: Option<i64>,
        repo: &str,
        comment_id: i64,
        body: &str,
    ) -> Result<(), GithubError> {
        let path = format!("/repos/{repo}/issues/comments/{comment_id}");
        let _: serde_json::Value = self
            .write(
                installation,
                reqwest::Method::PATCH,
                &path,
                &serde_json::json!({ "body": body }),
            )
            .await?;
        Ok(())
    }

    /// A pull request's diff, cut at `max_bytes`.
    pub async fn pull_diff(
        &self,
        installation: Option<i64>,
        repo: &str,
        number: i64,
        max_bytes: usize,
    ) -> Result<String, GithubError> {
        let path = format!("/repos/{repo}/pulls/{number}");
        let what = format!("GET {path} (diff)");
        let token = self.token(installation).await?;
        let response = self
            .http
            .get(format!("{}{path}", self.api_url))
            .bearer_auth(token.expose())
            .header("Accept", "application/vnd.github.diff")
            .header("X-GitHub-Api-Version", API_VERSION)
            .send()
            .await
            .map_err(|source| GithubError::Transport {
                what: what.clone(),
                source,
            })?;
        let bytes = read_bounded(response, &what).await?;
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if text.len() > max_bytes {
            let mut cut = max_bytes;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("\n… (diff cut)\n");
        }
        Ok(text)
    }

    async fn get<T: DeserializeOwned>(
        &self,
        installation: Option<i64>,
        path: &str,
    ) -> Result<T, GithubError> {
        let token = self.token(installation).await?;
        self.send(
            self.http
                .get(format!("{}{path}", self.api_url))
                .bearer_auth(token.expose()),
            &format!("GET {path}"),
        )
        .await
    }

    async fn write<T: DeserializeOwned>(
        &self,
        installation: Option<i64>,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, GithubError> {
        let token = self.token(installation).await?;
        let what = format!("{method} {path}");
        self.send(
            self.http
                .request(method, format!("{}{path}", self.api_url))
                .bearer_auth(token.expose())
                .json(body),
            &what,
        )
        .await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T, GithubError> {
        let response = request
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .send()
            .await
            .map_err(|source| GithubError::Transport {
                what: what.to_owned(),
                source,
            })?;
        let bytes = read_bounded(response, what).await?;
        serde_json::from_slice(&bytes).map_err(|e| GithubError::Answer {
            what: what.to_owned(),
            message: e.to_string(),
        })
    }
}

/// The body of a successful answer, at most [`MAX_ANSWER_BYTES`]; an error
/// status becomes [`GithubError::Status`] with GitHub's message.
async fn read_bounded(mut response: reqwest::Response, what: &str) -> Result<Vec<u8>, GithubError> {
    let status = response.status();
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| GithubError::Transport {
            what: what.to_owned(),
            source,
        })?
    {
        if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
            bytes.extend_from_slice(&chunk[..MAX_ANSWER_BYTES - bytes.len()]);
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let message = serde_json::from_slice::<ErrorAnswer>(&bytes)
            .ok()
            .and_then(|e| e.message)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
        return Err(GithubError::Status {
            status: status.as_u16(),
            what: what.to_owned(),
            message: message.chars().take(300).collect(),
        });
    }
    Ok(bytes)
}

/// Whether a permission lets its holder trigger runs.
pub fn can_write(permission: &str) -> bool {
    matches!(permission, "admin" | "maintain" | "write")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_KEY: &[u8] = include_bytes!("../../tests/fixtures/github-app-test-key.pem");
    const TEST_PUBLIC_KEY: &[u8] =
        include_bytes!("../../tests/fixtures/github-app-test-key.pub.pem");

    #[test]
    fn the_app_jwt_is_rs256_issued_a_minute_ago_and_short_lived() {
        let client = GithubClient::new(
            "http://127.0.0.1:1",
            Credentials::App {
                app_id: "12345".into(),
                private_key_pem: TEST_KEY.to_vec(),
            },
        )
        .unwrap();
        let Auth::App(app) = &client.auth else {
            panic!("not an App")
        };
        let jwt = app.jwt().unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_required_spec_claims(&["exp", "iss"]);
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY).unwrap();
        let claims = jsonwebtoken::decode::<AppClaims>(&jwt, &key, &validation)
            .unwrap()
            .claims;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(claims.iss, "12345");
        assert!((now - 61..=now - 59).contains(&claims.iat), "{claims:?}");
        assert!(claims.exp - claims.iat <= 600, "{claims:?}");
        assert!(claims.exp > now);
    }

    #[test]
    fn tokens_and_credentials_never_print() {
        let t = Token::new("ghp_secret");
        assert!(!format!("{t:?}").contains("ghp_secret"));
        let c = Credentials::App {
            app_id: "1".into(),
            private_key_pem: b"-----BEGIN".to_vec(),
        };
        assert!(!format!("{c:?}").contains("BEGIN"));
        assert!(GithubClient::new("http://x", c).is_err());
    }

    #[test]
    fn write_permission() {
        for p in ["admin", "maintain", "write"] {
            assert!(can_write(p));
        }
        for p in ["triage", "read", "none", ""] {
            assert!(!can_write(p));
        }
    }
}
