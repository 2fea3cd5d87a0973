//! API keys: how they are made, stored and checked.
//!
//! A key is `ccs_` followed by 40 random hex digits. Only its SHA-256 is
//! stored (plus the first 12 characters, to recognise it in lists); the key
//! itself is shown once, when created. A presented key is hashed, looked up
//! by hash, and the stored hash compared again in constant time (`subtle`)
//! before expiry, revocation and permissions are checked. Every accepted use
//! updates `last_used_at` and `use_count`.

use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::store::{ApiKeyRecord, NewApiKey, Permission, Store, StoreError, now_ms};

/// Why a presented key was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing API key: send `Authorization: Bearer <key>`")]
    Missing,
    #[error("invalid API key")]
    Invalid,
    #[error("this API key expired")]
    Expired,
    #[error("this API key was revoked")]
    Revoked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new key, and its record as stored.
pub struct IssuedKey {
    pub key: String,
    pub record: ApiKeyRecord,
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn generate_key() -> String {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    format!("ccs_{}", hex::encode(bytes))
}

/// Creates and stores a key; the returned `key` is never seen again.
pub async fn issue_key(
    store: &Store,
    name: &str,
    permissions: &[Permission],
    expires_at: Option<i64>,
) -> Result<IssuedKey, StoreError> {
    let key = generate_key();
    let record = store
        .create_api_key(&NewApiKey {
            name: name.to_owned(),
            key_hash: hash_key(&key),
            key_prefix: key[..12].to_owned(),
            permissions: permissions.to_vec(),
            expires_at,
        })
        .await?;
    Ok(IssuedKey { key, record })
}

/// Checks a presented key and records its use.
pub async fn authenticate(
    store: &Store,
    presented: Option<&str>,
) -> Result<ApiKeyRecord, AuthError> {
    let key = presented
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(AuthError::Missing)?;
    let hash = hash_key(key);
    let record = store
        .api_key_by_hash(&hash)
        .await?
        .ok_or(AuthError::Invalid)?;
    if !bool::from(record.key_hash.as_bytes().ct_eq(hash.as_bytes())) {
        return Err(AuthError::Invalid);
    }
    check_record(&record)?;
    store.touch_api_key(record.id).await?;
    Ok(record)
}

/// Whether a stored key may still be used (not revoked, not expired); the
/// dashboard checks its session's key with this on every request.
pub fn check_record(record: &ApiKeyRecord) -> Result<(), AuthError> {
    if record.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    if record.expires_at.is_some_and(|at| at <= now_ms()) {
        return Err(AuthError::Expired);
    }
    Ok(())
}

/// Parses a permission list such as `["execute", "read"]`, naming the bad one.
pub fn parse_permissions<S: AsRef<str>>(names: &[S]) -> Result<Vec<Permission>, String> {
    if names.is_empty() {
        return Err("at least one permission is required (execute, read, admin)".into());
    }
    names
        .iter()
        .map(|n| {
            Permission::parse(n.as_ref()).ok_or_else(|| {
                format!(
                    "unknown permission {:?}: use execute, read or admin",
                    n.as_ref()
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hash_stably() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert!(a.starts_with("ccs_") && a.len() == 44);
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_eq!(hash_key(&a).len(), 64);
    }

    #[test]
    fn permissions_parse_and_name_the_bad_one() {
        assert_eq!(
            parse_permissions(&["execute", "read"]).unwrap(),
            vec![Permission::Execute, Permission::Read]
        );
        let err = parse_permissions(&["root"]).unwrap_err();
        assert!(err.contains("\"root\""), "{err}");
        assert!(parse_permissions::<&str>(&[]).is_err());
    }

    #[test]
    fn admin_grants_everything_read_only_reads() {
        assert!(Permission::Admin.grants(Permission::Execute));
        assert!(Permission::Execute.grants(Permission::Read));
        assert!(!Permission::Read.grants(Permission::Execute));
        assert!(!Permission::Execute.grants(Permission::Admin));
    }
}
