//! The GitHub integration end to end: signed deliveries to
//! `POST /webhook/github`, recorded once, enqueued with their job, and every
//! refusal writing nothing. Runs on every backend.

mod common;

use ccs::db::Backend;
use ccs::github::WebhookSecret;
use common::{Options, TestApp, eventually_within, spawn_app};
use serde_json::{Value, json};

const SECRET: &str = "webhook-secret-for-tests";

/// A delivery as GitHub sends it: JSON body, event, delivery id, signature.
struct Delivery<'a> {
    event: &'a str,
    id: &'a str,
    body: Vec<u8>,
    signature: Option<String>,
    content_type: &'a str,
}

impl<'a> Delivery<'a> {
    fn signed(event: &'a str, id: &'a str, payload: &Value) -> Self {
        let body = serde_json::to_vec(payload).unwrap();
        let signature = Some(WebhookSecret::new(SECRET).sign(&body));
        Self {
            event,
            id,
            body,
            signature,
            content_type: "application/json",
        }
    }

    async fn send(self, app: &TestApp) -> (u16, Value) {
        let mut req = app
            .client
            .post(app.url("/webhook/github"))
            .header("content-type", self.content_type)
            .header("x-github-event", self.event)
            .header("x-github-delivery", self.id)
            .header("user-agent", "GitHub-Hookshot/test")
            .body(self.body);
        if let Some(sig) = self.signature {
            req = req.header("x-hub-signature-256", sig);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.expect("answers are JSON"))
    }
}

fn comment_payload(repo: &str, body: &str) -> Value {
    json!({
        "action": "created",
        "issue": { "number": 7, "title": "Flaky test", "body": "", "user": { "login": "alice", "type": "User" } },
        "comment": { "id": 1001, "body": body, "user": { "login": "alice", "type": "User" } },
        "repository": { "full_name": repo, "default_branch": "main" },
        "sender": { "login": "alice", "type": "User" },
        "installation": { "id": 42 }
    })
}

/// Deliveries recorded and inbound-events jobs enqueued.
async fn counts(app: &TestApp) -> (usize, i64) {
    let deliveries = app.store.github_deliveries(1000).await.unwrap().len();
    let jobs = app
        .store
        .queue_counts()
        .await
        .unwrap()
        .into_iter()
        .filter(|(queue, _, _)| {
            queue == <ccs::jobs::github_event::InboundEventJob as ccs::jobs::Job>::QUEUE
        })
        .map(|(_, _, n)| n)
        .sum();
    (deliveries, jobs)
}

async fn deliveries_are_recorded_once_with_their_job(backend: Backend) {
    let options = Options {
        github_webhook_secret: Some(SECRET.into()),
        ..Options::without_worker()
    };
    let Some(app) = spawn_app(backend, options).await else {
        return;
    };
    let payload = comment_payload("acme/widgets", "@claude fix the flaky test");

    let (status, body) = Delivery::signed("issue_comment", "d-1", &payload)
        .send(&app)
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({ "deliveryId": "d-1", "status": "queued" }));
    assert_eq!(counts(&app).await, (1, 1));
    let stored = app.store.github_delivery("d-1").await.unwrap().unwrap();
    assert_eq!(stored.event, "issue_comment");
    assert_eq!(stored.action.as_deref(), Some("created"));
    assert_eq!(stored.repository.as_deref(), Some("acme/widgets"));
    assert_eq!(stored.sender.as_deref(), Some("alice"));
    assert_eq!(stored.installation_id, Some(42));
    assert_eq!(stored.status, ccs::store::DeliveryStatus::Queued);
    let kept: Value = serde_json::from_str(stored.payload.as_deref().unwrap()).unwrap();
    assert_eq!(kept, payload);

    // A redelivery (same X-GitHub-Delivery) is a 200 that writes nothing.
    let (status, body) = Delivery::signed("issue_comment", "d-1", &payload)
        .send(&app)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "duplicate");
    assert_eq!(counts(&app).await, (1, 1));

    // An event ccs does not act on: 202, recorded as ignored, no job.
    let (status, body) = Delivery::signed(
        "star",
        "d-2",
        &json!({ "action": "created", "repository": { "full_name": "acme/widgets" }, "sender": { "login": "bob" } }),
    )
    .send(&app)
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "ignored");
    assert!(body["reason"].as_str().unwrap().contains("star"), "{body}");
    assert_eq!(counts(&app).await, (2, 1));
    let ignored = app.store.github_delivery("d-2").await.unwrap().unwrap();
    assert_eq!(ignored.status, ccs::store::DeliveryStatus::Ignored);
    assert_eq!(ignored.payload, None);
    app.shutdown().await;
}
backend_tests!(
    deliveries_recorded_once,
    super::deliveries_are_recorded_once_with_their_job
);

async fn refused_deliveries_write_nothing(backend: Backend) {
    let options = Options {
        github_webhook_secret: Some(SECRET.into()),
        max_body_bytes: 64 * 1024,
        rate_limits: ccs::settings::RateLimitArgs {
            per_github_repo: Some("2/hour".parse().unwrap()),
            ..Default::default()
        },
        ..Options::without_worker()
    };
    let Some(app) = spawn_app(backend, options).await else {
        return;
    };
    let payload = comment_payload("acme/limited", "@claude hi");

    // Bad signature: signed with another secret, or over another body.
    let mut d = Delivery::signed("issue_comment", "bad-1", &payload);
    d.signature = Some(WebhookSecret::new("not-the-secret").sign(&d.body));
    let (status, body) = d.send(&app).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("does not match"),
        "{body}"
    );
    let mut d = Delivery::signed("issue_comment", "bad-2", &payload);
    d.body.push(b' ');
    assert_eq!(d.send(&app).await.0, 401);
    let mut d = Delivery::signed("issue_comment", "bad-3", &payload);
    d.signature = None;
    let (status, body) = d.send(&app).await;
    assert_eq!(status, 401);
    assert!(
        body["error"].as_str().unwrap().contains("missing"),
        "{body}"
    );

    // Malformed JSON, correctly signed: 400.
    let mut d = Delivery::signed("issue_comment", "bad-4", &payload);
    d.body = b"{\"action\": ".to_vec();
    d.signature = Some(WebhookSecret::new(SECRET).sign(&d.body));
    let (status, body) = d.send(&app).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("malformed JSON"),
        "{body}"
    );
    // Not an object; a field of the wrong type.
    for bad in [&b"[1, 2]"[..], br#"{"repository": "acme/x"}"#] {
        let mut d = Delivery::signed("issue_comment", "bad-5", &payload);
        d.body = bad.to_vec();
        d.signature = Some(WebhookSecret::new(SECRET).sign(&d.body));
        assert_eq!(d.send(&app).await.0, 400);
    }
    // A form-encoded hook: 415. No event or delivery header: 400.
    let mut d = Delivery::signed("issue_comment", "bad-6", &payload);
    d.content_type = "application/x-www-form-urlencoded";
    let (status, body) = d.send(&app).await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(
        Delivery::signed("", "bad-7", &payload).send(&app).await.0,
        400
    );
    assert_eq!(
        Delivery::signed("issue_comment", "", &payload)
            .send(&app)
            .await
            .0,
        400
    );
    // Over the body limit: 413.
    let big = comment_payload("acme/limited", &"x".repeat(70 * 1024));
    let (status, _) = Delivery::signed("issue_comment", "bad-8", &big)
        .send(&app)
        .await;
    assert_eq!(status, 413);
    assert_eq!(
        counts(&app).await,
        (0, 0),
        "a refused delivery wrote something"
    );

    // The per-repository rate limit: two pass, the third waits.
    for id in ["ok-1", "ok-2"] {
        let (status, body) = Delivery::signed("issue_comment", id, &payload)
            .send(&app)
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, body) = Delivery::signed("issue_comment", "ok-3", &payload)
        .send(&app)
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("GitHub repository"),
        "{body}"
    );
    // Another repository is not limited by it.
    let other = comment_payload("acme/other", "@claude hi");
    assert_eq!(
        Delivery::signed("issue_comment", "ok-4", &other)
            .send(&app)
            .await
            .0,
        202
    );
    assert_eq!(counts(&app).await, (3, 3));
    app.shutdown().await;
}
backend_tests!(
    refusals_write_nothing,
    super::refused_deliveries_write_nothing
);

async fn without_a_secret_the_endpoint_is_off(backend: Backend) {
    let Some(app) = spawn_app(backend, Options::without_worker()).await else {
        return;
    };
    let payload = comment_payload("acme/widgets", "@claude hi");
    let (status, body) = Delivery::signed("issue_comment", "d-1", &payload)
        .send(&app)
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("CCS_GITHUB_WEBHOOK_SECRET"),
        "{body}"
    );
    assert_eq!(counts(&app).await, (0, 0));
    app.shutdown().await;
}
backend_tests!(
    endpoint_off_without_secret,
    super::without_a_secret_the_endpoint_is_off
);

// ----- end to end: a worker process, a stand-in of GitHub's REST API ------

mod stand_in {
    //! A local stand-in for GitHub's REST API: answers the calls ccs makes
    //! as GitHub's documentation shows them, and records every request.

    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::Json;
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::{any, get, patch, post};
    use serde_json::{Value, json};

    #[derive(Debug, Clone)]
    pub struct Recorded {
        pub method: String,
        pub path: String,
        pub authorization: Option<String>,
        pub body: Value,
    }

    #[derive(Default)]
    struct Inner {
        requests: Vec<Recorded>,
        next_comment: i64,
        /// login → permission
        permissions: HashMap<String, String>,
    }

    #[derive(Clone, Default)]
    pub struct GithubStandIn {
        inner: Arc<Mutex<Inner>>,
        pub url: String,
    }

    type S = State<GithubStandIn>;

    impl GithubStandIn {
        pub async fn start(permissions: &[(&str, &str)]) -> GithubStandIn {
            let mut me = GithubStandIn::default();
            {
                let mut inner = me.inner.lock().unwrap();
                inner.next_comment = 5000;
                for (login, p) in permissions {
                    inner.permissions.insert((*login).into(), (*p).into());
                }
            }
            let app = axum::Router::new()
                .route(
                    "/repos/{o}/{r}/collaborators/{user}/permission",
                    get(permission),
                )
                .route(
                    "/repos/{o}/{r}/issues/comments/{id}/reactions",
                    post(reaction),
                )
                .route(
                    "/repos/{o}/{r}/pulls/comments/{id}/reactions",
                    post(reaction),
                )
                .route("/repos/{o}/{r}/issues/{n}/comments", post(create_comment))
                .route("/repos/{o}/{r}/issues/comments/{id}", patch(update_comment))
                .fallback(any(not_found))
                .layer(axum::middleware::from_fn_with_state(me.clone(), record))
                .with_state(me.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            me.url = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            me
        }

        pub fn requests(&self) -> Vec<Recorded> {
            self.inner.lock().unwrap().requests.clone()
        }

        /// The recorded requests to paths that satisfy `f`.
        pub fn to(&self, method: &str, f: impl Fn(&str) -> bool) -> Vec<Recorded> {
            self.requests()
                .into_iter()
                .filter(|r| r.method == method && f(&r.path))
                .collect()
        }
    }

    async fn record(
        State(me): S,
        req: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> Response {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        me.inner.lock().unwrap().requests.push(Recorded {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            authorization: parts
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        });
        next.run(axum::extract::Request::from_parts(
            parts,
            axum::body::Body::from(bytes),
        ))
        .await
    }

    fn user(login: &str) -> Value {
        json!({ "login": login, "id": 1, "node_id": "U_1", "type": "User", "site_admin": false })
    }

    async fn permission(
        State(me): S,
        Path((_o, _r, login)): Path<(String, String, String)>,
    ) -> Response {
        let p = me
            .inner
            .lock()
            .unwrap()
            .permissions
            .get(&login)
            .cloned()
            .unwrap_or_else(|| "none".into());
        Json(json!({ "permission": p, "role_name": p, "user": user(&login) })).into_response()
    }

    async fn reaction(Json(body): Json<Value>) -> Response {
        (
            StatusCode::CREATED,
            Json(json!({ "id": 1, "node_id": "R_1", "user": user("ccs"), "content": body["content"], "created_at": "2026-01-01T00:00:00Z" })),
        )
            .into_response()
    }

    async fn create_comment(
        State(me): S,
        Path((o, r, n)): Path<(String, String, i64)>,
        Json(body): Json<Value>,
    ) -> Response {
        let id = {
            let mut inner = me.inner.lock().unwrap();
            inner.next_comment += 1;
            inner.next_comment
        };
        (
            StatusCode::CREATED,
            Json(json!({
                "id": id, "node_id": "IC_1",
                "url": format!("https://api.github.com/repos/{o}/{r}/issues/comments/{id}"),
                "html_url": format!("https://github.com/{o}/{r}/issues/{n}#issuecomment-{id}"),
                "body": body["body"], "user": user("ccs"),
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
            })),
        )
            .into_response()
    }

    async fn update_comment(
        Path((_o, _r, id)): Path<(String, String, i64)>,
        Json(body): Json<Value>,
    ) -> Response {
        Json(
            json!({ "id": id, "node_id": "IC_1", "body": body["body"], "user": user("ccs"),
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:01Z" }),
        )
        .into_response()
    }

    async fn not_found() -> Response {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "message": "Not Found", "documentation_url": "https://docs.github.com/rest" })),
        )
            .into_response()
    }
}

use std::time::Duration;

use ccs::github::triggers::OWN_MARKER;
use ccs::store::DeliveryStatus;
use stand_in::GithubStandIn;

/// Waits until the job has handled delivery `id`; returns its outcome.
async fn handled(app: &TestApp, id: &str) -> (DeliveryStatus, String) {
    eventually_within(
        &format!("delivery {id}"),
        Duration::from_secs(60),
        || async {
            let d = app.store.github_delivery(id).await.unwrap()?;
            (d.status != DeliveryStatus::Queued).then(|| (d.status, d.outcome.unwrap_or_default()))
        },
    )
    .await
}

fn comment_by(login: &str, comment_id: i64, body: &str) -> Value {
    let mut p = comment_payload("acme/widgets", body);
    p["comment"]["id"] = json!(comment_id);
    p["comment"]["user"]["login"] = json!(login);
    p["sender"]["login"] = json!(login);
    p
}

/// The body of the last write (create or edit) of a comment on issue 7.
fn last_comment_text(github: &GithubStandIn) -> Option<String> {
    github
        .requests()
        .into_iter()
        .rfind(|r| {
            (r.method == "POST" && r.path == "/repos/acme/widgets/issues/7/comments")
                || (r.method == "PATCH"
                    && r.path.starts_with("/repos/acme/widgets/issues/comments/"))
        })
        .and_then(|r| r.body["body"].as_str().map(str::to_owned))
}

async fn a_mention_runs_and_answers_in_the_thread(backend: Backend) {
    let options = Options {
        github_webhook_secret: Some(SECRET.into()),
        ..Options::without_worker()
    };
    let Some(app) = spawn_app(backend, options).await else {
        return;
    };
    let github = GithubStandIn::start(&[("alice", "write"), ("mallory", "read")]).await;
    // A project that answers for acme/widgets, registered through the API.
    let res = app
        .client
        .post(app.url("/api/v1/projects"))
        .bearer_auth(&app.admin_key)
        .json(&json!({ "name": "widgets", "path": app.project_dir.path(), "repository": "acme/widgets" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let project: Value = res.json().await.unwrap();
    assert_eq!(project["repository"], "acme/widgets");
    assert_eq!(project["github"]["triggerPhrase"], "@claude");
    let mut worker = common::WorkerProcess::spawn_with_args(
        &app,
        2,
        &[
            "--github-api-url",
            &github.url,
            "--github-token",
            "ghp_test_token",
            "--public-url",
            "http://ccs.test",
        ],
    );

    // 1. Alice (write permission) mentions @claude on issue 7.
    let request = comment_by(
        "alice",
        1001,
        "@claude fix the flaky test\n@result=Fixed the flaky test.",
    );
    let (status, _) = Delivery::signed("issue_comment", "m-1", &request)
        .send(&app)
        .await;
    assert_eq!(status, 202);
    let (st, outcome) = handled(&app, "m-1").await;
    assert_eq!(st, DeliveryStatus::Processed, "{outcome}");
    let execution_id = outcome.rsplit(' ').next().unwrap().to_owned();
    assert!(
        outcome.starts_with("mention by @alice: execution "),
        "{outcome}"
    );
    let e = app
        .wait_terminal(&execution_id, Duration::from_secs(60))
        .await;
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["source"], "github");
    assert!(
        e["prompt"]
            .as_str()
            .unwrap()
            .contains("@claude fix the flaky test"),
        "{e}"
    );
    assert!(
        e["prompt"]
            .as_str()
            .unwrap()
            .contains("acme/widgets, on issue #7"),
        "{e}"
    );
    // The tracking comment ends with the outcome.
    let final_text = eventually_within("the final comment", Duration::from_secs(30), || async {
        last_comment_text(&github).filter(|t| t.contains("**done**"))
    })
    .await;
    assert!(final_text.starts_with(OWN_MARKER), "{final_text}");
    assert!(final_text.contains("Fixed the flaky test."), "{final_text}");
    assert!(final_text.contains("$0.0100"), "{final_text}");
    assert!(
        final_text.contains(&format!(
            "(http://ccs.test/api/v1/executions/{execution_id})"
        )),
        "{final_text}"
    );
    // Exactly: one permission check, one 👀, one tracking comment created.
    let asked = github.to("GET", |p| {
        p == "/repos/acme/widgets/collaborators/alice/permission"
    });
    assert_eq!(asked.len(), 1, "{asked:?}");
    let reactions = github.to("POST", |p| p.ends_with("/reactions"));
    assert_eq!(reactions.len(), 1, "{reactions:?}");
    assert_eq!(
        reactions[0].path,
        "/repos/acme/widgets/issues/comments/1001/reactions"
    );
    assert_eq!(reactions[0].body, json!({ "content": "eyes" }));
    let created = github.to("POST", |p| p == "/repos/acme/widgets/issues/7/comments");
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(
        created[0].body["body"]
            .as_str()
            .unwrap()
            .starts_with(OWN_MARKER)
    );
    for r in github.requests() {
        assert_eq!(
            r.authorization.as_deref(),
            Some("Bearer ghp_test_token"),
            "{r:?}"
        );
    }

    // 2. The same delivery again: 200, nothing new.
    let (status, _) = Delivery::signed("issue_comment", "m-1", &request)
        .send(&app)
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.store.executions(100).await.unwrap().len(), 1);

    // 3. Mallory has read permission only: no run, no answer.
    let before = github.requests().len();
    let (status, _) = Delivery::signed(
        "issue_comment",
        "m-2",
        &comment_by("mallory", 1002, "@claude delete everything"),
    )
    .send(&app)
    .await;
    assert_eq!(status, 202);
    let (st, outcome) = handled(&app, "m-2").await;
    assert_eq!(st, DeliveryStatus::Processed);
    assert!(
        outcome.contains("@mallory has no write permission"),
        "{outcome}"
    );
    let after: Vec<_> = github.requests().split_off(before);
    assert_eq!(after.len(), 1, "only the permission check: {after:?}");
    assert_eq!(
        after[0].path,
        "/repos/acme/widgets/collaborators/mallory/permission"
    );

    // 4. The service's own comment never triggers, whoever it is posted as.
    let own = comment_by(
        "alice",
        1003,
        &format!("{OWN_MARKER}\n👀 **working…** — @claude"),
    );
    Delivery::signed("issue_comment", "m-3", &own)
        .send(&app)
        .await;
    let (_, outcome) = handled(&app, "m-3").await;
    assert!(outcome.contains("own"), "{outcome}");
    // A bot that is not allow-listed neither.
    let mut bot = comment_by("renovate[bot]", 1004, "@claude merge");
    bot["sender"]["type"] = json!("Bot");
    Delivery::signed("issue_comment", "m-4", &bot)
        .send(&app)
        .await;
    let (_, outcome) = handled(&app, "m-4").await;
    assert!(outcome.contains("bot"), "{outcome}");
    assert_eq!(app.store.executions(100).await.unwrap().len(), 1);

    // 5. `@claude stop` cancels the thread's running run.
    Delivery::signed(
        "issue_comment",
        "m-5",
        &comment_by("alice", 1005, "@claude take your time @sleep=60"),
    )
    .send(&app)
    .await;
    let (_, outcome) = handled(&app, "m-5").await;
    let long_run = outcome.rsplit(' ').next().unwrap().to_owned();
    eventually_within("the long run to start", Duration::from_secs(30), || async {
        let (_, e) = app.get(&format!("/api/v1/executions/{long_run}")).await;
        (e["status"] == "running").then_some(())
    })
    .await;
    Delivery::signed(
        "issue_comment",
        "m-6",
        &comment_by("alice", 1006, "@claude stop"),
    )
    .send(&app)
    .await;
    let (_, outcome) = handled(&app, "m-6").await;
    assert!(outcome.contains("1 run(s) cancelled"), "{outcome}");
    let e = app.wait_terminal(&long_run, Duration::from_secs(30)).await;
    assert_eq!(e["status"], "cancelled", "{e}");
    eventually_within("the stopped comment", Duration::from_secs(30), || async {
        last_comment_text(&github).filter(|t| t.contains("**stopped**"))
    })
    .await;
    worker.term();
    let _ = worker.child.wait().await;
    app.shutdown().await;
}

mod mention_runs_and_answers {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        super::a_mention_runs_and_answers_in_the_thread(ccs::db::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        super::a_mention_runs_and_answers_in_the_thread(ccs::db::Backend::Postgres).await
    }
}
