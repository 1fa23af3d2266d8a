//! An in-memory [`PasswordStore`] for tests, benchmarks and fuzzers (the
//! server's one store is `aaa::local::LocalUsers`).

use std::collections::HashMap;
use std::fmt;

use crate::proto::auth::{LocalUser, PasswordStore};

/// Users in a `HashMap`.
#[derive(Clone, Default)]
pub struct StaticPasswords {
    users: HashMap<String, LocalUser>,
}

impl fmt::Debug for StaticPasswords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticPasswords")
            .field("users", &self.users.len())
            .finish()
    }
}

impl StaticPasswords {
    pub fn new() -> Self {
        StaticPasswords::default()
    }

    /// Adds (or replaces) a user with no fixed address.
    pub fn insert(&mut self, username: impl Into<String>, password: impl Into<Vec<u8>>) {
        self.insert_user(
            username,
            LocalUser {
                password: password.into(),
                framed_ipv4: None,
            },
        );
    }

    /// Adds (or replaces) a user.
    pub fn insert_user(&mut self, username: impl Into<String>, user: LocalUser) {
        self.users.insert(username.into(), user);
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl PasswordStore for StaticPasswords {
    fn lookup(&self, username: &str) -> Option<LocalUser> {
        self.users.get(username).cloned()
    }
}
