//! What the control socket (`sstpctl`) asks of the workers: a description
//! of every session they hold.
//!
//! The control thread sends `WorkerMsg::ListSessions` on each worker's
//! control lane with a channel to answer on, and waits for the answers
//! with a deadline of its own; a worker never waits for it. Ending a
//! session goes the way of a RADIUS Disconnect-Request
//! (`WorkerMsg::Dae` with [`DaeAction::Disconnect`]): Call Disconnect,
//! counted and accounted as `admin_reset`.
//!
//! [`DaeAction::Disconnect`]: crate::aaa::dae::DaeAction::Disconnect

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::session::SessionCtx;
use super::Worker;
use crate::proto::sstp::HashProtocol;
use crate::routing::session_table::SessionRef;

/// One session as `sstpctl sessions` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The Acct-Session-Id: what `sstpctl session` and `kill --id` take.
    pub id: String,
    /// The authenticated user (none before authentication).
    pub user: Option<String>,
    /// The tunnel IPv4 address, while IPCP is up.
    pub ipv4: Option<Ipv4Addr>,
    /// The delegated IPv6 /64, while IPv6CP is up.
    pub ipv6_prefix: Option<String>,
    /// The client (after a PROXY protocol header, the address it gave).
    pub client: SocketAddr,
    /// The worker thread the session lives on.
    pub worker: usize,
    /// Call Connected verified: authenticated and bound.
    pub established: bool,
    /// When the TCP connection was accepted (seconds since the Unix epoch).
    pub started_unix: u64,
    /// Seconds since the connection was accepted.
    pub uptime_secs: u64,
    /// IP octets and packets from the client and to it.
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    /// `"1.2"` or `"1.3"`.
    pub tls_version: Option<String>,
    /// The IANA name of the cipher suite, as rustls spells it.
    pub tls_cipher: Option<String>,
    /// The kernel does the record layer (kTLS).
    pub ktls: bool,
    /// Who seals and opens the records: `"kernel"` (kTLS), `"sstpd"`
    /// (taken over from rustls after the handshake) or `"rustls"`.
    #[serde(default)]
    pub tls_records: Option<String>,
    /// The hash of the crypto binding ([MS-SSTP] 2.2.8): `"sha256"` or
    /// `"sha1"`, once the client sent Call Connected.
    pub crypto_binding: Option<String>,
}

/// A session and where it lives (for `kill`).
#[derive(Clone, Debug)]
pub(crate) struct ListedSession {
    pub at: SessionRef,
    pub info: SessionInfo,
}

/// One worker's answer to [`WorkerMsg::ListSessions`]: its index and its
/// sessions.
pub(crate) type WorkerSessions = (usize, Vec<ListedSession>);

impl Worker {
    /// Answers `WorkerMsg::ListSessions`; a reader that gave up (its
    /// deadline passed) is not an error.
    pub(super) fn list_sessions(&self, reply: crossbeam_channel::Sender<WorkerSessions>) {
        let now = (Instant::now(), SystemTime::now());
        let sessions: Vec<ListedSession> = self
            .sessions
            .borrow()
            .values()
            .filter_map(|s| {
                Some(ListedSession {
                    at: s.reference,
                    info: s.info(self.index, now)?,
                })
            })
            .collect();
        let _ = reply.send((self.index, sessions));
    }
}

impl SessionCtx {
    /// This session's [`SessionInfo`]; `None` only if its protocol state
    /// is borrowed (after a task panicked).
    fn info(&self, worker: usize, (now, wall): (Instant, SystemTime)) -> Option<SessionInfo> {
        let proto = self.proto.try_borrow().ok()?;
        let stats = proto.stats();
        let age = now.saturating_duration_since(self.accepted_at);
        let started = wall
            .checked_sub(age)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let (tls_version, tls_cipher) = match self.tls_suite {
            Some(suite) => (
                Some(match suite {
                    rustls::SupportedCipherSuite::Tls12(_) => "1.2".to_owned(),
                    rustls::SupportedCipherSuite::Tls13(_) => "1.3".to_owned(),
                }),
                Some(
                    suite
                        .suite()
                        .as_str()
                        .map_or_else(|| format!("{:?}", suite.suite()), str::to_owned),
                ),
            ),
            None => (None, None),
        };
        Some(SessionInfo {
            id: self.session_id.clone(),
            user: proto.username().map(str::to_owned),
            ipv4: self.ipv4_route.get(),
            ipv6_prefix: self.ipv6_prefix.get().map(|p| format!("{p}/64")),
            client: self.peer,
            worker,
            established: self.established_at.get().is_some(),
            started_unix: started,
            uptime_secs: age.as_secs(),
            bytes_in: stats.ip_bytes_in,
            bytes_out: stats.ip_bytes_out,
            packets_in: stats.ip_packets_in,
            packets_out: stats.ip_packets_out,
            tls_version,
            tls_cipher,
            ktls: self.tls.is_kernel_tls(),
            tls_records: Some(self.tls.records_owner().to_owned()),
            crypto_binding: proto
                .sstp()
                .hash_protocol()
                .map(|h: HashProtocol| h.as_str().to_owned()),
        })
    }
}
