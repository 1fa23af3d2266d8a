//! The control socket's protocol, shared by the server and `sstpctl`: one
//! request per connection, a line of JSON, answered by one JSON document.
//!
//! ```text
//! → {"command":"kill","user":"alice"}
//! ← {"answer":"killed","killed":1,"ids":["5f3a9c1200000001"],"unanswered_workers":[]}
//! ```
//!
//! The server reads at most [`MAX_REQUEST`] bytes; a longer request, one
//! that is not JSON, or an unknown command gets an [`Answer::Error`] (and
//! is counted), never a crash.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::app::ReloadReport;
pub use crate::worker::control::SessionInfo;

/// The longest request line the server reads (a request is a few dozen
/// bytes; this leaves room for long user names).
pub const MAX_REQUEST: usize = 64 * 1024;

/// What `sstpctl` asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Request {
    /// Every session on every worker.
    Sessions,
    /// The session with this Acct-Session-Id.
    Session { id: String },
    /// End the sessions that match every criterion given (at least one):
    /// Call Disconnect, accounting Stop with Acct-Terminate-Cause
    /// Admin-Reset.
    Kill(KillSelector),
    /// The counters and the gauges.
    Stats,
    /// Re-read the configuration file (as SIGHUP does).
    Reload,
    /// The running configuration as TOML, secrets redacted.
    ShowConfig,
    /// Take the node out of service (`app::drain`): refuse new
    /// connections, disconnect the sessions spread over `over_ms`
    /// (default `server.drain_period`), then stay up. A drain already
    /// running is replaced by this one.
    Drain {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        over_ms: Option<u64>,
    },
    /// Stop draining: take new connections again (`sstpctl drain
    /// --cancel`).
    Resume,
}

/// Which sessions `kill` ends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillSelector {
    /// The Acct-Session-Id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The authenticated user name, exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The tunnel address: the IPv4 address, or any address in the IPv6
    /// /64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
}

impl KillSelector {
    /// Whether no criterion was given (such a kill is refused: it would
    /// end every session).
    pub fn is_empty(&self) -> bool {
        self.id.is_none() && self.user.is_none() && self.address.is_none()
    }

    /// Whether `session` matches every criterion given.
    pub fn matches(&self, session: &SessionInfo) -> bool {
        self.id.as_deref().is_none_or(|id| id == session.id)
            && self
                .user
                .as_deref()
                .is_none_or(|user| session.user.as_deref() == Some(user))
            && self.address.is_none_or(|address| match address {
                IpAddr::V4(v4) => session.ipv4 == Some(v4),
                IpAddr::V6(v6) => session
                    .ipv6_prefix
                    .as_deref()
                    .and_then(|p| p.parse::<ipnet::Ipv6Net>().ok())
                    .is_some_and(|net| net.contains(&v6)),
            })
    }
}

/// The server's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Answer {
    /// `sessions` and `session`.
    Sessions(SessionList),
    /// `kill`.
    Killed(KillReport),
    /// `stats`.
    Stats(Stats),
    /// `reload`.
    Reloaded(ReloadReport),
    /// `show config`.
    Config { toml: String },
    /// `drain` and `drain --cancel`.
    Drain(DrainReport),
    /// The request failed; nothing was done.
    Error { message: String },
}

/// Sessions, and the workers that did not answer in time (their sessions
/// are missing from the list).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionList {
    pub sessions: Vec<SessionInfo>,
    pub unanswered_workers: Vec<usize>,
    /// The node is draining: it refuses new connections.
    #[serde(default)]
    pub draining: bool,
}

/// What `drain` started, or what `drain --cancel` left.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainReport {
    /// The node refuses new connections.
    pub draining: bool,
    /// `drain`: the sessions on the schedule; `drain --cancel`: the
    /// sessions it had not disconnected yet (they stay).
    pub sessions: usize,
    /// The period the disconnects are spread over.
    pub over_ms: u64,
    /// The time between two disconnects.
    pub interval_ms: u64,
}

/// What `kill` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillReport {
    /// Sessions now closing.
    pub killed: usize,
    /// Their Acct-Session-Ids.
    pub ids: Vec<String>,
    /// Workers that did not answer in time: sessions there may have been
    /// missed.
    pub unanswered_workers: Vec<usize>,
}

/// The counters (every one, by label, zero or not) and the gauges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub counters: BTreeMap<String, u64>,
    pub gauges: BTreeMap<String, i64>,
}

/// Why a request line was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum RequestError {
    /// Longer than [`MAX_REQUEST`].
    TooLarge,
    /// Not JSON, not an object, or not a request this server knows.
    Invalid(serde_json::Error),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::TooLarge => write!(f, "request longer than {MAX_REQUEST} bytes"),
            RequestError::Invalid(e) => write!(f, "invalid request: {e}"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Parses a request line (its trailing newline optional).
pub fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    if line.len() > MAX_REQUEST {
        return Err(RequestError::TooLarge);
    }
    serde_json::from_slice(line).map_err(RequestError::Invalid)
}

/// A request as the line `sstpctl` sends.
pub fn request_line(request: &Request) -> String {
    let mut line = serde_json::to_string(request).unwrap_or_default();
    line.push('\n');
    line
}

/// Sends `request` to the control socket at `socket` and reads the answer
/// (each waiting at most `timeout`); the error says why the server could not
/// be reached. `sstpctl` and the benchmarks use it.
pub fn exchange(socket: &Path, request: &Request, timeout: Duration) -> Result<Answer, String> {
    let stream = UnixStream::connect(socket).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::NotFound => {
                "no socket there: is sstpd running, with [control] socket set to this path?"
            }
            io::ErrorKind::PermissionDenied => {
                "permission denied: run sstpctl as root or as sstpd's user"
            }
            io::ErrorKind::ConnectionRefused => "nobody is listening: sstpd is not running",
            _ => "is sstpd running?",
        };
        format!("cannot connect to {}: {e} ({hint})", socket.display())
    })?;
    let broken = |e: io::Error| format!("{}: the connection failed: {e}", socket.display());
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(broken)?;
    // A server that refuses the peer answers and closes before reading:
    // its answer is still there to read.
    let sent = (&stream).write_all(request_line(request).as_bytes());
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(broken)?;
    if line.is_empty() {
        sent.map_err(broken)?;
        return Err(format!(
            "{}: the server closed the connection without answering",
            socket.display()
        ));
    }
    serde_json::from_str(&line).map_err(|e| {
        format!(
            "{}: not an answer this client understands: {e}",
            socket.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_survives_its_line() {
        let requests = [
            Request::Sessions,
            Request::Session { id: "abc".into() },
            Request::Kill(KillSelector {
                user: Some("alice".into()),
                address: Some("10.99.0.2".parse().unwrap()),
                ..KillSelector::default()
            }),
            Request::Stats,
            Request::Reload,
            Request::ShowConfig,
            Request::Drain { over_ms: None },
            Request::Drain {
                over_ms: Some(2000),
            },
            Request::Resume,
        ];
        for request in requests {
            let line = request_line(&request);
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
            assert_eq!(parse_request(line.as_bytes()).unwrap(), request);
        }
        assert_eq!(
            parse_request(br#"{"command":"kill","id":"x"}"#).unwrap(),
            Request::Kill(KillSelector {
                id: Some("x".into()),
                ..KillSelector::default()
            })
        );
    }

    #[test]
    fn hostile_lines_are_refused_without_panicking() {
        let too_long = format!(
            r#"{{"command":"session","id":"{}"}}"#,
            "x".repeat(MAX_REQUEST)
        );
        assert!(matches!(
            parse_request(too_long.as_bytes()),
            Err(RequestError::TooLarge)
        ));
        for line in [
            &b""[..],
            b"sessions",
            b"\xff\xfe{",
            b"[]",
            b"{}",
            b"{\"command\":\"shutdown\"}",
            b"{\"command\":\"kill\",\"address\":\"not an address\"}",
            b"{\"command\":\"session\"}",
            b"{\"command\":\"session\",\"id\":7}",
            b"{\"command\":\"drain\",\"over_ms\":-1}",
            b"{\"command\":\"drain\",\"over\":5}",
            b"{\"command\":",
            &[b'['; 4096],
        ] {
            assert!(
                matches!(parse_request(line), Err(RequestError::Invalid(_))),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn a_kill_selector_needs_every_criterion_to_match() {
        let session: SessionInfo = serde_json::from_value(serde_json::json!({
            "id": "s1", "user": "alice", "ipv4": "10.99.0.2", "ipv6_prefix": "fd99:0:0:1::/64",
            "client": "192.0.2.1:50000", "worker": 0, "established": true,
            "started_unix": 0, "uptime_secs": 0, "bytes_in": 0, "bytes_out": 0,
            "packets_in": 0, "packets_out": 0, "tls_version": "1.3",
            "tls_cipher": "TLS13_AES_256_GCM_SHA384", "ktls": false, "crypto_binding": "sha256"
        }))
        .unwrap();
        let by = |id: Option<&str>, user: Option<&str>, address: Option<&str>| KillSelector {
            id: id.map(Into::into),
            user: user.map(Into::into),
            address: address.map(|a| a.parse().unwrap()),
        };
        assert!(by(None, None, None).is_empty());
        assert!(by(Some("s1"), None, None).matches(&session));
        assert!(by(None, Some("alice"), Some("10.99.0.2")).matches(&session));
        assert!(by(None, None, Some("fd99:0:0:1::42")).matches(&session));
        assert!(!by(None, None, Some("fd99:0:0:2::42")).matches(&session));
        assert!(!by(None, Some("alice"), Some("10.99.0.3")).matches(&session));
        assert!(!by(Some("s2"), Some("alice"), None).matches(&session));
        assert!(!by(None, Some("Alice"), None).matches(&session));
    }
}
