//! Configuration errors: every variant names a key or a file.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration could not be used. Every variant names a key or a
/// file.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, or a value of the wrong type or form.
    Parse {
        /// The key (`ipv4.pool`), empty for document-level errors.
        key: String,
        message: String,
        /// 1-based line and column, when known.
        position: Option<(usize, usize)>,
    },
    /// A well-formed value that is not acceptable.
    Invalid { key: String, message: String },
}

impl ConfigError {
    pub(super) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The key this error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Parse { key, .. } | ConfigError::Invalid { key, .. } => {
                Some(key).filter(|k| !k.is_empty()).map(String::as_str)
            }
        }
    }

    /// Short snake_case name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "read",
            ConfigError::Parse { .. } => "parse",
            ConfigError::Invalid { .. } => "invalid",
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ConfigError::Parse {
                key,
                message,
                position,
            } => {
                if !key.is_empty() {
                    write!(f, "{key}: ")?;
                }
                f.write_str(message)?;
                if let Some((line, column)) = position {
                    write!(f, " (line {line}, column {column})")?;
                }
                Ok(())
            }
            ConfigError::Invalid { key, message } => write!(f, "{key}: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// 1-based line and column of byte `offset` in `text`.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
