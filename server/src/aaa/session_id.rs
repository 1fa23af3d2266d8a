//! Accounting session ids (Acct-Session-Id, [RFC 2866] 5.5): one per
//! connection, sent with its Access-Request and every accounting record,
//! unique across restarts and across servers.
//!
//! Each process draws a random 64-bit prefix at start and counts sessions
//! after it: two ids collide only if two starts drew the same prefix
//! (2^-64 per pair of starts), which no cluster of servers restarting for
//! years comes near, and no state needs to survive a restart.
//!
//! [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866

use std::sync::atomic::{AtomicU64, Ordering};

/// Hands out Acct-Session-Ids: 24 hex digits, the process's random prefix
/// then a counter.
#[derive(Debug)]
pub struct SessionIds {
    prefix: u64,
    next: AtomicU64,
}

impl Default for SessionIds {
    fn default() -> Self {
        SessionIds::with_prefix(rand::random())
    }
}

impl SessionIds {
    /// Ids after `prefix` (tests pick one; the server draws it).
    pub fn with_prefix(prefix: u64) -> Self {
        SessionIds {
            prefix,
            next: AtomicU64::new(1),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{:08x}", self.prefix, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_within_a_process_and_across_prefixes() {
        let a = SessionIds::with_prefix(0x0123_4567_89ab_cdef);
        assert_eq!(a.next_id(), "0123456789abcdef00000001");
        assert_eq!(a.next_id(), "0123456789abcdef00000002");
        let (b, c) = (SessionIds::default(), SessionIds::default());
        let (x, y) = (b.next_id(), c.next_id());
        assert_eq!(x.len(), 24);
        assert_ne!(x, y, "two starts draw different prefixes");
    }
}
