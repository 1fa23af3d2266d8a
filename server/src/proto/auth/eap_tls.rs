//! The peer's side of EAP-TLS ([RFC 5216]): what a Windows client with a
//! smart card or a user certificate runs against a RADIUS server that
//! terminates EAP-TLS, with sstpd relaying the EAP in between
//! (`radius.eap_pass_through`).
//!
//! ```text
//! Request/Identity                           → Response/Identity
//! Request/EAP-TLS Start (S)                  → Response/EAP-TLS ClientHello
//! Request/EAP-TLS ServerHello… (L, M)        → Response/EAP-TLS (empty: fragment ack) …
//! Request/EAP-TLS …CertificateRequest, Done  → Response/EAP-TLS Certificate, ClientKeyExchange,
//!                                              CertificateVerify, Finished (in fragments)
//! Request/EAP-TLS ChangeCipherSpec, Finished → Response/EAP-TLS (empty)
//! EAP-Success (the MSK is the TLS exporter's)
//! ```
//!
//! * Framing, fragments and the bounded reassembly are the family's
//!   ([`super::tls_framing`]); the TLS is behind [`super::tls_framing::TunnelTls`],
//!   whose runtime implementation (`tls::eap`) presents the client
//!   certificate, caps the TLS at 1.2 and verifies the server's
//!   certificate against the CA it is given.
//! * EAP-Success is accepted only after the handshake has finished, which
//!   includes the server's certificate verified and its Finished checked
//!   ([RFC 5216] 2.1.1: the peer must not trust a Success before that;
//!   [RFC 3748] 7.2).
//! * The authenticator's TLS alert (our certificate refused, [RFC 5216]
//!   2.1.3) is acknowledged with an empty Response and the method fails on
//!   the EAP-Failure that follows, or at the phase timeout; a server we
//!   refuse ends the method at once ([`AuthFailure::ServerNotAuthenticated`]).
//! * Keys ([RFC 5216] 2.3): the MSK is the TLS 1.2 PRF of the master secret
//!   with the label `client EAP encryption` over the two randoms, 64
//!   octets. FreeRADIUS returns it as MS-MPPE-Recv-Key (MSK 0..32) and
//!   MS-MPPE-Send-Key (32..64), so the HLAK is its first 32 octets at both
//!   ends ([MS-SSTP] 3.2.5.2.2).
//! * A Request repeated with the same Identifier gets the same Response
//!   again, without touching the TLS state; a Request of another method
//!   is answered with a Nak proposing EAP-TLS.
//!
//! [MS-SSTP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-sstp/
//! [RFC 3748]: https://www.rfc-editor.org/rfc/rfc3748
//! [RFC 5216]: https://www.rfc-editor.org/rfc/rfc5216

use std::fmt;
use std::time::Instant;

use super::machine::{AuthConfig, AuthFailure};
use super::outbox::Outbox;
use super::tls_framing::{
    empty_answer, handle_outer_packet, rejected, EapTlsError, OuterPeer, Received, TlsConversation,
    TlsMethodPeer, TlsTunnel,
};

/// EAP-TLS's EAP Type (IANA EAP method type 13).
pub const TYPE_EAP_TLS: u8 = 13;

/// The peer's side of EAP-TLS.
pub(crate) struct EapTlsClient {
    /// The outer conversation; its refusal is the authenticator's TLS
    /// alert.
    pub(super) outer: OuterPeer,
    tunnel: TlsConversation,
}

impl fmt::Debug for EapTlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EapTlsClient")
            .field("username", &String::from_utf8_lossy(&self.outer.username))
            .field("started", &self.tunnel.started())
            .field("outbox", &self.outer.outbox)
            .finish_non_exhaustive()
    }
}

impl EapTlsClient {
    /// A peer answering Identity with `username` (the name its
    /// certificate carries, as a RADIUS server checking the CN expects).
    pub(crate) fn new(
        config: &AuthConfig,
        connector: TlsTunnel,
        username: &[u8],
        now: Instant,
    ) -> Self {
        EapTlsClient {
            outer: OuterPeer::new(Outbox::new(now + config.phase_timeout), username),
            tunnel: TlsConversation::new(connector),
        }
    }

    pub(crate) fn handle_packet(&mut self, now: Instant, info: &[u8]) -> Result<(), EapTlsError> {
        handle_outer_packet(self, now, info)
    }

    /// The Type-Data answering an EAP-TLS Request.
    fn on_tls(&mut self, data: &[u8]) -> Result<Vec<u8>, EapTlsError> {
        match self.tunnel.receive(data) {
            Ok(Received::Answer(answer)) => Ok(answer),
            Ok(Received::Records) => Ok(self.tunnel.answer()),
            Err(EapTlsError::TlsAlert) => {
                self.outer.refusal.get_or_insert_with(|| {
                    rejected("the authenticator refused the TLS handshake".into())
                });
                Ok(empty_answer())
            }
            Err(error) => {
                if matches!(error, EapTlsError::Tls | EapTlsError::TooLong) {
                    self.outer.outbox.fail(AuthFailure::ServerNotAuthenticated);
                }
                Err(error)
            }
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.outer.outbox.failed() || self.outer.outbox.succeeded() {
            return;
        }
        if self.outer.outbox.phase_expired(now) {
            let refusal = self.outer.refusal.take();
            self.outer
                .outbox
                .fail(refusal.unwrap_or(AuthFailure::Timeout));
        }
    }
}

impl TlsMethodPeer for EapTlsClient {
    const TYPE: u8 = TYPE_EAP_TLS;

    fn outer(&mut self) -> &mut OuterPeer {
        &mut self.outer
    }

    fn on_request(
        &mut self,
        _now: Instant,
        _identifier: u8,
        data: &[u8],
    ) -> Result<Option<Vec<u8>>, EapTlsError> {
        self.on_tls(data).map(Some)
    }

    fn success_msk(&self) -> Option<[u8; 64]> {
        self.tunnel.msk().filter(|_| self.outer.refusal.is_none())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::proto::auth::eap::{EapPacket, TYPE_IDENTITY, TYPE_NAK};
    use crate::proto::auth::tls_framing::testing::{self, eap_request, message};
    use crate::proto::auth::tls_framing::{EapTlsMessage, FLAG_MORE, FLAG_START, MAX_FRAGMENT_LEN};
    use crate::proto::auth::AuthEvent;
    use crate::testing::tunnel_tls::TransparentConnector;

    fn tls_request(identifier: u8, flags: u8, data: &[u8]) -> Vec<u8> {
        eap_request(identifier, TYPE_EAP_TLS, &message(flags, None, data))
    }

    fn client(hello_len: usize) -> (EapTlsClient, Arc<AtomicUsize>, Instant) {
        let fed = Arc::new(AtomicUsize::new(0));
        let now = Instant::now();
        let client = EapTlsClient::new(
            &AuthConfig::default(),
            TlsTunnel(Arc::new(TransparentConnector {
                fed: fed.clone(),
                hello_len,
            })),
            b"alice",
            now,
        );
        (client, fed, now)
    }

    fn sent(client: &mut EapTlsClient) -> Vec<Vec<u8>> {
        testing::sent(&mut client.outer.outbox)
    }

    #[test]
    fn a_full_conversation_ends_in_success_with_the_msk_as_hlak() {
        let (mut client, _, _) = client(0);
        client
            .handle_packet(Instant::now(), &eap_request(1, TYPE_IDENTITY, b""))
            .unwrap();
        assert_eq!(sent(&mut client), [b"\x02\x01\x00\x0a\x01alice".to_vec()]);
        client
            .handle_packet(Instant::now(), &tls_request(2, FLAG_START, b""))
            .unwrap();
        // The ClientHello ("hello" here) answers the Start.
        assert_eq!(
            sent(&mut client),
            [[2, 2, 0, 11, TYPE_EAP_TLS, 0, b'h', b'e', b'l', b'l', b'o']]
        );
        // The server's flight in two fragments: the first acknowledged.
        let mut first = Vec::new();
        EapTlsMessage {
            flags: FLAG_MORE,
            version: 0,
            total_len: Some(6),
            data: b"ser",
        }
        .encode(&mut first);
        client
            .handle_packet(Instant::now(), &eap_request(3, TYPE_EAP_TLS, &first))
            .unwrap();
        assert_eq!(sent(&mut client), [[2, 3, 0, 6, TYPE_EAP_TLS, 0]]);
        client
            .handle_packet(Instant::now(), &tls_request(4, 0, b"ver"))
            .unwrap();
        assert_eq!(sent(&mut client), [[2, 4, 0, 6, TYPE_EAP_TLS, 0]]);
        client
            .handle_packet(
                Instant::now(),
                &EapPacket::Success { identifier: 4 }.to_vec(),
            )
            .unwrap();
        assert_eq!(
            client.outer.outbox.poll_event(),
            Some(AuthEvent::Success {
                username: "alice".into(),
                hlak: [7; 32],
                framed_ipv4: None,
            })
        );
    }

    #[test]
    fn success_before_the_handshake_finished_is_refused() {
        let (mut client, _, _) = client(0);
        client
            .handle_packet(Instant::now(), &tls_request(1, FLAG_START, b""))
            .unwrap();
        client
            .handle_packet(
                Instant::now(),
                &EapPacket::Success { identifier: 1 }.to_vec(),
            )
            .unwrap();
        assert_eq!(
            client.outer.outbox.poll_event(),
            Some(AuthEvent::Failure(AuthFailure::ServerNotAuthenticated))
        );
    }

    #[test]
    fn the_authenticators_alert_is_acknowledged_and_failure_reports_the_refusal() {
        let (mut client, _, _) = client(0);
        client
            .handle_packet(Instant::now(), &tls_request(1, FLAG_START, b""))
            .unwrap();
        let _ = sent(&mut client);
        client
            .handle_packet(
                Instant::now(),
                &tls_request(2, 0, &[0x15, 3, 3, 0, 2, 2, 48]),
            )
            .unwrap();
        assert_eq!(sent(&mut client), [[2, 2, 0, 6, TYPE_EAP_TLS, 0]]);
        assert_eq!(client.outer.outbox.poll_event(), None);
        // A Success after the refusal is not believed.
        let (mut refused, _, _) = self::client(0);
        refused
            .handle_packet(Instant::now(), &tls_request(1, FLAG_START, b""))
            .unwrap();
        refused
            .handle_packet(Instant::now(), &tls_request(2, 0, &[0x15]))
            .unwrap();
        refused
            .handle_packet(
                Instant::now(),
                &EapPacket::Success { identifier: 2 }.to_vec(),
            )
            .unwrap();
        assert_eq!(
            refused.outer.outbox.poll_event(),
            Some(AuthEvent::Failure(AuthFailure::ServerNotAuthenticated))
        );
        client
            .handle_packet(
                Instant::now(),
                &EapPacket::Failure { identifier: 2 }.to_vec(),
            )
            .unwrap();
        assert!(matches!(
            client.outer.outbox.poll_event(),
            Some(AuthEvent::Failure(AuthFailure::Rejected { message, .. }))
                if message.contains("refused")
        ));
    }

    #[test]
    fn without_the_failure_the_refusal_is_reported_at_the_phase_timeout() {
        let (mut client, _, now) = client(0);
        client
            .handle_packet(Instant::now(), &tls_request(1, FLAG_START, b""))
            .unwrap();
        client
            .handle_packet(Instant::now(), &tls_request(2, 0, &[0x15]))
            .unwrap();
        client.handle_timeout(now + AuthConfig::default().phase_timeout);
        assert!(matches!(
            client.outer.outbox.poll_event(),
            Some(AuthEvent::Failure(AuthFailure::Rejected { .. }))
        ));
    }

    #[test]
    fn a_server_we_refuse_ends_the_method_at_once() {
        let (mut client, _, _) = client(0);
        client
            .handle_packet(Instant::now(), &tls_request(1, FLAG_START, b""))
            .unwrap();
        assert_eq!(
            client.handle_packet(Instant::now(), &tls_request(2, 0, &[0xff])),
            Err(EapTlsError::Tls)
        );
        assert_eq!(
            client.outer.outbox.poll_event(),
            Some(AuthEvent::Failure(AuthFailure::ServerNotAuthenticated))
        );
    }

    #[test]
    fn our_long_flight_goes_out_in_fragments_and_repeats_are_answered_alike() {
        let (mut client, fed, _) = client(MAX_FRAGMENT_LEN + 10);
        client
            .handle_packet(Instant::now(), &tls_request(1, FLAG_START, b""))
            .unwrap();
        let first = sent(&mut client);
        let parsed = EapTlsMessage::parse(&first[0][5..]).unwrap();
        assert!(parsed.more());
        assert_eq!(parsed.total_len, Some(MAX_FRAGMENT_LEN as u32 + 10));
        // The Start repeated: the same Response, the TLS untouched.
        client
            .handle_packet(Instant::now(), &tls_request(1, FLAG_START, b""))
            .unwrap();
        assert_eq!(sent(&mut client), first);
        client
            .handle_packet(Instant::now(), &tls_request(2, 0, b""))
            .unwrap();
        let last = sent(&mut client);
        let parsed = EapTlsMessage::parse(&last[0][5..]).unwrap();
        assert!(!parsed.more());
        assert_eq!(parsed.data.len(), 10);
        assert_eq!(fed.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn other_methods_are_naked_toward_eap_tls_and_data_before_start_is_refused() {
        let (mut client, _, _) = client(0);
        let peap = eap_request(1, 25, &[FLAG_START]);
        client.handle_packet(Instant::now(), &peap).unwrap();
        assert_eq!(
            sent(&mut client),
            [vec![2, 1, 0, 6, TYPE_NAK, TYPE_EAP_TLS]]
        );
        assert_eq!(
            client.handle_packet(Instant::now(), &tls_request(2, 0, b"x")),
            Err(EapTlsError::OutOfOrder)
        );
    }
}
