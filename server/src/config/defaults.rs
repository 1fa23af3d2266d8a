//! The embedded defaults: what sstpd runs with when no configuration file
//! is given, and its one demo user.

use rand::{Rng, RngCore};

use super::*;

/// Environment variable that sets the password of the embedded `demo` user.
pub const DEMO_PASSWORD_ENV: &str = "SSTPD_DEMO_PASSWORD";
/// Name of the user the embedded defaults define.
pub const DEMO_USER: &str = "demo";
/// Length of a generated demo password (alphanumeric, ~95 bits).
pub const DEMO_PASSWORD_LEN: usize = 16;

impl Config {
    /// What sstpd runs with when no configuration file is given: every
    /// default, plus the user `demo` whose password is taken from
    /// `SSTPD_DEMO_PASSWORD` or generated (and shown in the startup banner),
    /// a generated self-signed certificate (`tls.self_signed`), and no
    /// per-source pre-authentication cap beyond the global one (the demo
    /// listens on loopback only, where every client shares one address),
    /// and the control socket at [`DEFAULT_CONTROL_SOCKET`].
    pub fn embedded_defaults() -> Config {
        let env_password = std::env::var(DEMO_PASSWORD_ENV)
            .ok()
            .filter(|p| !p.is_empty());
        Config::embedded_defaults_with(env_password, &mut rand::rng())
    }

    /// [`Config::embedded_defaults`] with the environment and the randomness
    /// supplied by the caller.
    pub fn embedded_defaults_with(env_password: Option<String>, rng: &mut dyn RngCore) -> Config {
        let generated = env_password.is_none();
        let password = env_password.unwrap_or_else(|| generate_password(rng));
        let mut config = Config::default();
        config.tls.self_signed = true;
        config.server.max_preauth_per_source = config.server.max_preauth_sessions;
        config.users.local.push(InlineUser {
            name: DEMO_USER.into(),
            password: Secret(password),
            ip: None,
        });
        config.control.socket = Some(DEFAULT_CONTROL_SOCKET.into());
        config.source = ConfigSource::Embedded {
            demo_password_generated: generated,
        };
        config
    }
}

/// A random alphanumeric password of [`DEMO_PASSWORD_LEN`] characters.
pub fn generate_password(rng: &mut dyn RngCore) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..DEMO_PASSWORD_LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}
