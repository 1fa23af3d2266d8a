//! The TOML configuration file, its defaults and its validation.
//!
//! Every key has a default, so an empty file is a valid configuration
//! (listening on 127.0.0.1:4443 with a generated certificate). Unknown keys are
//! errors, and every error names the key it is about, e.g.
//! `ipv4.pool: 10.99.0.0/33 is not a valid prefix`.
//!
//! Durations are written the human way (`"60s"`, `"500ms"`, `"2m"`).
//! Relative paths in a file are resolved against the directory of that file.
//!
//! [`Config::embedded_defaults`] is what `sstpd` runs with when started
//! without a configuration file: the defaults plus one demo user.
//!
//! docs/configuration.md documents every key; keep the two in step.
//!
//! The module is split by concern: `schema` (the serde types, one per
//! TOML table, with their defaults), `addr` (address ranges and
//! prefixes), `validate` (the rules parsing alone does not enforce),
//! `defaults` (the embedded no-file configuration and its demo user),
//! `control` (the control socket, and the configuration rendered back),
//! `state_dir` (where generated state lives) and `error`.

mod addr;
mod control;
mod dae;
mod defaults;
mod error;
mod listener;
mod radius;
mod schema;
mod state_dir;
pub mod tls_names;
mod validate;

pub use addr::*;
pub use control::*;
pub use dae::*;
pub use defaults::*;
pub use error::*;
pub use listener::*;
pub use radius::*;
pub use schema::*;
pub use state_dir::*;

use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// Loading

impl Config {
    /// Reads, parses and validates a configuration file. Relative paths in
    /// it are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(&text)?;
        let base = path.parent().unwrap_or(Path::new(""));
        config.resolve_relative_paths(base);
        config.source = ConfigSource::File(path.to_owned());
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text without validating it (see [`Config::validate`]).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        let mut config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            ConfigError::Parse {
                key: if key == "." { String::new() } else { key },
                message: inner.message().trim_end().to_owned(),
                position: inner.span().map(|span| line_column(text, span.start)),
            }
        })?;
        listener::drop_default_listen(&mut config, text);
        Ok(config)
    }

    /// Parses and validates TOML text; relative paths stay relative.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let config = Config::parse(text)?;
        config.validate()?;
        Ok(config)
    }

    fn resolve_relative_paths(&mut self, base: &Path) {
        let resolve = |p: &mut Option<PathBuf>| {
            if let Some(path) = p.as_mut() {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        };
        resolve(&mut self.server.state_dir);
        resolve(&mut self.tls.certificate);
        resolve(&mut self.tls.private_key);
        resolve(&mut self.users.chap_secrets);
        resolve(&mut self.control.socket);
    }

    /// The worker count, with 0 resolved to the number of available cores.
    pub fn worker_count(&self) -> usize {
        match self.server.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

#[cfg(test)]
mod tests;
