//! What sstpd's authentication requests and decisions are in RADIUS
//! attributes: [`AuthRequest`] → Access-Request ([RFC 2865] 5, [RFC 2548]
//! 2.3), Access-Accept / Access-Reject → [`AuthDecision`](crate::proto::auth::AuthDecision). Pure functions
//! over [`Attributes`], unit-tested here; the IO is in [`super::service`].
//!
//! [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
//! [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::proto::auth::verify::REJECT_MESSAGE;
use crate::proto::auth::{
    AuthAccept, AuthChallenge, AuthContext, AuthReject, AuthRequest, Credentials, MppeKeys,
    MsChapV2Proof, Msk, RejectReason, SessionPolicy,
};
use crate::radius::attr::{self, ms, AttrError, Attributes};
use crate::radius::client::Request;

/// The NAS attributes every request carries, from `[radius]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NasIdentity {
    /// NAS-Identifier ([RFC 2865] 5.32).
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub nas_identifier: String,
    /// NAS-IP-Address ([RFC 2865] 5.4).
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub nas_ip_address: Option<Ipv4Addr>,
    /// Called-Station-Id ([RFC 2865] 5.30).
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub called_station_id: Option<String>,
}

impl NasIdentity {
    /// NAS-Identifier, NAS-IP-Address, NAS-Port-Type Virtual, Service-Type
    /// Framed, Framed-Protocol PPP and Called-Station-Id: what every request
    /// of this NAS carries ([RFC 2865] 5).
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub fn push_nas_attributes(&self, attrs: &mut Attributes) {
        // The values are bounded by configuration validation (253 octets),
        // so pushing cannot fail; a failure would only leave one out.
        let _ = attrs.push_string(attr::NAS_IDENTIFIER, &self.nas_identifier);
        if let Some(ip) = self.nas_ip_address {
            attrs.push_ipv4(attr::NAS_IP_ADDRESS, ip);
        }
        attrs.push_u32(attr::NAS_PORT_TYPE, attr::NAS_PORT_TYPE_VIRTUAL);
        attrs.push_u32(attr::SERVICE_TYPE, attr::SERVICE_TYPE_FRAMED);
        attrs.push_u32(attr::FRAMED_PROTOCOL, attr::FRAMED_PROTOCOL_PPP);
        if let Some(called) = &self.called_station_id {
            let _ = attrs.push_string(attr::CALLED_STATION_ID, called);
        }
    }

    /// [`NasIdentity::push_nas_attributes`], then from `context`
    /// Calling-Station-Id (the client's IP address) and Acct-Session-Id
    /// ([RFC 2865] 5.31, [RFC 2866] 5.5).
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    /// [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
    pub fn push_session_attributes(&self, context: &AuthContext, attrs: &mut Attributes) {
        self.push_nas_attributes(attrs);
        if let Some(peer) = context.peer {
            let _ = attrs.push_string(attr::CALLING_STATION_ID, &peer.ip().to_string());
        }
        if let Some(id) = &context.session_id {
            let _ = attrs.push_string(attr::ACCT_SESSION_ID, id);
        }
    }
}

/// The Access-Request for `request` made on the connection `context`
/// describes: the NAS and session attributes, then the credentials as
/// [`Request::authenticate`] puts them (PAP: User-Password, hidden by the
/// client per [RFC 2865] 5.2; CHAP-MD5: CHAP-Password and CHAP-Challenge;
/// MS-CHAPv2: MS-CHAP-Challenge and MS-CHAP2-Response, [RFC 2548] 2.3.2).
/// Fails only on a user name or challenge too long for an attribute.
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
/// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
pub fn access_request(
    nas: &NasIdentity,
    request: &AuthRequest,
    context: &AuthContext,
) -> Result<Request, AttrError> {
    let mut attrs = Attributes::new();
    nas.push_session_attributes(context, &mut attrs);
    Request::authenticate(attrs, &request.username, &request.credentials)
}

/// Framed-IP-Address 255.255.255.254: "the NAS should select an address
/// for the user (e.g. assigned from a pool)" ([RFC 2865] 5.8).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
pub const FRAMED_IP_FROM_POOL: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 254);
/// Framed-IP-Address 255.255.255.255: "the NAS should allow the user to
/// select an address" ([RFC 2865] 5.8). sstpd reserves the client's
/// address before IPCP starts, so it treats this as
/// [`FRAMED_IP_FROM_POOL`]: the client's own proposal is Nak'd with an
/// address from the pool (a client may not pick an address another
/// session might hold).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
pub const FRAMED_IP_CLIENT_CHOOSES: Ipv4Addr = Ipv4Addr::BROADCAST;

/// The smallest Framed-MTU applied: the IPv4 minimum reassembly size; a
/// smaller one is ignored (and counted with the ignored attributes).
const MIN_FRAMED_MTU: u32 = 576;
/// The smallest Acct-Interim-Interval honoured; RFC 2869 5.16 says it
/// "SHOULD NOT" be smaller than 60 s.
pub const MIN_INTERIM_INTERVAL: Duration = Duration::from_secs(60);

/// Why an Access-Accept could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcceptError {
    /// MS-CHAPv2 accepted without MS-CHAP2-Success: there is no
    /// authenticator response to send the peer.
    MissingChap2Success,
    /// MS-CHAP2-Success for another CHAP Identifier ([RFC 2548] 2.3.3).
    ///
    /// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
    Chap2SuccessIdentMismatch,
    /// MS-CHAPv2 accepted without both MS-MPPE keys: no HLAK for the
    /// crypto binding.
    MissingMppeKeys,
    /// The MS-MPPE keys did not decrypt ([RFC 2548] 2.4.2).
    ///
    /// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
    BadMppeKeys,
    /// Relayed EAP accepted with MS-MPPE keys shorter than the 32 octets
    /// of an HLAK together.
    ShortEapKeys,
}

impl AcceptError {
    pub fn as_str(self) -> &'static str {
        match self {
            AcceptError::MissingChap2Success => "missing_chap2_success",
            AcceptError::Chap2SuccessIdentMismatch => "chap2_success_ident_mismatch",
            AcceptError::MissingMppeKeys => "missing_mppe_keys",
            AcceptError::BadMppeKeys => "bad_mppe_keys",
            AcceptError::ShortEapKeys => "short_eap_keys",
        }
    }
}

impl fmt::Display for AcceptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The MS-MPPE keys of an Access-Accept, decrypted
/// ([`crate::radius::client::Response::mppe_keys`]): `send` from
/// MS-MPPE-Send-Key, `receive` from MS-MPPE-Recv-Key. `None`: neither
/// present; `Some(Err)`: not both usable.
pub type DecryptedKeys = Option<Result<MppeKeys, ()>>;

/// An Access-Accept's attributes as an [`AuthAccept`], for the request
/// made with `credentials`; also returns how many attributes were ignored
/// (unknown, or known but unusable), for the counter.
///
/// MS-CHAPv2 needs MS-CHAP2-Success (its Ident must be the Response's
/// CHAP Identifier) and both MS-MPPE keys. MS-MPPE-Send-Key is the key
/// "for encrypting packets sent from the NAS to the remote host" ([RFC
/// 2548] 2.4.2): the server's MasterSendKey; MS-MPPE-Recv-Key its
/// MasterReceiveKey ([RFC 3079] 3.4). Their HLAK is what the client
/// derives from the password ([MS-SSTP] 3.2.5.2; tests/radius.rs checks it
/// against the local authenticator and the client's crypto binding).
///
/// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
/// [RFC 3079]: https://www.rfc-editor.org/rfc/rfc3079
pub fn accept(
    attrs: &Attributes,
    credentials: &Credentials,
    keys: DecryptedKeys,
) -> Result<(AuthAccept, usize), AcceptError> {
    let mut ignored = 0usize;
    let mschapv2 = match credentials {
        Credentials::MsChapV2 { identifier, .. } => {
            let success = attrs
                .ms(ms::CHAP2_SUCCESS)
                .and_then(ms::parse_chap2_success)
                .ok_or(AcceptError::MissingChap2Success)?;
            if success.0 != *identifier {
                return Err(AcceptError::Chap2SuccessIdentMismatch);
            }
            let keys = keys
                .ok_or(AcceptError::MissingMppeKeys)?
                .map_err(|()| AcceptError::BadMppeKeys)?;
            Some(MsChapV2Proof {
                authenticator_response: success.1,
                keys,
            })
        }
        _ => None,
    };
    let framed_ipv4 = match attrs.ipv4(attr::FRAMED_IP_ADDRESS) {
        Some(FRAMED_IP_FROM_POOL | FRAMED_IP_CLIENT_CHOOSES) | None => None,
        Some(addr) => Some(addr),
    };
    let seconds = |kind: u8| {
        attrs
            .u32(kind)
            .filter(|&s| s > 0)
            .map(|s| Duration::from_secs(u64::from(s)))
    };
    let mtu = attrs.u32(attr::FRAMED_MTU).and_then(|mtu| {
        let usable = (MIN_FRAMED_MTU..=u32::from(u16::MAX)).contains(&mtu);
        ignored += usize::from(!usable);
        usable.then_some(mtu as u16)
    });
    // Malformed Framed-Routes are logged there and counted as ignored.
    let (routes, bad_routes) =
        crate::routing::framed_route::parse_framed_routes(attrs.get_all(attr::FRAMED_ROUTE));
    ignored += bad_routes;
    let policy = SessionPolicy {
        session_timeout: seconds(attr::SESSION_TIMEOUT),
        idle_timeout: seconds(attr::IDLE_TIMEOUT),
        acct_interim_interval: seconds(attr::ACCT_INTERIM_INTERVAL)
            .map(|d| d.max(MIN_INTERIM_INTERVAL)),
        mtu,
        dns: [
            ms_ipv4(attrs, ms::PRIMARY_DNS_SERVER),
            ms_ipv4(attrs, ms::SECONDARY_DNS_SERVER),
        ],
        pool: attrs
            .get(attr::FRAMED_POOL)
            .map(|name| String::from_utf8_lossy(name).into_owned()),
        class: attrs.get_all(attr::CLASS).map(<[u8]>::to_vec).collect(),
        routes,
    };
    ignored += attrs.iter().filter(|a| !applied(a.kind())).count();
    ignored += attrs
        .vendor_all(ms::VENDOR_ID)
        .filter(|&(kind, _)| !applied_ms(kind))
        .count();
    Ok((
        AuthAccept {
            mschapv2,
            eap_msk: None,
            framed_ipv4,
            policy,
        },
        ignored,
    ))
}

/// The MSK of relayed EAP from an Access-Accept's decrypted MS-MPPE keys:
/// MS-MPPE-Recv-Key ‖ MS-MPPE-Send-Key ([RFC 3748] 7.10 leaves the
/// transport to AAA; [RFC 5216] 2.3 and every RADIUS server put the first
/// 32 octets of the MSK in Recv-Key and the next 32 in Send-Key). The
/// HLAK is its first 32 octets, so both keys are needed when Recv-Key is
/// shorter (EAP-MSCHAPv2's 16-octet MasterReceiveKey, then
/// MasterSendKey).
///
/// [RFC 3748]: https://www.rfc-editor.org/rfc/rfc3748
/// [RFC 5216]: https://www.rfc-editor.org/rfc/rfc5216
pub fn eap_msk(
    recv: Option<Result<Vec<u8>, ()>>,
    send: Option<Result<Vec<u8>, ()>>,
) -> Result<Msk, AcceptError> {
    let recv = recv
        .ok_or(AcceptError::MissingMppeKeys)?
        .map_err(|()| AcceptError::BadMppeKeys)?;
    let mut msk = recv;
    if let Some(send) = send {
        msk.extend(send.map_err(|()| AcceptError::BadMppeKeys)?);
    }
    if msk.len() < 32 {
        return Err(AcceptError::ShortEapKeys);
    }
    Ok(Msk(msk))
}

/// An Access-Challenge for relayed EAP as the core's next round: its
/// EAP-Message attributes put together (the EAP Request to send the peer)
/// and the State to echo ([RFC 3579] 2.1, 3.1). `None` without one whole
/// EAP packet.
///
/// [RFC 3579]: https://www.rfc-editor.org/rfc/rfc3579
pub fn challenge(attrs: &Attributes) -> Option<AuthChallenge> {
    Some(AuthChallenge {
        eap_request: attrs.eap_message()?,
        state: attrs.get(attr::STATE).map(<[u8]>::to_vec),
    })
}

/// An MS-*-Server address attribute ([RFC 2548] 2.6), if well formed.
///
/// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
fn ms_ipv4(attrs: &Attributes, ms_type: u8) -> Option<Ipv4Addr> {
    let value: [u8; 4] = attrs.ms(ms_type)?.try_into().ok()?;
    Some(Ipv4Addr::from(value)).filter(|a| !a.is_unspecified())
}

/// Attributes of an Access-Accept sstpd uses (or that only concern the
/// RADIUS exchange itself); the rest are ignored and counted.
fn applied(kind: u8) -> bool {
    matches!(
        kind,
        attr::FRAMED_IP_ADDRESS
            | attr::FRAMED_POOL
            | attr::SESSION_TIMEOUT
            | attr::IDLE_TIMEOUT
            | attr::ACCT_INTERIM_INTERVAL
            | attr::FRAMED_MTU
            | attr::FRAMED_ROUTE
            | attr::CLASS
            | attr::MESSAGE_AUTHENTICATOR
            | attr::PROXY_STATE
            | attr::REPLY_MESSAGE
            | attr::USER_NAME
            // Relayed EAP: the EAP-Success the core sends itself.
            | attr::EAP_MESSAGE
            // What sstpd is anyway: a framed PPP service.
            | attr::SERVICE_TYPE
            | attr::FRAMED_PROTOCOL
            // Judged sub-attribute by sub-attribute below.
            | attr::VENDOR_SPECIFIC
    )
}

/// Microsoft attributes of an Access-Accept sstpd uses; MPPE encryption
/// policy and types concern PPP-level MPPE, which SSTP does not run (TLS
/// encrypts), so they are known and need nothing.
fn applied_ms(kind: u8) -> bool {
    matches!(
        kind,
        ms::CHAP2_SUCCESS
            | ms::MPPE_SEND_KEY
            | ms::MPPE_RECV_KEY
            | ms::PRIMARY_DNS_SERVER
            | ms::SECONDARY_DNS_SERVER
            | ms::MPPE_ENCRYPTION_POLICY
            | ms::MPPE_ENCRYPTION_TYPES
    )
}

/// An Access-Reject as an [`AuthReject`]: for MS-CHAPv2, the `E=` code of
/// MS-CHAP-Error ([RFC 2548] 2.1.5, [RFC 2759] 6) picks the reason (and so
/// the code the peer sees); otherwise an authentication failure. The
/// message is sstpd's usual one: the server's Reply-Message is not shown
/// to a client that failed to authenticate.
///
/// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
/// [RFC 2759]: https://www.rfc-editor.org/rfc/rfc2759
pub fn reject(attrs: &Attributes) -> AuthReject {
    let reason = attrs
        .ms(ms::CHAP_ERROR)
        .and_then(ms::parse_chap_error)
        .and_then(|(_, code)| code)
        .map_or(
            RejectReason::AuthenticationFailure,
            RejectReason::from_mschapv2_error_code,
        );
    AuthReject {
        reason,
        message: REJECT_MESSAGE.into(),
    }
}

/// The answer when RADIUS could not decide (no server answered, the queue
/// was full, the accept was unusable): the peer sees an authentication
/// failure; the throttle does not count it as a guess.
pub fn unavailable() -> AuthReject {
    AuthReject {
        reason: RejectReason::ServiceUnavailable,
        message: REJECT_MESSAGE.into(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::proto::auth::AuthRequestId;

    /// The NAS of these tests (and of accounting's).
    pub(crate) fn nas() -> NasIdentity {
        NasIdentity {
            nas_identifier: "sstpd-test".into(),
            nas_ip_address: Some(Ipv4Addr::new(192, 0, 2, 1)),
            called_station_id: Some("vpn.example.com".into()),
        }
    }

    fn context() -> AuthContext {
        let peer: SocketAddr = "198.51.100.7:50123".parse().unwrap();
        AuthContext::new(peer, "0123456789abcdef00000001")
    }

    fn request(credentials: Credentials) -> AuthRequest {
        AuthRequest {
            id: AuthRequestId::from_raw(1),
            username: "alice".into(),
            credentials,
        }
    }

    fn mschapv2() -> Credentials {
        Credentials::MsChapV2 {
            identifier: 0x2a,
            authenticator_challenge: [1; 16],
            peer_challenge: [2; 16],
            nt_response: [3; 24],
        }
    }

    /// What [`NasIdentity::push_session_attributes`] puts in for [`nas`]
    /// and [`context`] (the accounting tests' records too).
    pub(crate) fn assert_session_attributes(attrs: &Attributes) {
        assert_eq!(attrs.string(attr::NAS_IDENTIFIER), Some("sstpd-test"));
        assert_eq!(
            attrs.ipv4(attr::NAS_IP_ADDRESS),
            Some(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert_eq!(attrs.u32(attr::NAS_PORT_TYPE), Some(5), "Virtual");
        assert_eq!(attrs.u32(attr::SERVICE_TYPE), Some(2), "Framed");
        assert_eq!(attrs.u32(attr::FRAMED_PROTOCOL), Some(1), "PPP");
        assert_eq!(
            attrs.string(attr::CALLED_STATION_ID),
            Some("vpn.example.com")
        );
        assert_eq!(attrs.string(attr::CALLING_STATION_ID), Some("198.51.100.7"));
        assert_eq!(
            attrs.string(attr::ACCT_SESSION_ID),
            Some("0123456789abcdef00000001")
        );
    }

    #[test]
    fn every_request_names_the_nas_and_the_session() {
        let pap = request(Credentials::Pap {
            password: b"pw".to_vec(),
        });
        let built = access_request(&nas(), &pap, &context()).unwrap();
        let attrs = built.attributes();
        assert!(!attrs.contains(attr::USER_PASSWORD), "the client hides it");
        assert_eq!(attrs.string(attr::USER_NAME), Some("alice"));
        assert_session_attributes(attrs);
        // Without the optional ones, they are left out.
        let bare = NasIdentity {
            nas_identifier: "n".into(),
            ..NasIdentity::default()
        };
        let built = access_request(&bare, &pap, &AuthContext::default()).unwrap();
        for kind in [
            attr::NAS_IP_ADDRESS,
            attr::CALLED_STATION_ID,
            attr::CALLING_STATION_ID,
            attr::ACCT_SESSION_ID,
        ] {
            assert!(!built.attributes().contains(kind), "{kind}");
        }
    }

    #[test]
    fn mschapv2_credentials_travel_in_the_rfc_2548_attributes() {
        let built = access_request(&nas(), &request(mschapv2()), &context()).unwrap();
        let attrs = built.attributes();
        assert_eq!(attrs.ms(ms::CHAP_CHALLENGE), Some(&[1u8; 16][..]));
        let response = attrs.ms(ms::CHAP2_RESPONSE).unwrap();
        assert_eq!((response.len(), response[0]), (50, 0x2a), "Ident");
        assert_eq!(&response[26..], &[3; 24], "NT-Response");
        let mut named = request(mschapv2());
        named.username = "u".repeat(254);
        assert!(access_request(&nas(), &named, &context()).is_err());
    }

    fn success(ident: u8) -> Vec<u8> {
        let mut value = vec![ident];
        value.extend_from_slice(b"S=");
        value.extend_from_slice(b"0123456789ABCDEF0123456789abcdef01234567");
        value
    }

    #[test]
    fn an_mschapv2_accept_gives_the_proof_and_the_servers_keys() {
        let mut attrs = Attributes::new();
        attrs.push_ms(ms::CHAP2_SUCCESS, &success(0x2a)).unwrap();
        attrs
            .push_ms(ms::MPPE_ENCRYPTION_POLICY, &1u32.to_be_bytes())
            .unwrap();
        let keys = MppeKeys {
            send: [7; 16],
            receive: [8; 16],
        };
        let (accept, ignored) = accept(&attrs, &mschapv2(), Some(Ok(keys))).unwrap();
        assert_eq!(ignored, 0, "MPPE policy needs nothing");
        let proof = accept.mschapv2.unwrap();
        assert_eq!(proof.authenticator_response[..2], [0x01, 0x23]);
        assert_eq!(proof.authenticator_response[19], 0x67);
        assert_eq!(
            proof.keys,
            MppeKeys {
                send: [7; 16],
                receive: [8; 16]
            },
            "Send-Key is the server's send key"
        );
        assert_eq!(proof.keys.server_hlak()[..16], [8; 16]);
    }

    #[test]
    fn an_mschapv2_accept_without_what_the_binding_needs_is_unusable() {
        let keys = || {
            Some(Ok(MppeKeys {
                send: [7; 16],
                receive: [8; 16],
            }))
        };
        let empty = Attributes::new();
        assert_eq!(
            accept(&empty, &mschapv2(), keys()).unwrap_err(),
            AcceptError::MissingChap2Success
        );
        let mut other_ident = Attributes::new();
        other_ident
            .push_ms(ms::CHAP2_SUCCESS, &success(0x2b))
            .unwrap();
        assert_eq!(
            accept(&other_ident, &mschapv2(), keys()).unwrap_err(),
            AcceptError::Chap2SuccessIdentMismatch
        );
        let mut good = Attributes::new();
        good.push_ms(ms::CHAP2_SUCCESS, &success(0x2a)).unwrap();
        assert_eq!(
            accept(&good, &mschapv2(), None).unwrap_err(),
            AcceptError::MissingMppeKeys
        );
        assert_eq!(
            accept(&good, &mschapv2(), Some(Err(()))).unwrap_err(),
            AcceptError::BadMppeKeys
        );
    }

    #[test]
    fn accept_attributes_become_the_session_policy() {
        let mut attrs = Attributes::new();
        attrs.push_ipv4(attr::FRAMED_IP_ADDRESS, Ipv4Addr::new(10, 99, 0, 77));
        attrs.push_u32(attr::SESSION_TIMEOUT, 3600);
        attrs.push_u32(attr::IDLE_TIMEOUT, 600);
        attrs.push_u32(attr::ACCT_INTERIM_INTERVAL, 10);
        attrs.push_u32(attr::FRAMED_MTU, 1300);
        attrs.push_string(attr::FRAMED_POOL, "gold").unwrap();
        attrs.push(attr::CLASS, b"plan=a").unwrap();
        attrs.push(attr::CLASS, b"plan=b").unwrap();
        attrs
            .push_ms(ms::PRIMARY_DNS_SERVER, &[192, 0, 2, 53])
            .unwrap();
        attrs
            .push_ms(ms::SECONDARY_DNS_SERVER, &[192, 0, 2, 54])
            .unwrap();
        attrs
            .push_string(attr::FILTER_ID, "unknown-to-sstpd")
            .unwrap();
        attrs
            .push_ms(ms::PRIMARY_NBNS_SERVER, &[1, 2, 3, 4])
            .unwrap();
        attrs.push(200, b"vendor-less junk").unwrap();
        let pap = Credentials::Pap { password: vec![] };
        let (accept, ignored) = accept(&attrs, &pap, None).unwrap();
        assert_eq!(accept.mschapv2, None);
        assert_eq!(accept.framed_ipv4, Some(Ipv4Addr::new(10, 99, 0, 77)));
        let p = &accept.policy;
        assert_eq!(p.session_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(p.idle_timeout, Some(Duration::from_secs(600)));
        assert_eq!(
            p.acct_interim_interval,
            Some(MIN_INTERIM_INTERVAL),
            "raised to the RFC 2869 floor"
        );
        assert_eq!(p.mtu, Some(1300));
        assert_eq!(p.pool.as_deref(), Some("gold"));
        assert_eq!(p.class, [b"plan=a".to_vec(), b"plan=b".to_vec()]);
        assert_eq!(
            p.dns,
            [
                Some(Ipv4Addr::new(192, 0, 2, 53)),
                Some(Ipv4Addr::new(192, 0, 2, 54))
            ]
        );
        assert_eq!(ignored, 3, "Filter-Id, MS-Primary-NBNS-Server, type 200");
    }

    #[test]
    fn framed_ip_address_special_values_mean_the_pool() {
        let pap = Credentials::Pap { password: vec![] };
        for special in [FRAMED_IP_FROM_POOL, FRAMED_IP_CLIENT_CHOOSES] {
            let mut attrs = Attributes::new();
            attrs.push_ipv4(attr::FRAMED_IP_ADDRESS, special);
            let (accept, ignored) = accept(&attrs, &pap, None).unwrap();
            assert_eq!((accept.framed_ipv4, ignored), (None, 0), "{special}");
        }
        // Zero timeouts mean none; a tiny MTU is ignored and counted.
        let mut attrs = Attributes::new();
        attrs.push_u32(attr::SESSION_TIMEOUT, 0);
        attrs.push_u32(attr::FRAMED_MTU, 100);
        let (accept, ignored) = accept(&attrs, &pap, None).unwrap();
        assert_eq!(accept.policy, SessionPolicy::default());
        assert_eq!(ignored, 1);
    }

    #[test]
    fn framed_routes_become_the_policys_routes_and_bad_ones_are_ignored() {
        use crate::proto::route::FramedRoute;
        let pap = Credentials::Pap { password: vec![] };
        let mut attrs = Attributes::new();
        for value in [
            "192.0.2.0/24 0.0.0.0 1",
            "not a route",
            "198.51.100.0 255.255.255.128",
        ] {
            attrs.push_string(attr::FRAMED_ROUTE, value).unwrap();
        }
        let (accept, ignored) = accept(&attrs, &pap, None).unwrap();
        assert_eq!(
            accept.policy.routes,
            [
                FramedRoute::parse("192.0.2.0/24 0.0.0.0 1").unwrap(),
                FramedRoute::parse("198.51.100.0/25").unwrap(),
            ]
        );
        assert_eq!(ignored, 1, "the malformed one");
    }

    #[test]
    fn relayed_eap_travels_as_eap_message_and_state_and_comes_back_as_a_challenge() {
        let packet: Vec<u8> = [2, 7, 0x01, 0x2c, 26]
            .into_iter()
            .chain(std::iter::repeat_n(0xab, 295))
            .collect();
        let eap = Credentials::Eap {
            packet: packet.clone(),
            state: Some(b"opaque".to_vec()),
        };
        let built = access_request(&nas(), &request(eap), &context()).unwrap();
        let attrs = built.attributes();
        assert_eq!(
            attrs.get_all(attr::EAP_MESSAGE).count(),
            2,
            "253 + 47 octets"
        );
        assert_eq!(attrs.eap_message(), Some(packet));
        assert_eq!(attrs.get(attr::STATE), Some(&b"opaque"[..]));
        assert_eq!(attrs.string(attr::USER_NAME), Some("alice"));

        let mut answer = Attributes::new();
        answer.push_eap_message(&[1, 8, 0, 6, 26, 1]);
        answer.push(attr::STATE, b"next").unwrap();
        let next = challenge(&answer).unwrap();
        assert_eq!(next.eap_request, [1, 8, 0, 6, 26, 1]);
        assert_eq!(next.state.as_deref(), Some(&b"next"[..]));
        assert!(challenge(&Attributes::new()).is_none(), "no EAP-Message");
    }

    #[test]
    fn the_eap_msk_is_recv_then_send_key_and_needs_32_octets() {
        let msk = eap_msk(Some(Ok(vec![1; 16])), Some(Ok(vec![2; 16]))).unwrap();
        assert_eq!(msk.0, [[1u8; 16], [2; 16]].concat());
        let long = eap_msk(Some(Ok(vec![3; 32])), Some(Ok(vec![4; 32]))).unwrap();
        assert_eq!(&long.0[..32], &[3; 32]);
        assert_eq!(
            eap_msk(Some(Ok(vec![1; 16])), None),
            Err(AcceptError::ShortEapKeys)
        );
        assert_eq!(eap_msk(None, None), Err(AcceptError::MissingMppeKeys));
        assert_eq!(
            eap_msk(Some(Err(())), Some(Ok(vec![2; 16]))),
            Err(AcceptError::BadMppeKeys)
        );
    }

    #[test]
    fn a_reject_maps_the_mschap_error_code() {
        let mut attrs = Attributes::new();
        attrs.push_ms(ms::CHAP_ERROR, b"\x2aE=648 R=0 V=3").unwrap();
        assert_eq!(reject(&attrs).reason, RejectReason::PasswordExpired);
        assert_eq!(
            reject(&Attributes::new()).reason,
            RejectReason::AuthenticationFailure
        );
        assert_eq!(unavailable().reason, RejectReason::ServiceUnavailable);
    }
}
