//! Job `ccs::inbound-events`: act on one stored GitHub delivery.
//!
//! Produced by `POST /webhook/github` ([`crate::github::ingest`]) in the
//! transaction that records the delivery in `github_deliveries`
//! ([`crate::store::Store::record_github_delivery`]); the payload is the
//! delivery id, the body stays in the table. No worker consumes the queue
//! yet: that handler is the next part of the GitHub integration
//! (`docs/github.md`).

use serde::{Deserialize, Serialize};

/// The queue of verified GitHub deliveries.
pub const QUEUE: &str = "ccs::inbound-events";

/// Act on the GitHub delivery `delivery_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundEventJob {
    pub delivery_id: String,
}

impl InboundEventJob {
    /// The bytes apalis's JSON codec stores for this payload.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}
