//! Random identifiers (UUID v4, `msg_…`, `toolu_…`) without a dependency:
//! SipHash keyed by the standard library's per-process random seed.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A source of identifiers, unique within the process and random across
/// processes.
pub struct Ids {
    seed: RandomState,
    counter: u64,
}

impl Ids {
    pub fn new() -> Self {
        Ids {
            seed: RandomState::new(),
            counter: 0,
        }
    }

    fn next_u64(&mut self) -> u64 {
        let mut hasher = self.seed.build_hasher();
        hasher.write_u64(self.counter);
        self.counter += 1;
        hasher.finish()
    }

    /// A random (version 4) UUID: `xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx`.
    pub fn uuid_v4(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }

    /// An API message id, shaped like Anthropic's: `msg_01` + 22 characters.
    pub fn message_id(&mut self) -> String {
        format!("msg_01{}", self.base62(22))
    }

    /// A tool call id: `toolu_01` + 22 characters.
    pub fn tool_use_id(&mut self) -> String {
        format!("toolu_01{}", self.base62(22))
    }

    fn base62(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| {
                // The remainder is below 62: the cast cannot truncate.
                char::from(BASE62[(self.next_u64() % 62) as usize])
            })
            .collect()
    }
}

/// Whether `s` is a UUID in its hyphenated text form (any version).
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_v4_and_unique() {
        let mut ids = Ids::new();
        let a = ids.uuid_v4();
        let b = ids.uuid_v4();
        assert_ne!(a, b);
        assert!(is_uuid(&a), "{a}");
        assert_eq!(&a[14..15], "4");
        assert!("89ab".contains(&a[19..20]), "{a}");
    }

    #[test]
    fn message_ids() {
        let mut ids = Ids::new();
        let m = ids.message_id();
        assert!(m.starts_with("msg_01"));
        assert_eq!(m.len(), 28);
        assert_ne!(m, ids.message_id());
        assert!(ids.tool_use_id().starts_with("toolu_01"));
    }

    #[test]
    fn uuid_check() {
        assert!(is_uuid("5f0c2a8e-1111-4222-8333-444455556666"));
        assert!(!is_uuid("5f0c2a8e-1111-4222-8333-44445555666"));
        assert!(!is_uuid("5f0c2a8e11114222833344445555666"));
        assert!(!is_uuid("zf0c2a8e-1111-4222-8333-444455556666"));
    }
}
