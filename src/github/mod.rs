//! The GitHub integration: a mention, label or assignment on GitHub starts a
//! run, and the run answers in the issue or pull request.
//!
//! The moving parts, in the order a delivery meets them:
//!
//! | part | process | what it does |
//! |---|---|---|
//! | [`signature`] | API | checks `X-Hub-Signature-256` (HMAC-SHA256 of the raw body, constant-time) |
//! | [`ingest`] | API | validates, rate-limits per repository, records the delivery in `github_deliveries` with its `ccs::inbound-events` job in one transaction, answers `202` (`200` for a redelivery) |
//! | [`crate::jobs::github_event`] | worker | the job's payload; its handler is not built yet (deliveries wait in the queue) |
//!
//! **Crash safety.** A `202` means the delivery and its job are committed.
//! A worker that dies while acting on a delivery leaves the job to be
//! handed back by the reaper; the job's effects are keyed by the delivery
//! id, so a second run does what the first did not, and nothing twice.
//!
//! Setup, the trigger table and what each answer looks like:
//! `docs/github.md`.

pub mod event;
pub mod ingest;
pub mod signature;

pub use signature::WebhookSecret;
