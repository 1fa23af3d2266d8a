//! PPP authentication: PAP ([RFC 1334]), CHAP-MD5 ([RFC 1994]),
//! MS-CHAPv2 ([RFC 2759]) with MPPE master keys ([RFC 3079] section 3) and
//! EAP ([RFC 3748]) with EAP-MSCHAPv2 ([`eap`]), for both roles, the PEAPv0
//! and EAP-TLS peers for the client role ([`peap`], [`eap_tls`], on the
//! family's record framing [`tls_framing`]), plus the [`Authenticator`] interface that decides whether a
//! set of credentials is good.
//!
//! The per-protocol state machines ([`AuthServer`], [`AuthClient`]) work on
//! the PPP *information field* of their protocol (everything after the PPP
//! protocol number) and follow the crate's sans-IO style: packets and `now`
//! in; packets, events and a timer deadline out. The PPP link
//! ([`crate::proto::ppp`]) owns them and does the framing.
//!
//! Deciding is separate from the protocol: the server machine emits an
//! [`AuthRequest`], the owner passes it to an [`Authenticator`] (local
//! users, or a remote service such as RADIUS), and hands the
//! [`AuthDecision`] back whenever it arrives, possibly from another task.
//!
//! [RFC 1334]: https://www.rfc-editor.org/rfc/rfc1334
//! [RFC 1994]: https://www.rfc-editor.org/rfc/rfc1994
//! [RFC 2759]: https://www.rfc-editor.org/rfc/rfc2759
//! [RFC 3079]: https://www.rfc-editor.org/rfc/rfc3079
//! [RFC 3748]: https://www.rfc-editor.org/rfc/rfc3748

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// PPP protocol number of PAP.
pub const PROTO_PAP: u16 = 0xc023;
/// PPP protocol number of CHAP (MD5 and MS-CHAPv2 alike).
pub const PROTO_CHAP: u16 = 0xc223;
/// PPP protocol number of EAP ([RFC 3748] 3).
///
/// [RFC 3748]: https://www.rfc-editor.org/rfc/rfc3748
pub const PROTO_EAP: u16 = eap::PROTO_EAP;

/// An authentication method as negotiated by the LCP
/// Authentication-Protocol option ([RFC 1661] 6.2, [RFC 1994] 3, [RFC 2759] 2).
///
/// [RFC 1661]: https://www.rfc-editor.org/rfc/rfc1661
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthProtocol {
    /// Password Authentication Protocol, 0xc023.
    Pap,
    /// CHAP with MD5, 0xc223 algorithm 5.
    ChapMd5,
    /// Microsoft CHAP version 2, 0xc223 algorithm 0x81.
    MsChapV2,
    /// EAP (0xc227, [RFC 3748]) with EAP-MSCHAPv2 as the method.
    EapMsChapV2,
}

impl AuthProtocol {
    /// The option data of the LCP Authentication-Protocol option (without the
    /// type and length octets).
    pub fn lcp_option_data(self) -> &'static [u8] {
        match self {
            AuthProtocol::Pap => &[0xc0, 0x23],
            AuthProtocol::ChapMd5 => &[0xc2, 0x23, 0x05],
            AuthProtocol::MsChapV2 => &[0xc2, 0x23, 0x81],
            AuthProtocol::EapMsChapV2 => &[0xc2, 0x27],
        }
    }

    /// Parses the LCP Authentication-Protocol option data; `None` for methods
    /// this implementation does not speak (MS-CHAPv1, SHA-1 CHAP, ...).
    /// EAP carries no data here: its methods are negotiated inside EAP.
    pub fn from_lcp_option_data(data: &[u8]) -> Option<Self> {
        match data {
            [0xc0, 0x23] => Some(AuthProtocol::Pap),
            [0xc2, 0x23, 0x05] => Some(AuthProtocol::ChapMd5),
            [0xc2, 0x23, 0x81] => Some(AuthProtocol::MsChapV2),
            [0xc2, 0x27] => Some(AuthProtocol::EapMsChapV2),
            _ => None,
        }
    }

    /// The PPP protocol number carrying this method's packets.
    pub fn ppp_protocol(self) -> u16 {
        match self {
            AuthProtocol::Pap => PROTO_PAP,
            AuthProtocol::ChapMd5 | AuthProtocol::MsChapV2 => PROTO_CHAP,
            AuthProtocol::EapMsChapV2 => PROTO_EAP,
        }
    }

    /// Short lowercase name for logs, config files and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthProtocol::Pap => "pap",
            AuthProtocol::ChapMd5 => "chap-md5",
            AuthProtocol::MsChapV2 => "mschapv2",
            AuthProtocol::EapMsChapV2 => "eap-mschapv2",
        }
    }
}

impl fmt::Display for AuthProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which request an [`Authenticator`]'s answer belongs to.
///
/// The PPP link numbers every request it hands out, counting up from 1 over
/// the whole connection (across LCP renegotiations), and applies an answer
/// only to the request it names, and only while that request is the one its
/// current authentication machine is waiting for. An answer to anything else
/// (a request whose phase an LCP renegotiation ended, one already answered,
/// one the phase timeout gave up on) is stale: dropped and reported, never
/// applied to whatever request happens to be pending when it arrives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuthRequestId(u64);

impl AuthRequestId {
    /// Not numbered yet: what the authentication machines put into the
    /// requests they build; the link numbers each one it passes on.
    pub const UNASSIGNED: AuthRequestId = AuthRequestId(0);

    /// The id with this number (tests and fuzz targets forge stale ones).
    pub fn from_raw(raw: u64) -> Self {
        AuthRequestId(raw)
    }

    /// The number, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for AuthRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the peer presented, for an [`Authenticator`] to judge.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// Names this request; the answer is delivered with it
    /// ([`crate::proto::session::Session::auth_decision`]).
    pub id: AuthRequestId,
    /// The name the peer authenticated as (PAP Peer-ID, CHAP Name).
    pub username: String,
    /// The method-specific proof.
    pub credentials: Credentials,
}

impl fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never log secrets: only the user and the method.
        f.debug_struct("AuthRequest")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("method", &self.credentials.protocol())
            .finish()
    }
}

/// Method-specific proof of identity.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// [RFC 1334] 2.2.1: the cleartext password.
    Pap {
        /// The Authenticate-Request's Password field.
        password: Vec<u8>,
    },
    /// [RFC 1994] 4.1: `response = MD5(identifier ‖ secret ‖ challenge)`.
    ChapMd5 {
        /// The CHAP Identifier of the Challenge and Response.
        identifier: u8,
        /// The Challenge value this server sent.
        challenge: Vec<u8>,
        /// The peer's Response value.
        response: [u8; 16],
    },
    /// [RFC 2759] 4 and 8. `identifier` is the CHAP Identifier of the
    /// Response: a RADIUS server needs it for MS-CHAP2-Response and answers
    /// with it in MS-CHAP2-Success ([RFC 2548] 2.3.2, 2.3.3).
    MsChapV2 {
        /// The CHAP Identifier of the Response.
        identifier: u8,
        /// The 16-octet Challenge this server sent ([RFC 2759] 3).
        authenticator_challenge: [u8; 16],
        /// The Peer-Challenge field of the Response ([RFC 2759] 4).
        peer_challenge: [u8; 16],
        /// The NT-Response field of the Response ([RFC 2759] 4, 8.1).
        nt_response: [u8; 24],
    },
    /// EAP relayed to the authenticator ([RFC 3579] 3.1): the peer's EAP
    /// Response packet, whole, and the State of the Challenge it answers
    /// ([RFC 2865] 5.24), to echo. The authenticator runs the method.
    ///
    /// [RFC 3579]: https://www.rfc-editor.org/rfc/rfc3579
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    Eap {
        /// The EAP Response packet (Code, Identifier, Length, Type, data).
        packet: Vec<u8>,
        /// The previous [`AuthChallenge::state`], `None` for the first.
        state: Option<Vec<u8>>,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Proofs are secret-derived: show the method only.
        write!(f, "Credentials::{}(..)", self.protocol())
    }
}

impl Credentials {
    /// The method these credentials belong to.
    pub fn protocol(&self) -> AuthProtocol {
        match self {
            Credentials::Pap { .. } => AuthProtocol::Pap,
            Credentials::ChapMd5 { .. } => AuthProtocol::ChapMd5,
            Credentials::MsChapV2 { .. } => AuthProtocol::MsChapV2,
            Credentials::Eap { .. } => AuthProtocol::EapMsChapV2,
        }
    }
}

/// The MPPE master keys of [RFC 3079] 3.4, as seen by one end.
///
/// For the server, `send` is its MasterSendKey and `receive` its
/// MasterReceiveKey; the client's are the mirror image.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MppeKeys {
    /// This end's MasterSendKey ([RFC 3079] 3.4).
    pub send: [u8; 16],
    /// This end's MasterReceiveKey ([RFC 3079] 3.4).
    pub receive: [u8; 16],
}

impl fmt::Debug for MppeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MppeKeys(..)")
    }
}

impl MppeKeys {
    /// The server's Higher-Layer Authentication Key ([MS-SSTP] 3.2.5.2):
    /// MasterReceiveKey ‖ MasterSendKey, from the server's point of view.
    pub fn server_hlak(&self) -> [u8; 32] {
        let mut hlak = [0u8; 32];
        hlak[..16].copy_from_slice(&self.receive);
        hlak[16..].copy_from_slice(&self.send);
        hlak
    }

    /// The client's HLAK ([MS-SSTP] 3.2.5.2): MasterSendKey ‖
    /// MasterReceiveKey, from the client's point of view. Equal to the
    /// server's HLAK for the same session.
    pub fn client_hlak(&self) -> [u8; 32] {
        let mut hlak = [0u8; 32];
        hlak[..16].copy_from_slice(&self.send);
        hlak[16..].copy_from_slice(&self.receive);
        hlak
    }
}

/// The HLAK used when the method yields no keys (PAP, CHAP-MD5):
/// [MS-SSTP] 3.2.5.2 prescribes 32 zero octets.
pub const ZERO_HLAK: [u8; 32] = [0u8; 32];

/// An [`Authenticator`]'s answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthDecision {
    /// The credentials are good: the server sends Success/Ack.
    Accept(AuthAccept),
    /// The credentials are refused: the server sends Failure/Nak.
    Reject(AuthReject),
    /// EAP relayed ([`Credentials::Eap`]): not decided yet, the
    /// authenticator sends the next EAP Request (RADIUS Access-Challenge,
    /// [RFC 3579] 2.1). Any other method refuses it as
    /// [`RejectReason::ServiceUnavailable`].
    ///
    /// [RFC 3579]: https://www.rfc-editor.org/rfc/rfc3579
    Challenge(AuthChallenge),
}

impl AuthDecision {
    /// A [`AuthDecision::Challenge`] as a refusal for methods without a
    /// second round; other decisions unchanged.
    pub fn refusing_challenge(self) -> AuthDecision {
        match self {
            AuthDecision::Challenge(_) => AuthDecision::Reject(AuthReject {
                reason: RejectReason::ServiceUnavailable,
                message: verify::REJECT_MESSAGE.into(),
            }),
            decision => decision,
        }
    }
}

/// An EAP Master Session Key ([RFC 3748] 7.10), kept out of logs.
///
/// [RFC 3748]: https://www.rfc-editor.org/rfc/rfc3748
#[derive(Clone, PartialEq, Eq)]
pub struct Msk(pub Vec<u8>);

impl fmt::Debug for Msk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Msk({} octets)", self.0.len())
    }
}

/// The next round of a relayed EAP conversation.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthChallenge {
    /// The EAP Request packet to send the peer, whole.
    pub eap_request: Vec<u8>,
    /// Opaque, echoed with the peer's answer ([RFC 2865] 5.24 State).
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub state: Option<Vec<u8>>,
}

impl fmt::Debug for AuthChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthChallenge")
            .field("eap_request_len", &self.eap_request.len())
            .field("state", &self.state.is_some())
            .finish()
    }
}

/// A positive answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthAccept {
    /// For MS-CHAPv2: what the server needs to build the Success packet and
    /// the crypto binding. A local authenticator computes it from the
    /// password; RADIUS returns it as MS-CHAP2-Success and MS-MPPE-*-Key.
    pub mschapv2: Option<MsChapV2Proof>,
    /// Relayed EAP: the Master Session Key the authenticator derived
    /// (RADIUS MS-MPPE-Recv-Key ‖ MS-MPPE-Send-Key, [RFC 3748] 7.10); its
    /// first 32 octets are the HLAK ([MS-SSTP] 3.2.5.2.2).
    ///
    /// [RFC 3748]: https://www.rfc-editor.org/rfc/rfc3748
    /// [MS-SSTP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-sstp/
    pub eap_msk: Option<Msk>,
    /// An address this user must get (chap-secrets' fourth column,
    /// RADIUS Framed-IP-Address).
    pub framed_ipv4: Option<Ipv4Addr>,
    /// What else the authenticator decided for this session (RADIUS
    /// Access-Accept attributes); empty for local users.
    pub policy: SessionPolicy,
}

/// Per-session settings an authenticator hands out with an accept (RADIUS
/// Access-Accept attributes, [RFC 2865] 5, [RFC 2869] 5, [RFC 2548] 2.7).
///
/// The core applies what is protocol: `dns` (sent by IPCP instead of the
/// configured servers, [RFC 1877]) and `mtu` (caps the IP packets sent to
/// and accepted from the peer). The runtime applies what is policy: the
/// timeouts end the session, `pool` picks the address pool, `class` and
/// `acct_interim_interval` go to accounting, `routes` are installed while
/// the session's IPv4 is up.
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
/// [RFC 2869]: https://www.rfc-editor.org/rfc/rfc2869
/// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
/// [RFC 1877]: https://www.rfc-editor.org/rfc/rfc1877
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionPolicy {
    /// Session-Timeout ([RFC 2865] 5.27): the session ends this long after
    /// the accept.
    pub session_timeout: Option<Duration>,
    /// Idle-Timeout ([RFC 2865] 5.28): the session ends after this long
    /// without an IP packet in either direction.
    pub idle_timeout: Option<Duration>,
    /// Acct-Interim-Interval ([RFC 2869] 5.16): how often accounting sends
    /// Interim-Update for this session.
    pub acct_interim_interval: Option<Duration>,
    /// Framed-MTU ([RFC 2865] 5.12): the largest IP packet sent to or
    /// accepted from the peer, below what LCP negotiated.
    pub mtu: Option<u16>,
    /// MS-Primary-DNS-Server and MS-Secondary-DNS-Server ([RFC 2548]
    /// 2.7.5, 2.7.6): offered by IPCP instead of the configured ones.
    pub dns: [Option<Ipv4Addr>; 2],
    /// Framed-Pool ([RFC 2869] 5.18): the named pool the address comes
    /// from.
    pub pool: Option<String>,
    /// Class ([RFC 2865] 5.25): echoed unchanged in accounting.
    pub class: Vec<Vec<u8>>,
    /// Framed-Route ([RFC 2865] 5.22): IPv4 prefixes behind the client,
    /// routed to the session while its IPCP is up (the runtime decides
    /// which it installs: `routing::framed_route`).
    pub routes: Vec<crate::proto::route::FramedRoute>,
}

/// What the runtime knows about the connection an [`AuthRequest`] came on,
/// for authenticators that pass it on (RADIUS Calling-Station-Id and
/// Acct-Session-Id, [RFC 2865] 5.31, [RFC 2866] 5.5). The protocol core
/// never sees it: the runtime supplies it with each request.
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
/// [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthContext {
    /// The client's transport address.
    pub peer: Option<SocketAddr>,
    /// The session's accounting id, unique across restarts and nodes.
    pub session_id: Option<String>,
}

impl AuthContext {
    /// The context of a session with the client at `peer`.
    pub fn new(peer: SocketAddr, session_id: impl Into<String>) -> Self {
        AuthContext {
            peer: Some(peer),
            session_id: Some(session_id.into()),
        }
    }
}

/// The server side's MS-CHAPv2 results ([RFC 2759] 5, [RFC 3079] 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsChapV2Proof {
    /// The 20-octet AuthenticatorResponse sent as `S=` in the Success packet.
    pub authenticator_response: [u8; 20],
    /// MPPE master keys from the server's point of view.
    pub keys: MppeKeys,
}

/// A negative answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthReject {
    /// Why; for MS-CHAPv2 it picks the `E=` code.
    pub reason: RejectReason,
    /// Human-readable text for the Failure/Nak packet (`M=` for MS-CHAPv2).
    pub message: String,
}

/// Why credentials were refused; maps onto the MS-CHAPv2 `E=` codes of
/// [RFC 2759] 6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// Unknown user or wrong password: `E=691` ERROR_AUTHENTICATION_FAILURE.
    AuthenticationFailure,
    /// `E=646` ERROR_RESTRICTED_LOGON_HOURS.
    RestrictedLogonHours,
    /// `E=647` ERROR_ACCT_DISABLED.
    AccountDisabled,
    /// `E=648` ERROR_PASSWD_EXPIRED.
    PasswordExpired,
    /// `E=649` ERROR_NO_DIALIN_PERMISSION.
    NoDialinPermission,
    /// The authenticator could not decide (backend down, no address left);
    /// reported as `E=691` to the peer.
    ServiceUnavailable,
}

impl RejectReason {
    /// The MS-CHAPv2 failure code ([RFC 2759] 6).
    pub fn mschapv2_error_code(self) -> u32 {
        match self {
            RejectReason::AuthenticationFailure | RejectReason::ServiceUnavailable => 691,
            RejectReason::RestrictedLogonHours => 646,
            RejectReason::AccountDisabled => 647,
            RejectReason::PasswordExpired => 648,
            RejectReason::NoDialinPermission => 649,
        }
    }

    /// The reason a peer reads from a received MS-CHAPv2 `E=` code
    /// ([RFC 2759] 6). Codes without a variant of their own (709
    /// ERROR_CHANGING_PASSWORD, vendor codes) read as
    /// [`RejectReason::AuthenticationFailure`]; the code itself travels in
    /// [`AuthFailure::Rejected`].
    pub fn from_mschapv2_error_code(code: u32) -> Self {
        match code {
            646 => RejectReason::RestrictedLogonHours,
            647 => RejectReason::AccountDisabled,
            648 => RejectReason::PasswordExpired,
            649 => RejectReason::NoDialinPermission,
            _ => RejectReason::AuthenticationFailure,
        }
    }

    /// Short lowercase name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::AuthenticationFailure => "authentication_failure",
            RejectReason::RestrictedLogonHours => "restricted_logon_hours",
            RejectReason::AccountDisabled => "account_disabled",
            RejectReason::PasswordExpired => "password_expired",
            RejectReason::NoDialinPermission => "no_dialin_permission",
            RejectReason::ServiceUnavailable => "service_unavailable",
        }
    }
}

/// One failed authentication attempt on a server link: reported (as
/// [`crate::proto::session::SessionEvent::AuthAttemptFailed`]) for every
/// set of credentials that did not authenticate the peer, so that the
/// owner logs and counts each one, not only the last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedAuthAttempt {
    /// The request whose credentials failed.
    pub request: AuthRequestId,
    /// The name the peer claimed (not authenticated: the peer's words).
    pub username: String,
    /// The method the attempt used.
    pub protocol: AuthProtocol,
    /// How the attempt failed.
    pub outcome: AttemptOutcome,
    /// Failed attempts on this connection so far, this one included; they
    /// survive LCP renegotiation.
    pub attempt: u32,
    /// The limit (`ppp.auth_max_attempts`): the connection ends when
    /// `attempt` reaches it.
    pub max_attempts: u32,
}

/// How an authentication attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The authenticator refused the credentials (or accepted MS-CHAPv2
    /// credentials without the proof a Success needs).
    Rejected(RejectReason),
    /// An LCP renegotiation ended the authentication phase while these
    /// credentials were being judged: the answer will be stale. Counted as
    /// a failure, or renegotiating would buy unlimited guesses.
    Abandoned,
    /// The phase timeout passed while these credentials were being judged.
    TimedOut,
}

impl AttemptOutcome {
    /// Short lowercase name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Rejected(reason) => reason.as_str(),
            AttemptOutcome::Abandoned => "abandoned_by_renegotiation",
            AttemptOutcome::TimedOut => "timed_out",
        }
    }
}

/// Decides whether credentials are good.
///
/// The answer may come at once (local users) or later from another task or
/// thread (RADIUS): implementations call [`AuthReply::send`] exactly once,
/// whenever they know. Dropping the reply without sending counts as
/// [`RejectReason::ServiceUnavailable`] for the runtime that created it.
pub trait Authenticator: Send + Sync {
    /// Judges `request`, made on the connection `context` describes, and
    /// answers through `reply`, now or later.
    fn authenticate(&self, request: AuthRequest, context: AuthContext, reply: AuthReply);
}

/// One-shot channel for an [`Authenticator`]'s answer.
pub struct AuthReply(Box<dyn FnOnce(AuthDecision) + Send>);

impl AuthReply {
    /// Wraps the function that routes the answer back to the session.
    pub fn new(f: impl FnOnce(AuthDecision) + Send + 'static) -> Self {
        AuthReply(Box::new(f))
    }

    /// Delivers the decision.
    pub fn send(self, decision: AuthDecision) {
        (self.0)(decision)
    }
}

impl fmt::Debug for AuthReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthReply(..)")
    }
}

/// A locally stored user, as [`PasswordStore`] returns it.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalUser {
    /// The cleartext secret (chap-secrets stores cleartext; CHAP and
    /// MS-CHAPv2 need it to verify).
    pub password: Vec<u8>,
    /// A fixed address for this user, if any.
    pub framed_ipv4: Option<Ipv4Addr>,
}

impl fmt::Debug for LocalUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalUser")
            .field("framed_ipv4", &self.framed_ipv4)
            .finish_non_exhaustive()
    }
}

/// Where a [`LocalAuthenticator`] looks passwords up (the server's
/// chap-secrets file, a test's map).
pub trait PasswordStore: Send + Sync {
    /// The user named `username`; `None` if there is no such user.
    fn lookup(&self, username: &str) -> Option<LocalUser>;
}

pub mod chap;
pub mod eap;
pub mod eap_tls;
mod machine;
pub mod mppe;
pub mod mschapv2;
mod outbox;
pub mod packet;
pub mod pap;
pub mod peap;
mod peap_binding;
pub mod tls_framing;
pub mod verify;

pub use verify::LocalAuthenticator;

/// A deterministic generator to pass as the machines' `rng`, for fuzz
/// targets and tests that do not depend on `rand` themselves. Never for
/// real sessions: their challenges must be unpredictable.
#[doc(hidden)]
pub fn seeded_rng(seed: u64) -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(seed)
}
pub use machine::{
    AuthClient, AuthConfig, AuthEvent, AuthFailure, AuthPacketError, AuthServer, EapPeerMethod,
};

#[cfg(test)]
mod tests;

impl<T: PasswordStore + ?Sized> PasswordStore for std::sync::Arc<T> {
    fn lookup(&self, username: &str) -> Option<LocalUser> {
        (**self).lookup(username)
    }
}
