//! The sans-IO protocol core, shared by `sstpd` and `sstp-loadgen`.
//!
//! Layers, bottom up:
//!
//! * [`sstp`]: [MS-SSTP] wire codec (2.2), the HTTPS `SSTP_DUPLEX_POST`
//!   handshake (3.2.4.1, 3.3.4.1), the SSTP state machines of both roles
//!   (3.2, 3.3) and the crypto binding (3.2.5.2).
//! * [`ppp`]: PPP frames, the RFC 1661 option-negotiation automaton, LCP,
//!   IPCP, IPv6CP and the link phases that tie them to authentication.
//! * [`auth`]: PAP, CHAP-MD5, MS-CHAPv2 and MPPE key derivation, and the
//!   [`auth::Authenticator`] interface behind which credentials are checked.
//! * [`rate`]: the token bucket that bounds how fast a peer gets answers
//!   (Echo-Requests of either layer).
//!
//! Nothing in here performs IO or reads a clock. Time comes in as `now`
//! ([`std::time::Instant`] values chosen by the caller, so tests run on a
//! virtual clock); randomness comes from a seed the caller supplies; output
//! is returned as bytes to send, events and timer deadlines
//! (`poll_timeout`/`handle_timeout`), in the style of quinn-proto.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod auth;
pub mod ndp;
pub mod ppp;
pub mod rate;
pub mod rng;
pub mod route;
pub mod session;
pub mod sstp;

/// Gives back the memory of `queue` if it is empty: what a burst or the
/// setup grew it to is not kept while a session is quiet (the
/// `release_idle_capacity` of the session, its PPP link and their
/// outboxes).
pub(crate) fn release_if_empty<T>(queue: &mut std::collections::VecDeque<T>) {
    if queue.is_empty() {
        *queue = std::collections::VecDeque::new();
    }
}

/// Which end of the tunnel this state machine plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The SSTP server (accepts the HTTPS connection, authenticates the peer).
    Server,
    /// The SSTP client (opens the connection, authenticates itself).
    Client,
}
