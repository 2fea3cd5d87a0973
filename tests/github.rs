//! The GitHub integration end to end: signed deliveries to
//! `POST /webhook/github`, recorded once, enqueued with their job, and every
//! refusal writing nothing. Runs on every backend.

mod common;

use ccs::db::Backend;
use ccs::github::WebhookSecret;
use common::{Options, TestApp, spawn_app};
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
        .filter(|(queue, _, _)| queue == ccs::jobs::github_event::QUEUE)
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
