//! `X-Hub-Signature-256`: GitHub signs each delivery's raw body with
//! HMAC-SHA256 under the webhook's secret and sends `sha256=<hex>`.
//!
//! The MAC is computed and compared by the `hmac` crate
//! ([`Mac::verify_slice`] compares in constant time); nothing here compares
//! secret-dependent bytes itself. The secret is a [`WebhookSecret`], which
//! never prints its value.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The webhook secret shared with GitHub (`CCS_GITHUB_WEBHOOK_SECRET`).
/// `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        HmacSha256::new_from_slice(self.0.as_bytes()).expect("HMAC takes keys of any length")
    }

    /// The header value GitHub would send for `body`: `sha256=<hex>`.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Checks an `X-Hub-Signature-256` header value against `body`.
    pub fn verify(&self, body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let hex_part = header
            .trim()
            .strip_prefix("sha256=")
            .ok_or(SignatureError::Malformed)?;
        let expected = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(&expected)
            .map_err(|_| SignatureError::Mismatch)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

impl FromStr for WebhookSecret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("the GitHub webhook secret must not be empty".into());
        }
        Ok(Self(s.to_owned()))
    }
}

/// Why a delivery's signature was refused (all answer `401`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Hub-Signature-256 header is missing")]
    Missing,
    #[error("the X-Hub-Signature-256 header must be `sha256=<hex>`")]
    Malformed,
    #[error("the X-Hub-Signature-256 signature does not match the body")]
    Mismatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn githubs_documented_example_verifies() {
        // docs.github.com, "Validating webhook deliveries": secret
        // "It's a Secret to Everybody", payload "Hello, World!".
        let secret = WebhookSecret::new("It's a Secret to Everybody");
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(secret.sign(b"Hello, World!"), expected);
        assert_eq!(secret.verify(b"Hello, World!", Some(expected)), Ok(()));
    }

    #[test]
    fn wrong_missing_or_malformed_signatures_are_refused() {
        let secret = WebhookSecret::new("s3cret");
        let good = secret.sign(b"{}");
        assert_eq!(
            secret.verify(b"{} ", Some(&good)),
            Err(SignatureError::Mismatch)
        );
        let other = WebhookSecret::new("other").sign(b"{}");
        assert_eq!(
            secret.verify(b"{}", Some(&other)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(secret.verify(b"{}", None), Err(SignatureError::Missing));
        for bad in [
            "",
            "sha1=abc",
            "sha256=zz",
            good.trim_start_matches("sha256="),
        ] {
            assert_eq!(
                secret.verify(b"{}", Some(bad)),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // A truncated MAC is a mismatch, not a prefix match.
        assert_eq!(
            secret.verify(b"{}", Some(&good[..good.len() - 2])),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_secret_never_prints() {
        let secret = WebhookSecret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
