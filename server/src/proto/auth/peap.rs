//! The peer's side of PEAPv0 with EAP-MSCHAPv2 inside ([MS-PEAP]): what a
//! Windows client runs against a RADIUS server that terminates PEAP, with
//! sstpd relaying the EAP in between (`radius.eap_pass_through`).
//!
//! ```text
//! Request/Identity                      → Response/Identity (outer identity)
//! Request/PEAP Start (S)                → Response/PEAP ClientHello
//! Request/PEAP ServerHello… (L, M)      → Response/PEAP (empty: fragment ack) …
//! Request/PEAP ServerHelloDone          → Response/PEAP ClientKeyExchange, Finished
//! Request/PEAP ChangeCipherSpec, Finished → Response/PEAP (empty)
//! Request/PEAP {Identity}               → Response/PEAP {Identity}
//! Request/PEAP {MSCHAPv2 Challenge}     → Response/PEAP {MSCHAPv2 Response}
//! Request/PEAP {MSCHAPv2 Success}       → Response/PEAP {MSCHAPv2 Success}
//! Request/PEAP {Extensions: Result TLV} → Response/PEAP {Extensions: Result TLV}
//! EAP-Success (the MSK is the TLS exporter's)
//! ```
//!
//! (`{…}` is inside the TLS tunnel.) Behaviour worth knowing:
//!
//! * Framing ([MS-PEAP] 2.2.1): the EAP-TLS family's, with PEAP's
//!   version bits ([`super::tls_framing`]: fragments, the bounded
//!   reassembly, the TLS behind [`super::tls_framing::TunnelTls`]).
//! * Phase 2 in PEAPv0 ([MS-PEAP] 3.1.5.6): the inner EAP packets travel
//!   without their Code, Identifier and Length, except Extensions (Type
//!   33), which travel whole. The inner packets are handed to the
//!   EAP-MSCHAPv2 peer of [`super::eap`] with a header rebuilt from the
//!   outer Identifier, so the inner method is that module's, unchanged.
//! * The Result TLV ([MS-PEAP] 2.2.8.1) is answered with success only when
//!   the authenticator both announced success and proved, through
//!   MS-CHAPv2's AuthenticatorResponse, that it knows the password; the
//!   outer EAP-Success is accepted only after that answer ([RFC 3748] 7.2).
//!   A Crypto-Binding TLV with it (Windows NPS sends one; FreeRADIUS does
//!   not) is checked and answered (`peap_binding`), and the keys
//!   are then the binding's Compound Session Key's; one that does not
//!   verify is answered with failure. Other TLVs (SoH) are not answered.
//! * Keys ([MS-PEAP] 3.1.5.7 for PEAPv0 as FreeRADIUS and Windows run it):
//!   the MSK is the TLS PRF of the master secret with the label
//!   `client EAP encryption` over the two randoms, 64 octets: RFC 5705's
//!   exporter with no context on TLS 1.2. The RADIUS server returns it as
//!   MS-MPPE-Recv-Key (MSK 0..32) and MS-MPPE-Send-Key (32..64), so the
//!   HLAK is its first 32 octets at both ends ([MS-SSTP] 3.2.5.2.2).
//! * The runtime's `tls::eap` implements the TLS with a rustls
//!   client capped at TLS 1.2 that verifies the server's certificate
//!   against the CA it is given.
//! * Retransmissions: a Request repeated with the same Identifier gets the
//!   same Response again, without touching the TLS state.
//!
//! [MS-PEAP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-peap/
//! [MS-SSTP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-sstp/
//! [RFC 3748]: https://www.rfc-editor.org/rfc/rfc3748
//! [RFC 5216]: https://www.rfc-editor.org/rfc/rfc5216

use std::fmt;
use std::time::Instant;

use rand::RngCore;

use super::eap::{EapClient, EapPacket, CODE_REQUEST, CODE_RESPONSE};
use super::machine::{AuthConfig, AuthEvent, AuthFailure};
use super::outbox::Outbox;
use super::peap_binding::{BindingKeys, CRYPTO_BINDING_LEN, CRYPTO_BINDING_TLV};
use super::tls_framing::{
    handle_outer_packet, rejected, EapTlsError, OuterPeer, Received, TlsConversation,
    TlsMethodPeer, TlsTunnel,
};

/// PEAP's EAP Type (IANA EAP method type 25).
pub const TYPE_PEAP: u8 = 25;
/// The Extensions Type that PEAPv0 phase 2 carries whole ([MS-PEAP] 2.2.5).
///
/// [MS-PEAP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-peap/
pub const TYPE_EXTENSIONS: u8 = 33;

/// The Result TLV's Type with the Mandatory bit ([MS-PEAP] 2.2.8.1).
const RESULT_TLV: u16 = 0x8003;
/// Its Status values.
const RESULT_SUCCESS: u16 = 1;
const RESULT_FAILURE: u16 = 2;

/// What the tunnel's Result exchange settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TunnelResult {
    Pending,
    /// We answered the Result TLV with success: EAP-Success may follow.
    Succeeded,
    /// We answered with failure (the authenticator's, or ours).
    Failed,
}

/// The peer's side of EAP with PEAPv0 and EAP-MSCHAPv2 inside.
pub(crate) struct PeapClient {
    /// The outer conversation; its refusal is the tunnel's (the inner
    /// method's, or the Result TLV's).
    pub(super) outer: OuterPeer,
    /// The inner method; its Success and Failure Requests arrive through
    /// the tunnel.
    inner: EapClient,
    tunnel: TlsConversation,
    result: TunnelResult,
    /// The MSK from the Crypto-Binding exchange, when there was one.
    binding_msk: Option<[u8; 64]>,
}

impl fmt::Debug for PeapClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeapClient")
            .field("username", &String::from_utf8_lossy(&self.outer.username))
            .field("tunnel", &self.tunnel.started())
            .field("result", &self.result)
            .field("outbox", &self.outer.outbox)
            .finish_non_exhaustive()
    }
}

impl PeapClient {
    pub(crate) fn new(
        config: &AuthConfig,
        connector: TlsTunnel,
        username: &[u8],
        password: &[u8],
        now: Instant,
        rng: &mut dyn RngCore,
    ) -> Self {
        let outer = OuterPeer::new(Outbox::new(now + config.phase_timeout), username);
        PeapClient {
            inner: EapClient::new(config, &outer.username, password, now, rng),
            outer,
            tunnel: TlsConversation::new(connector),
            result: TunnelResult::Pending,
            binding_msk: None,
        }
    }

    pub(crate) fn handle_packet(&mut self, now: Instant, info: &[u8]) -> Result<(), EapTlsError> {
        handle_outer_packet(self, now, info)
    }

    /// The Type-Data answering a PEAP Request; `None` when nothing is sent.
    fn on_peap(
        &mut self,
        now: Instant,
        identifier: u8,
        data: &[u8],
    ) -> Result<Option<Vec<u8>>, EapTlsError> {
        if let Received::Answer(answer) = self.tunnel.receive(data)? {
            return Ok(Some(answer));
        }
        let mut plaintext = Vec::new();
        self.tunnel.read_plaintext(&mut plaintext);
        if !plaintext.is_empty() {
            self.on_inner(now, identifier, &plaintext)?;
        }
        if !self.tunnel.flush() && self.outer.outbox.failed() {
            return Ok(None);
        }
        Ok(Some(self.tunnel.answer()))
    }

    /// One phase 2 packet from the tunnel.
    fn on_inner(
        &mut self,
        now: Instant,
        identifier: u8,
        plaintext: &[u8],
    ) -> Result<(), EapTlsError> {
        let extensions =
            plaintext.len() >= 5 && plaintext[0] == CODE_REQUEST && plaintext[4] == TYPE_EXTENSIONS;
        if extensions {
            return self.on_extensions(plaintext);
        }
        // A compressed Request ([MS-PEAP] 3.1.5.6): the header is rebuilt
        // with the outer Identifier for the inner method.
        let (&kind, data) = plaintext.split_first().ok_or(EapTlsError::BadInner)?;
        let request = EapPacket::Request {
            identifier,
            kind,
            data,
        }
        .to_vec();
        self.inner
            .handle_packet(now, &request)
            .map_err(|_| EapTlsError::BadInner)?;
        let mut response = Vec::new();
        while self.inner.outbox.poll_transmit(&mut response) {
            if response.first() == Some(&CODE_RESPONSE) && response.len() > 4 {
                self.tunnel.write_plaintext(&response[4..]);
            }
            response.clear();
        }
        while let Some(event) = self.inner.outbox.poll_event() {
            if let AuthEvent::Failure(failure) = event {
                // The Result TLV and the EAP-Failure follow; the verdict
                // waits for them, so the authenticator sees its refusal
                // through.
                self.result = TunnelResult::Failed;
                self.outer.refusal.get_or_insert(failure);
            }
        }
        Ok(())
    }

    /// An Extensions Request: the Result TLV answered ([MS-PEAP] 3.1.5.7).
    fn on_extensions(&mut self, plaintext: &[u8]) -> Result<(), EapTlsError> {
        let Ok(EapPacket::Request {
            identifier, data, ..
        }) = EapPacket::parse(plaintext)
        else {
            return Err(EapTlsError::BadInner);
        };
        let status = result_tlv(data).ok_or(EapTlsError::BadInner)?;
        let tunnel_key = self.tunnel.msk().filter(|_| self.inner.server_proven());
        let mut success = status == RESULT_SUCCESS && tunnel_key.is_some();
        // NPS's Crypto-Binding TLV: answered when it verifies, and then
        // the keys are the binding's ([MS-PEAP] 3.2.5.3, 3.1.5.7).
        let mut binding = None;
        if let (Some(request), Some(tunnel_key), true) =
            (find_tlv(data, CRYPTO_BINDING_TLV), tunnel_key, success)
        {
            let keys = BindingKeys::derive(&tunnel_key, self.inner.keys.as_ref());
            binding = keys.answer(request);
            success = binding.is_some();
            self.binding_msk = binding.map(|_| keys.session_msk());
        }
        let status = if success {
            RESULT_SUCCESS
        } else {
            RESULT_FAILURE
        };
        let mut tlv = Vec::with_capacity(6 + 4 + CRYPTO_BINDING_LEN);
        tlv.extend_from_slice(&RESULT_TLV.to_be_bytes());
        tlv.extend_from_slice(&2u16.to_be_bytes());
        tlv.extend_from_slice(&status.to_be_bytes());
        if let Some(answer) = binding {
            tlv.extend_from_slice(&answer);
        }
        let response = EapPacket::Response {
            identifier,
            kind: TYPE_EXTENSIONS,
            data: &tlv,
        }
        .to_vec();
        self.tunnel.write_plaintext(&response);
        if success {
            self.result = TunnelResult::Succeeded;
        } else if status_was_failure(data) {
            self.result = TunnelResult::Failed;
            self.outer
                .refusal
                .get_or_insert_with(|| rejected("the authenticator reported failure".into()));
        } else {
            // Success claimed without the inner method's proof.
            self.result = TunnelResult::Failed;
            self.outer.outbox.fail(AuthFailure::ServerNotAuthenticated);
        }
        Ok(())
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

impl TlsMethodPeer for PeapClient {
    const TYPE: u8 = TYPE_PEAP;

    fn outer(&mut self) -> &mut OuterPeer {
        &mut self.outer
    }

    fn on_request(
        &mut self,
        now: Instant,
        identifier: u8,
        data: &[u8],
    ) -> Result<Option<Vec<u8>>, EapTlsError> {
        self.on_peap(now, identifier, data)
            .inspect_err(|error| match error {
                EapTlsError::Tls | EapTlsError::TooLong => {
                    self.outer.outbox.fail(AuthFailure::ServerNotAuthenticated);
                }
                EapTlsError::TlsAlert => self
                    .outer
                    .outbox
                    .fail(rejected("the authenticator refused the tunnel".into())),
                _ => {}
            })
    }

    fn success_msk(&self) -> Option<[u8; 64]> {
        // Only after the tunnel's method proved the authenticator.
        self.binding_msk
            .or(self.tunnel.msk())
            .filter(|_| self.result == TunnelResult::Succeeded)
    }
}

fn status_was_failure(tlvs: &[u8]) -> bool {
    result_tlv(tlvs) == Some(RESULT_FAILURE)
}

/// The Status of the Result TLV among `tlvs` ([MS-PEAP] 2.2.8.1), the
/// Mandatory bit ignored.
fn result_tlv(tlvs: &[u8]) -> Option<u16> {
    let status: [u8; 2] = find_tlv(tlvs, RESULT_TLV)?.try_into().ok()?;
    Some(u16::from_be_bytes(status))
}

/// The Value of the first TLV of `kind` among `tlvs`, the Mandatory and
/// Reserved bits ignored; `None` when absent or when the TLVs before it
/// overrun.
fn find_tlv(mut tlvs: &[u8], kind: u16) -> Option<&[u8]> {
    while let [t0, t1, l0, l1, rest @ ..] = tlvs {
        let found = u16::from_be_bytes([*t0, *t1]) & 0x3fff;
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let (value, next) = rest.split_at_checked(len)?;
        if found == kind & 0x3fff {
            return Some(value);
        }
        tlvs = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::auth::eap::{TYPE_IDENTITY, TYPE_NAK};
    use crate::proto::auth::tls_framing::testing::{self, eap_request, message};
    use crate::proto::auth::tls_framing::{EapTlsMessage, FLAG_START, MAX_FRAGMENT_LEN};
    use crate::testing::tunnel_tls::TransparentConnector;
    use std::sync::Arc;

    fn peap_request(identifier: u8, flags: u8, data: &[u8]) -> Vec<u8> {
        eap_request(identifier, TYPE_PEAP, &message(flags, None, data))
    }

    fn client() -> (PeapClient, Arc<std::sync::atomic::AtomicUsize>, Instant) {
        client_with_hello(0)
    }

    fn client_with_hello(
        hello_len: usize,
    ) -> (PeapClient, Arc<std::sync::atomic::AtomicUsize>, Instant) {
        let fed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let now = Instant::now();
        let mut rng = super::super::seeded_rng(1);
        let client = PeapClient::new(
            &AuthConfig::default(),
            TlsTunnel(Arc::new(TransparentConnector {
                fed: fed.clone(),
                hello_len,
            })),
            b"alice",
            b"pw",
            now,
            &mut rng,
        );
        (client, fed, now)
    }

    /// A client past the Start, its ClientHello sent.
    fn started() -> (PeapClient, Arc<std::sync::atomic::AtomicUsize>, Instant) {
        let (mut client, fed, now) = client();
        client
            .handle_packet(now, &peap_request(1, FLAG_START, b""))
            .unwrap();
        let _ = sent(&mut client);
        (client, fed, now)
    }

    fn assert_not_authenticated(client: &mut PeapClient) {
        assert_eq!(
            client.outer.outbox.poll_event(),
            Some(AuthEvent::Failure(AuthFailure::ServerNotAuthenticated))
        );
    }

    fn sent(client: &mut PeapClient) -> Vec<Vec<u8>> {
        testing::sent(&mut client.outer.outbox)
    }

    #[test]
    fn a_long_message_goes_out_in_fragments_each_after_an_ack() {
        let (mut client, _, now) = client_with_hello(2 * MAX_FRAGMENT_LEN + 5);
        client
            .handle_packet(now, &peap_request(1, FLAG_START, b""))
            .unwrap();
        let first = sent(&mut client);
        let parsed = EapTlsMessage::parse(&first[0][5..]).unwrap();
        assert!(parsed.more());
        assert_eq!(parsed.total_len, Some(2 * MAX_FRAGMENT_LEN as u32 + 5));
        assert_eq!(parsed.data.len(), MAX_FRAGMENT_LEN);
        // Data where an ack belongs is refused.
        assert_eq!(
            client.handle_packet(now, &peap_request(2, 0, b"x")),
            Err(EapTlsError::BadFragment)
        );
        client.handle_packet(now, &peap_request(3, 0, b"")).unwrap();
        let second = sent(&mut client);
        let parsed = EapTlsMessage::parse(&second[0][5..]).unwrap();
        assert!(parsed.more() && parsed.total_len.is_none());
        client.handle_packet(now, &peap_request(4, 0, b"")).unwrap();
        let last = sent(&mut client);
        let parsed = EapTlsMessage::parse(&last[0][5..]).unwrap();
        assert!(!parsed.more());
        assert_eq!(parsed.data.len(), 5);
    }

    #[test]
    fn identity_is_answered_and_another_method_is_naked_toward_peap() {
        let (mut client, _, now) = client();
        let identity = eap_request(1, TYPE_IDENTITY, b"");
        client.handle_packet(now, &identity).unwrap();
        assert_eq!(sent(&mut client), [b"\x02\x01\x00\x0a\x01alice".to_vec()]);
        let mschapv2 = eap_request(2, super::super::eap::TYPE_MSCHAPV2, &[1]);
        client.handle_packet(now, &mschapv2).unwrap();
        assert_eq!(sent(&mut client), [vec![2, 2, 0, 6, TYPE_NAK, TYPE_PEAP]]);
        // PEAP data before the Start is out of order.
        assert_eq!(
            client.handle_packet(now, &peap_request(3, 0, b"x")),
            Err(EapTlsError::OutOfOrder)
        );
    }

    #[test]
    fn success_before_the_inner_proof_is_refused() {
        let (mut client, _, now) = client();
        client
            .handle_packet(now, &peap_request(1, FLAG_START, b""))
            .unwrap();
        // The ClientHello ("hello" here) answers the Start.
        assert_eq!(
            sent(&mut client),
            [[2, 1, 0, 11, TYPE_PEAP, 0, b'h', b'e', b'l', b'l', b'o']]
        );
        client
            .handle_packet(now, &EapPacket::Success { identifier: 1 }.to_vec())
            .unwrap();
        assert_not_authenticated(&mut client);
    }

    #[test]
    fn a_result_tlv_claiming_success_without_the_proof_is_answered_with_failure() {
        let result = [0x80, 0x03, 0, 2, 0, 1];
        // Alone, and with a Crypto-Binding TLV as NPS sends it.
        let mut with_binding = result.to_vec();
        with_binding.extend_from_slice(&[0, 12, 0, 56]);
        with_binding.extend_from_slice(&[0; CRYPTO_BINDING_LEN]);
        for tlvs in [&result[..], &with_binding] {
            let (mut client, _, now) = started();
            let extensions = eap_request(9, TYPE_EXTENSIONS, tlvs);
            client
                .handle_packet(now, &peap_request(2, 0, &extensions))
                .unwrap();
            let answer = sent(&mut client);
            // The inner Response: Extensions with the Result TLV's
            // failure, and no Crypto-Binding TLV.
            assert_eq!(
                answer[0][6..],
                [2, 9, 0, 11, TYPE_EXTENSIONS, 0x80, 0x03, 0, 2, 0, 2]
            );
            assert_not_authenticated(&mut client);
        }
    }

    #[test]
    fn a_crypto_binding_after_the_inner_proof_is_answered_and_gives_the_keys() {
        use crate::proto::auth::eap::{MsChapV2Data, TYPE_MSCHAPV2};
        use crate::proto::auth::mschapv2;
        let (mut client, _, now) = started();
        // Phase 2: the inner Challenge, compressed.
        let challenge = [5u8; 16];
        let mut inner = vec![TYPE_MSCHAPV2];
        inner.extend(
            MsChapV2Data::Challenge {
                ms_id: 1,
                challenge,
                name: b"srv",
            }
            .to_vec(),
        );
        client
            .handle_packet(now, &peap_request(2, 0, &inner))
            .unwrap();
        let answer = sent(&mut client);
        let Ok(MsChapV2Data::Response { value, .. }) = MsChapV2Data::parse(&answer[0][7..], false)
        else {
            panic!("no MS-CHAPv2 Response");
        };
        // The authenticator proves it knows the password.
        let proof = mschapv2::generate_authenticator_response(
            &mschapv2::nt_password_hash(b"pw"),
            &value.nt_response,
            &value.peer_challenge,
            &challenge,
            b"alice",
        );
        let message = mschapv2::success_message(&proof, b"ok");
        let mut inner = vec![TYPE_MSCHAPV2];
        inner.extend(
            MsChapV2Data::SuccessRequest {
                ms_id: 1,
                message: &message,
            }
            .to_vec(),
        );
        client
            .handle_packet(now, &peap_request(3, 0, &inner))
            .unwrap();
        let _ = sent(&mut client);
        // Result success with NPS's Crypto-Binding TLV, MAC'd with the
        // keys both ends hold.
        let keys = BindingKeys::derive(&[7; 64], client.inner.keys.as_ref());
        let mut binding = [0u8; 4 + CRYPTO_BINDING_LEN];
        binding[..4].copy_from_slice(&[0, 12, 0, 56]);
        binding[8..40].copy_from_slice(&[9; 32]);
        let mac = keys.compound_mac(&binding);
        binding[40..].copy_from_slice(&mac);
        let mut tlvs = vec![0x80, 0x03, 0, 2, 0, 1];
        tlvs.extend_from_slice(&binding);
        let extensions = eap_request(10, TYPE_EXTENSIONS, &tlvs);
        client
            .handle_packet(now, &peap_request(4, 0, &extensions))
            .unwrap();
        let answer = sent(&mut client);
        // Our Result success and our Crypto-Binding Response.
        let tlvs = &answer[0][6 + 5..];
        assert_eq!(tlvs[..6], [0x80, 0x03, 0, 2, 0, 1]);
        assert_eq!(tlvs[6..10], [0, 12, 0, 56]);
        assert_eq!(tlvs[13], 1, "SubType Response");
        assert_eq!(tlvs[14..46], [9; 32]);
        let response: [u8; 4 + CRYPTO_BINDING_LEN] = tlvs[6..].try_into().unwrap();
        assert_eq!(tlvs[46..], keys.compound_mac(&response));
        // The HLAK is the Compound Session Key's, not the tunnel's.
        client
            .handle_packet(now, &EapPacket::Success { identifier: 4 }.to_vec())
            .unwrap();
        let session_msk = keys.session_msk();
        assert_eq!(
            client.outer.outbox.poll_event(),
            Some(AuthEvent::Success {
                username: "alice".into(),
                hlak: session_msk[..32].try_into().unwrap(),
                framed_ipv4: None,
            })
        );
    }

    #[test]
    fn a_repeated_request_gets_the_same_response_without_touching_the_tunnel() {
        let (mut client, fed, now) = started();
        // A compressed inner Identity Request.
        let identity = peap_request(2, 0, &[TYPE_IDENTITY]);
        client.handle_packet(now, &identity).unwrap();
        let first = sent(&mut client);
        assert_eq!(first[0][6..], [TYPE_IDENTITY, b'a', b'l', b'i', b'c', b'e']);
        client.handle_packet(now, &identity).unwrap();
        assert_eq!(sent(&mut client), first);
        assert_eq!(fed.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn the_result_tlv_is_found_among_others() {
        let tlvs = [
            0x00, 0x07, 0x00, 0x01, 0xaa, 0x80, 0x03, 0x00, 0x02, 0x00, 0x01,
        ];
        assert_eq!(result_tlv(&tlvs), Some(RESULT_SUCCESS));
        assert_eq!(result_tlv(&tlvs[..9]), None);
        assert_eq!(result_tlv(&[0x80, 0x03, 0x00, 0x03, 0, 2, 0]), None);
        assert_eq!(result_tlv(&[]), None);
    }
}
