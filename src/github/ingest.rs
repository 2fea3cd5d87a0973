//! `POST /webhook/github`, the core of it: verify, validate, record,
//! enqueue — and answer at once (GitHub gives a delivery 10 s).
//!
//! In this order, each refusal writing nothing:
//! 1. the webhook secret must be configured (else `404`: the endpoint is
//!    off);
//! 2. `X-Hub-Signature-256` must match the raw body ([`super::signature`];
//!    `401`);
//! 3. `X-GitHub-Event` and `X-GitHub-Delivery` must be present and short
//!    (`400`); the body must be JSON (`415` for a form-encoded hook) and a
//!    JSON object (`400`);
//! 4. the repository's ingestion rate limit must allow it (`429` +
//!    `Retry-After`; [`crate::limits::rate`], keyed by `owner/name`);
//! 5. the delivery is recorded: an event ccs handles together with its
//!    `ccs::inbound-events` job (`202`, status `queued`), any other event
//!    alone (`202`, status `ignored`). A delivery id seen before is a
//!    redelivery: `200`, nothing written.
//!
//! Nothing here looks at projects or triggers: the inbound-events job does
//! ([`crate::jobs::github_event`]), off the request path.

use crate::limits::rate::{RateLimiters, RateScope, RetryAfter};
use crate::store::{DeliveryStatus, NewGithubDelivery, Store, StoreError};

use super::event::{self, Envelope, MAX_HEADER_LEN};
use super::signature::{SignatureError, WebhookSecret};

/// One request to `POST /webhook/github`, as received.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub signature: Option<&'a str>,
    pub event: Option<&'a str>,
    pub delivery_id: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// What was done with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Recorded, and its job enqueued.
    Queued { delivery_id: String },
    /// Recorded as an event ccs does not act on.
    Ignored { delivery_id: String, reason: String },
    /// Seen before: nothing written.
    Duplicate { delivery_id: String },
}

impl Ingested {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Queued { .. } => "queued",
            Self::Ignored { .. } => "ignored",
            Self::Duplicate { .. } => "duplicate",
        }
    }
}

/// Why a delivery was refused; the HTTP layer maps each to its status.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// 404: no webhook secret is configured.
    #[error(
        "GitHub webhooks are not enabled on this server: set CCS_GITHUB_WEBHOOK_SECRET (see docs/github.md)"
    )]
    NotConfigured,
    /// 401.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 415.
    #[error("the body must be JSON: set the webhook's content type to application/json")]
    NotJson,
    /// 429.
    #[error(transparent)]
    RateLimited(#[from] RetryAfter),
    /// 503 / 500.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Verifies, validates and records one delivery (see the module docs).
pub async fn ingest(
    store: &Store,
    secret: Option<&WebhookSecret>,
    rate_limits: &RateLimiters,
    req: Request<'_>,
) -> Result<Ingested, IngestError> {
    let secret = secret.ok_or(IngestError::NotConfigured)?;
    secret.verify(req.body, req.signature)?;
    let event = header("X-GitHub-Event", req.event)?;
    let delivery_id = header("X-GitHub-Delivery", req.delivery_id)?;
    if let Some(ct) = req.content_type
        && !ct.trim_start().starts_with("application/json")
    {
        return Err(IngestError::NotJson);
    }
    let body: serde_json::Value = serde_json::from_slice(req.body)
        .map_err(|e| IngestError::BadRequest(format!("malformed JSON: {e}")))?;
    if !body.is_object() {
        return Err(IngestError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    let envelope = Envelope::parse(&body)
        .map_err(|e| IngestError::BadRequest(format!("unexpected delivery body: {e}")))?;
    if let Some(repo) = envelope.repository_name() {
        rate_limits.check(RateScope::GithubRepo, repo)?;
    }
    let handled = event::is_handled(event);
    let reason = (!handled).then(|| format!("ccs does not act on {event:?} events"));
    let new = NewGithubDelivery {
        delivery_id: delivery_id.to_owned(),
        event: event.to_owned(),
        action: envelope.action.clone(),
        repository: envelope.repository_name().map(str::to_owned),
        sender: envelope.sender.as_ref().map(|s| s.login.clone()),
        installation_id: envelope.installation.as_ref().map(|i| i.id),
        // The verified body, for the job; an ignored event keeps none.
        payload: handled.then(|| String::from_utf8_lossy(req.body).into_owned()),
        status: if handled {
            DeliveryStatus::Queued
        } else {
            DeliveryStatus::Ignored
        },
        outcome: reason.clone(),
    };
    let delivery_id = new.delivery_id.clone();
    if !store.record_github_delivery(&new).await? {
        return Ok(Ingested::Duplicate { delivery_id });
    }
    if handled {
        metrics::counter!("ccs_jobs_enqueued_total", "queue" => <crate::jobs::github_event::InboundEventJob as crate::jobs::Job>::QUEUE)
            .increment(1);
    }
    Ok(match reason {
        None => Ingested::Queued { delivery_id },
        Some(reason) => Ingested::Ignored {
            delivery_id,
            reason,
        },
    })
}

/// A required header: present, non-empty, printable and short.
fn header<'a>(name: &str, value: Option<&'a str>) -> Result<&'a str, IngestError> {
    let value = value.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(IngestError::BadRequest(format!(
            "the {name} header is missing"
        )));
    }
    if value.len() > MAX_HEADER_LEN || !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(IngestError::BadRequest(format!(
            "the {name} header must be at most {MAX_HEADER_LEN} printable ASCII characters"
        )));
    }
    Ok(value)
}
