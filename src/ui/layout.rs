//! The page shell (navigation, refresh picker, sign-out) and the small
//! pieces every page uses: times, money, status badges, action forms, and
//! error pages.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::session::Viewer;
use crate::http::ApiError;
use crate::store::{Permission, StoreError};

/// Navigation entries: (path below the prefix, label).
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/executions", "Executions"),
    ("/workflows", "Workflows"),
    ("/queues", "Queues"),
    ("/projects", "Projects"),
    ("/api-keys", "API keys"),
    ("/notifications", "Notifications"),
];

fn head(title: &str, prefix: &str) -> Markup {
    html! {
        (DOCTYPE)
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · ccs" }
        link rel="stylesheet" href={ (prefix) "/assets/ui.css" };
        script src={ (prefix) "/assets/ui.js" } defer {}
    }
}

/// A page without navigation (the sign-in form, errors).
pub fn bare(prefix: &str, title: &str, body: Markup) -> Markup {
    html! {
        html lang="en" {
            head { (head(title, prefix)) }
            body.bare { main { (body) } }
        }
    }
}

/// A signed-in page. `live` adds the refresh picker (list pages).
pub fn page(viewer: &Viewer, title: &str, active: &str, live: bool, body: Markup) -> Markup {
    let role = if viewer.can(Permission::Admin) {
        "admin"
    } else if viewer.can(Permission::Execute) {
        "execute"
    } else {
        "read-only"
    };
    html! {
        html lang="en" {
            head { (head(title, &viewer.prefix)) }
            body data-prefix=(viewer.prefix) {
                header.top {
                    a.brand href={ (viewer.prefix) "/" } { "ccs" }
                    nav {
                        @for (path, label) in NAV {
                            a href=(viewer.link(path)) class=[(*path == active).then_some("active")] { (label) }
                        }
                    }
                    div.session {
                        @if live {
                            span.refresh data-refresh {
                                label { "refresh "
                                    select name="refresh" aria-label="refresh interval" {
                                        option value="0" { "off" }
                                        option value="5" { "5 s" }
                                        option value="15" { "15 s" }
                                        option value="60" { "1 min" }
                                    }
                                }
                                button type="button" data-pause { "pause" }
                            }
                        }
                        span.who title={ "key " (viewer.key.key_prefix) "…" } {
                            (viewer.key.name) " · " span.role { (role) }
                        }
                        form method="post" action=(viewer.link("/logout")) {
                            (csrf(viewer))
                            button.link type="submit" { "sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The hidden CSRF field of a form.
pub fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// A one-button form posting to `action`; with `confirm`, the browser asks
/// first (and without JavaScript the action simply runs).
pub fn action(viewer: &Viewer, action: &str, label: &str, confirm: Option<&str>) -> Markup {
    html! {
        form.action method="post" action=(action) data-confirm=[confirm] {
            (csrf(viewer))
            button type="submit" name="do" value=(label) { (label) }
        }
    }
}

/// An HTML page with a status and a sentence.
pub fn message(status: StatusCode, text: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (
        status,
        bare(
            "",
            title,
            html! { h1 { (title) } p { (text) } p { a href="javascript:history.back()" { "back" } } },
        ),
    )
        .into_response()
}

/// A store failure as a page (logged once, details not shown).
pub fn store_error(e: StoreError) -> Response {
    api_error(ApiError::from(e))
}

/// The JSON API's error as a page with the same status and sentence.
pub fn api_error(e: ApiError) -> Response {
    let status = e.status();
    if let ApiError::Internal(detail) = &e {
        tracing::error!(error = %detail, "dashboard request failed");
    }
    message(status, &e.to_string())
}

/// `2026-11-29 19:07:27` (UTC) from epoch milliseconds.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A `<time>` element with the UTC time and how long ago it was.
pub fn when(ms: Option<i64>) -> Markup {
    match ms {
        None => html! { span.muted { "—" } },
        Some(ms) => html! {
            time datetime=(crate::http::rfc3339(ms)) title={ (time(ms)) " UTC" } { (ago(ms)) }
        },
    }
}

/// `3 s ago`, `5 min ago`, `2 h ago`, `4 d ago`.
pub fn ago(ms: i64) -> String {
    let secs = (crate::store::now_ms() - ms).max(0) / 1000;
    match secs {
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86_400),
    }
}

/// A duration in milliseconds for a person: `850 ms`, `12.3 s`, `4 min 2 s`.
pub fn duration(ms: i64) -> String {
    match ms {
        ms if ms < 1000 => format!("{ms} ms"),
        ms if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// `$0.0123`.
pub fn money(usd: Option<f64>) -> String {
    usd.map_or_else(|| "—".into(), |u| format!("${u:.4}"))
}

/// A coloured status label.
pub fn status(s: &str) -> Markup {
    html! { span class={ "status s-" (s) } { (s.replace('_', " ")) } }
}

/// A shortened id with the whole one in its title.
pub fn short_id(id: &str) -> Markup {
    let short: String = id
        .chars()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    html! { code title=(id) { "…" (short) } }
}

/// Text cut to `max` characters with an ellipsis.
pub fn clip(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// Inline SVG (already built by [`super::charts`]).
pub fn svg(svg: String) -> Markup {
    PreEscaped(svg)
}
