//! The dashboard over HTTP, on every backend: sign-in (key and one-time
//! link), session expiry and revocation, CSRF and origin checks, read-only
//! keys, every page, executions filters and cursor pages, cancel/retry and
//! queue job actions through the same functions as the JSON API.

mod common;

use std::time::Duration;

use ccs::db::Backend;
use ccs::store::Permission;
use common::{Options, TestApp, spawn_app};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// A browser-ish client: no redirects followed, the session cookie kept
/// by hand.
struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookie: Option<String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    /// Signs in with `key`; returns the Set-Cookie header.
    async fn sign_in(&mut self, key: &str) -> String {
        let res = self
            .client
            .post(self.app.url("/ui/login"))
            .form(&[("key", key), ("next", "/ui/executions")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{:?}", res.text().await);
        assert_eq!(res.headers()["location"], "/ui/executions");
        let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
        self.take_cookie(&set);
        set
    }

    fn take_cookie(&mut self, set_cookie: &str) {
        let pair = set_cookie.split(';').next().unwrap();
        self.cookie = Some(pair.to_owned());
    }

    async fn get(&self, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
        let mut req = self.client.get(self.app.url(path));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        (status, res.text().await.unwrap(), headers)
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let mut req = self.client.post(self.app.url(path)).form(form);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let body = res.text().await.unwrap();
        (status, location.unwrap_or(body))
    }

    /// The CSRF token of the signed-in page at `path`.
    async fn csrf(&self, path: &str) -> String {
        let (status, html, _) = self.get(path).await;
        assert_eq!(status, 200, "{html}");
        let at = html.find(r#"name="csrf" value=""#).expect("a csrf field");
        let rest = &html[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

async fn sign_in_sessions_and_pages(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    let mut b = Browser::new(&app);
    // Not signed in: every page leads to the sign-in form, keeping the target.
    let (status, _, headers) = b.get("/ui/executions?status=failed").await;
    assert_eq!(status, 303);
    assert_eq!(
        headers["location"],
        "/ui/login?next=/ui/executions%3Fstatus%3Dfailed"
    );
    let (status, html, _) = b.get("/ui/login").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"type="password""#));
    // A wrong key is refused on the form.
    let res = b
        .client
        .post(app.url("/ui/login"))
        .form(&[("key", "ccs_nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("invalid API key"));
    // A key posted from another site is refused before it is checked.
    let res = b
        .client
        .post(app.url("/ui/login"))
        .header("origin", "https://evil.example")
        .form(&[("key", app.admin_key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    let set = b.sign_in(&app.admin_key).await;
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(set.contains("Path=/ui"), "{set}");
    assert!(set.contains("Max-Age=43200"), "{set}");

    let id = app.submit("render me <script>alert(1)</script>").await;
    for (path, marker) in [
        ("/ui/", "Finished per minute"),
        ("/ui/executions", "render me"),
        (&format!("/ui/executions/{id}"), "Conversation"),
        ("/ui/workflows", "Workflow runs"),
        ("/ui/queues", "ccs::executions"),
        ("/ui/projects", "demo"),
        ("/ui/api-keys", "admin"),
        ("/ui/notifications", "Notifications"),
    ] {
        let (status, html, headers) = b.get(path).await;
        assert_eq!(status, 200, "{path}: {html}");
        assert!(html.contains(marker), "{path} lacks {marker:?}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        // What came from outside is escaped, everywhere.
        assert!(!html.contains("<script>alert(1)"), "{path} is not escaped");
    }
    let (status, svg_page, _) = b.get("/ui/").await;
    assert_eq!(status, 200);
    assert_eq!(svg_page.matches("<svg class=\"chart\"").count(), 2);
    let (status, js, _) = b.get("/ui/assets/ui.js").await;
    assert_eq!(status, 200);
    assert!(js.contains("EventSource"));
    let (status, _, _) = b.get("/ui/executions/nope").await;
    assert_eq!(status, 404);
    let (status, html, _) = b.get("/ui/executions?status=exploded").await;
    assert_eq!(status, 400);
    assert!(html.contains("exploded"));

    // A form without the session's CSRF token does nothing.
    let (status, _) = b
        .post(
            &format!("/ui/executions/{id}/cancel"),
            &[("csrf", "forged")],
        )
        .await;
    assert_eq!(status, 403);
    let (_, e) = app.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(e["status"], "queued");
    // With it, the API's cancel runs, audit row and all.
    let csrf = b.csrf(&format!("/ui/executions/{id}")).await;
    let (status, location) = b
        .post(&format!("/ui/executions/{id}/cancel"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 303, "{location}");
    assert_eq!(location, format!("/ui/executions/{id}"));
    let (_, e) = app.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(e["status"], "cancelled");
    // Retry: a new execution with the same prompt.
    let (status, location) = b
        .post(&format!("/ui/executions/{id}/retry"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 303, "{location}");
    let new_id = location.rsplit('/').next().unwrap();
    assert_ne!(new_id, id);
    let (_, e) = app.get(&format!("/api/v1/executions/{new_id}")).await;
    assert_eq!(e["prompt"], "render me <script>alert(1)</script>");
    assert_eq!(e["status"], "queued");

    // Signing out ends the session on the server, not only in the browser.
    let old_cookie = b.cookie.clone();
    let (status, location) = b.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (303, "/ui/login"));
    let (status, _, _) = b.get("/ui/").await;
    assert_eq!(status, 303);
    b.cookie = old_cookie;
    let (status, _, _) = b.get("/ui/").await;
    assert_eq!(status, 303, "a signed-out cookie still works");

    // An expired session, and a key revoked after sign-in, end at once.
    b.sign_in(&app.admin_key).await;
    assert_eq!(b.get("/ui/").await.0, 200);
    sqlx::query("UPDATE ui_sessions SET expires_at = 1")
        .execute(app.store.pool())
        .await
        .unwrap();
    assert_eq!(b.get("/ui/").await.0, 303);
    let other = app.key(&[Permission::Admin]).await;
    b.sign_in(&other).await;
    assert_eq!(b.get("/ui/").await.0, 200);
    sqlx::query("UPDATE api_keys SET revoked_at = 1 WHERE key_prefix = ?")
        .bind(&other[..12])
        .execute(app.store.pool())
        .await
        .ok();
    // (PostgreSQL spells parameters $1.)
    sqlx::query("UPDATE api_keys SET revoked_at = 1 WHERE key_prefix = $1")
        .bind(&other[..12])
        .execute(app.store.pool())
        .await
        .ok();
    assert_eq!(b.get("/ui/").await.0, 303);
    app.shutdown().await;
}
backend_tests!(
    sign_in_sessions_and_pages,
    super::sign_in_sessions_and_pages
);

async fn sign_in_links_work_once(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    let path = ccs::ui::issue_sign_in_link(&app.store)
        .await
        .unwrap()
        .expect("an admin key exists");
    let mut b = Browser::new(&app);
    let res = b
        .client
        .get(app.url(&format!("/ui{path}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    b.take_cookie(&set);
    let (status, html, _) = b.get("/ui/").await;
    assert_eq!(status, 200);
    assert!(html.contains("admin"));
    let res = b
        .client
        .get(app.url(&format!("/ui{path}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a sign-in link worked twice");
    app.shutdown().await;
}
backend_tests!(sign_in_links_work_once, super::sign_in_links_work_once);

async fn read_only_keys_see_and_change_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let id = app.submit("a finished one").await;
    app.wait_terminal(&id, WAIT).await;
    let read = app.key(&[Permission::Read]).await;
    let mut b = Browser::new(&app);
    b.sign_in(&read).await;
    let (status, html, _) = b.get(&format!("/ui/executions/{id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("read-only"));
    assert!(!html.contains("/retry"), "a read key is offered retry");
    assert!(!html.contains("/cancel"));
    let (_, html, _) = b.get("/ui/queues?status=Done").await;
    assert!(!html.contains(r#"value="retry""#));
    assert_eq!(b.get("/ui/api-keys").await.0, 403);
    // The actions refuse anyway, with the API's own check.
    let csrf = b.csrf("/ui/").await;
    let (status, body) = b
        .post(&format!("/ui/executions/{id}/retry"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("execute"), "{body}");
    let (status, _) = b
        .post(
            "/ui/queues/ccs::executions/jobs",
            &[("csrf", &csrf), ("action", "retry-all"), ("status", "Done")],
        )
        .await;
    assert_eq!(status, 403);
    app.shutdown().await;
}
backend_tests!(
    read_only_keys_see_and_change_nothing,
    super::read_only_keys_see_and_change_nothing
);

async fn executions_filter_and_page(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    for i in 0..120 {
        let prompt = if i % 3 == 0 {
            format!("needle 100% {i}")
        } else {
            format!("hay {i}")
        };
        app.submit(&prompt).await;
    }
    let mut b = Browser::new(&app);
    b.sign_in(&app.admin_key).await;
    // Every page of all 120, by following the "older" link.
    let mut seen = std::collections::HashSet::new();
    let mut path = "/ui/executions".to_owned();
    let mut pages = 0;
    loop {
        let (status, html, _) = b.get(&path).await;
        assert_eq!(status, 200, "{path}");
        pages += 1;
        for part in html.split("href=\"/ui/executions/").skip(1) {
            let id = &part[..part.find('"').unwrap()];
            assert!(seen.insert(id.to_owned()), "{id} on two pages");
        }
        match html.split("rel=\"next\" href=\"").nth(1) {
            Some(rest) => path = rest[..rest.find('"').unwrap()].replace("&amp;", "&"),
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 120));
    // Text in the prompt (with a LIKE wildcard in it), as a GET URL.
    let (status, html, _) = b.get("/ui/executions?q=100%25&status=queued").await;
    assert_eq!(status, 200);
    let rows = html.matches("<td class=\"prompt\">").count();
    assert_eq!(rows, 40, "{html}");
    assert!(html.contains("all <span class=\"n\">40</span>"));
    let (_, html, _) = b
        .get(&format!(
            "/ui/executions?q=needle&project={}",
            app.project_id + 1
        ))
        .await;
    assert_eq!(html.matches("<td class=\"prompt\">").count(), 0);
    let (_, html, _) = b.get("/ui/executions?from=2999-01-01").await;
    assert_eq!(html.matches("<td class=\"prompt\">").count(), 0);
    let (status, _, _) = b.get("/ui/executions?from=yesterday").await;
    assert_eq!(status, 400);
    app.shutdown().await;
}
backend_tests!(
    executions_filter_and_page,
    super::executions_filter_and_page
);

async fn queue_jobs_kill_and_retry(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    app.submit("one").await;
    app.submit("two").await;
    let (status, jobs) = app
        .get("/api/v1/queues/ccs::executions/jobs?status=Pending")
        .await;
    assert_eq!(status, 200, "{jobs}");
    let jobs = jobs["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 2);
    assert!(jobs[0]["args"]["executionId"].is_string(), "{jobs:?}");
    let first = jobs[0]["id"].as_str().unwrap();
    let mut b = Browser::new(&app);
    b.sign_in(&app.admin_key).await;
    let (_, html, _) = b
        .get("/ui/queues?queue=ccs::executions&status=Pending")
        .await;
    assert!(html.contains(first));
    let csrf = b.csrf("/ui/queues").await;
    // Kill the selected one from the page.
    let (status, location) = b
        .post(
            "/ui/queues/ccs::executions/jobs",
            &[
                ("csrf", &csrf),
                ("status", "Pending"),
                ("action", "kill"),
                ("id", first),
            ],
        )
        .await;
    assert_eq!(status, 303, "{location}");
    assert!(location.contains("done=1&refused=0"), "{location}");
    let (_, killed) = app
        .get("/api/v1/queues/ccs::executions/jobs?status=Killed")
        .await;
    assert_eq!(killed["jobs"].as_array().unwrap().len(), 1);
    // Retry every killed job; retrying a pending one is refused (409).
    let (status, location) = b
        .post(
            "/ui/queues/ccs::executions/jobs",
            &[
                ("csrf", &csrf),
                ("status", "Killed"),
                ("action", "retry-all"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    assert!(location.contains("done=1"), "{location}");
    let (_, pending) = app
        .get("/api/v1/queues/ccs::executions/jobs?status=Pending")
        .await;
    assert_eq!(pending["jobs"].as_array().unwrap().len(), 2);
    let status = app
        .post_empty(&format!(
            "/api/v1/queues/ccs::executions/jobs/{first}/retry"
        ))
        .await;
    assert_eq!(status, 409);
    let status = app
        .post_empty(&format!("/api/v1/queues/nope/jobs/{first}/retry"))
        .await;
    assert_eq!(status, 404);
    let read = app.key(&[Permission::Read]).await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/queues/ccs::executions/jobs/{first}/kill")))
        .bearer_auth(read)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("admin"));
    app.shutdown().await;
}
backend_tests!(queue_jobs_kill_and_retry, super::queue_jobs_kill_and_retry);

async fn conversation_shows_tools_and_cost(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::default()).await else {
        return;
    };
    let id = app.submit("look around @turns=2 @cost=0.3").await;
    app.wait_terminal(&id, WAIT).await;
    let mut b = Browser::new(&app);
    b.sign_in(&app.admin_key).await;
    let (status, html, headers) = b.get(&format!("/ui/executions/{id}/conversation")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-execution-status"], "succeeded");
    assert!(html.contains("class=\"turn tool\""), "{html}");
    assert!(html.contains("tokens in"), "{html}");
    assert!(html.contains("$0.3000"), "{html}");
    // A finished execution's page is not live.
    let (_, page, _) = b.get(&format!("/ui/executions/{id}")).await;
    assert!(!page.contains("data-events"));
    // The session reaches the event stream; the API's stays Bearer-only.
    let (status, events, _) = b.get(&format!("/ui/executions/{id}/events")).await;
    assert_eq!(status, 200);
    assert!(events.contains("event: end"), "{events}");
    app.shutdown().await;
}
backend_tests!(
    conversation_shows_tools_and_cost,
    super::conversation_shows_tools_and_cost
);
