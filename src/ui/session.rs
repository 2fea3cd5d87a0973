//! Signing in to the dashboard: with an API key, or with a one-time link.
//!
//! * `POST /login` takes an API key, checks it exactly as the JSON API does
//!   ([`crate::auth::authenticate`]), and starts a session: 32 random bytes
//!   in an `HttpOnly; SameSite=Strict` cookie, whose SHA-256 is stored in
//!   `ui_sessions` with the key's id and an expiry (`--ui-session-ttl`).
//! * `GET /login/{token}` uses a one-time link ([`issue_sign_in_link`],
//!   printed by `ccs up`): the first use within 15 minutes signs in as the
//!   key it was made for; any later use is refused.
//! * Every request of a page finds its session ([`Viewer`]), then re-checks
//!   the key itself: a key revoked or expired after sign-in ends the
//!   session at once.
//! * Every form carries a CSRF token derived from the session token
//!   (SHA-256 of a label and the token: a page of another origin can
//!   neither read the cookie nor compute it); every POST checks it in
//!   constant time, and refuses an `Origin` other than the request's host.
//! * `POST /logout` deletes the row and the cookie.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use rand::RngCore as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::layout;
use crate::http::AppState;
use crate::store::{ApiKeyRecord, Permission, Store, StoreError, now_ms};

/// The session cookie's name.
pub const COOKIE: &str = "ccs_session";

/// How long a one-time sign-in link stays usable.
pub const LINK_TTL_MS: i64 = 15 * 60 * 1000;

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The CSRF token of the session whose cookie holds `token`.
fn csrf_for(token: &str) -> String {
    hex::encode(Sha256::digest(format!("ccs-ui-csrf\0{token}").as_bytes()))
}

/// Creates a one-time sign-in link for the oldest live admin key; returns
/// the path below the dashboard prefix (`/login/<token>`), or `None` when
/// there is no admin key.
pub async fn issue_sign_in_link(store: &Store) -> Result<Option<String>, StoreError> {
    let Some(key) = store.first_admin_key().await? else {
        return Ok(None);
    };
    let token = random_token();
    store
        .create_sign_in_link(&hash(&token), key.id, now_ms() + LINK_TTL_MS)
        .await?;
    Ok(Some(format!("/login/{token}")))
}

/// The signed-in person: the key they act as and their CSRF token.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub key: ApiKeyRecord,
    pub csrf: String,
    /// The dashboard's mount point, for links.
    pub prefix: String,
}

impl Viewer {
    /// Whether the key grants `wanted` (what the page offers; the action
    /// checks again).
    pub fn can(&self, wanted: Permission) -> bool {
        self.key.allows(wanted)
    }

    /// A link below the dashboard's prefix.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// The caller the JSON API's functions take.
    pub fn caller(&self) -> crate::http::Caller {
        crate::http::Caller(self.key.clone())
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
}

/// Not signed in: pages go to the sign-in form, other requests get 401.
pub struct SignInFirst(String);

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        Redirect::to(&self.0).into_response()
    }
}

impl FromRequestParts<Arc<AppState>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let prefix = state.ui.prefix.clone();
        let login = || {
            let uri = parts
                .extensions
                .get::<axum::extract::OriginalUri>()
                .map_or(&parts.uri, |o| &o.0);
            let next = uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            let query = serde_urlencoded_next(&next);
            SignInFirst(format!("{prefix}/login?{query}")).into_response()
        };
        let Some(token) = cookie_token(&parts.headers) else {
            return Err(login());
        };
        let key = match state.store.ui_session_key(&hash(&token)).await {
            Ok(Some(key)) => key,
            Ok(None) => return Err(login()),
            Err(e) => return Err(layout::store_error(e)),
        };
        if crate::auth::check_record(&key).is_err() {
            return Err(login());
        }
        Ok(Viewer {
            key,
            csrf: csrf_for(&token),
            prefix,
        })
    }
}

fn serde_urlencoded_next(next: &str) -> String {
    let mut out = String::from("next=");
    for b in next.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A POST refused before it did anything (403, with the reason).
#[derive(Debug)]
pub struct Refused(&'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        layout::message(StatusCode::FORBIDDEN, self.0)
    }
}

/// Refuses a POST whose CSRF token is not the session's, or that comes
/// from another origin.
pub fn check_post(viewer: &Viewer, headers: &HeaderMap, csrf: &str) -> Result<(), Refused> {
    check_origin(headers)?;
    if bool::from(viewer.csrf.as_bytes().ct_eq(csrf.as_bytes())) {
        Ok(())
    } else {
        Err(Refused(
            "The form was stale or not from this dashboard (CSRF check failed). Reload the page and try again.",
        ))
    }
}

/// A browser's `Origin` on a POST must name the host it is sent to.
fn check_origin(headers: &HeaderMap) -> Result<(), Refused> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    if origin == "null" || origin_host != host {
        return Err(Refused("This form was posted from another site."));
    }
    Ok(())
}

fn session_cookie(state: &AppState, token: &str, max_age_secs: i64) -> HeaderValue {
    let path = if state.ui.prefix.is_empty() {
        "/".to_owned()
    } else {
        state.ui.prefix.clone()
    };
    let mut c = cookie::Cookie::build((COOKIE, token.to_owned()))
        .path(path)
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    c.set_secure(state.ui.secure_cookie);
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn start_session(state: &AppState, key: &ApiKeyRecord, next: Option<&str>) -> Response {
    let token = random_token();
    let ttl_ms = state.ui.session_ttl.as_millis() as i64;
    if let Err(e) = state
        .store
        .create_ui_session(&hash(&token), key.id, now_ms() + ttl_ms)
        .await
    {
        return layout::store_error(e);
    }
    let _ = state.store.purge_ui_sessions().await;
    let _ = state
        .store
        .audit(&key.name, "ui.sign_in", &key.id.to_string(), "")
        .await;
    let target = next
        .filter(|n| {
            n.starts_with(&state.ui.prefix)
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(|| format!("{}/", state.ui.prefix), str::to_owned);
    let mut res = Redirect::to(&target).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(state, &token, ttl_ms / 1000),
    );
    res
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_page(State(state): State<Arc<AppState>>, Query(q): Query<NextQuery>) -> Markup {
    login_form(&state.ui.prefix, q.next.as_deref(), None)
}

fn login_form(prefix: &str, next: Option<&str>, error: Option<&str>) -> Markup {
    layout::bare(
        prefix,
        "Sign in",
        html! {
            form.login method="post" action={ (prefix) "/login" } {
                h1 { "ccs" }
                p { "Sign in with an API key. A " code { "read" } " key sees everything and changes nothing." }
                @if let Some(error) = error { p.error role="alert" { (error) } }
                label for="key" { "API key" }
                input #key type="password" name="key" autocomplete="off" required autofocus;
                @if let Some(next) = next { input type="hidden" name="next" value=(next); }
                button type="submit" { "Sign in" }
            }
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    key: String,
    next: Option<String>,
}

pub async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    if let Err(res) = check_origin(&headers) {
        return res.into_response();
    }
    match crate::auth::authenticate(&state.store, Some(&form.key)).await {
        Ok(key) => start_session(&state, &key, form.next.as_deref()).await,
        Err(crate::auth::AuthError::Store(e)) => layout::store_error(e),
        Err(e) => (
            StatusCode::UNAUTHORIZED,
            login_form(&state.ui.prefix, form.next.as_deref(), Some(&e.to_string())),
        )
            .into_response(),
    }
}

/// `GET /login/{token}`: a one-time sign-in link.
pub async fn link(State(state): State<Arc<AppState>>, Path(token): Path<String>) -> Response {
    match state.store.use_sign_in_link(&hash(&token)).await {
        Ok(Some(key)) if crate::auth::check_record(&key).is_ok() => {
            start_session(&state, &key, None).await
        }
        Ok(_) => (
            StatusCode::UNAUTHORIZED,
            login_form(
                &state.ui.prefix,
                None,
                Some("This sign-in link was used already or has expired."),
            ),
        )
            .into_response(),
        Err(e) => layout::store_error(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn logout(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Err(res) = check_post(&viewer, &headers, &form.csrf) {
        return res.into_response();
    }
    if let Some(token) = cookie_token(&headers)
        && let Err(e) = state.store.delete_ui_session(&hash(&token)).await
    {
        return layout::store_error(e);
    }
    let mut res = Redirect::to(&format!("{}/login", state.ui.prefix)).into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_depends_on_the_session() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(csrf_for(&a), csrf_for(&a));
        assert_ne!(csrf_for(&a), csrf_for(&b));
        assert_ne!(csrf_for(&a), hash(&a));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; ccs_session=abc; b=2"),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("abc"));
    }

    #[test]
    fn origins_must_match_the_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        assert!(check_origin(&h).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:3000"),
        );
        assert!(check_origin(&h).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.test"),
        );
        assert!(check_origin(&h).is_err());
    }

    #[test]
    fn next_is_percent_encoded() {
        assert_eq!(
            serde_urlencoded_next("/ui/executions?status=failed&x=1"),
            "next=/ui/executions%3Fstatus%3Dfailed%26x%3D1"
        );
    }
}
