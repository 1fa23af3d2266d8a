//! The NAS side of Dynamic Authorization ([RFC 5176]): verifying a
//! Disconnect-Request or CoA-Request from a Dynamic Authorization Client
//! and building the ACK or NAK.
//!
//! The listener (socket, which clients may send, finding the session) is
//! the runtime's; this is what it calls per datagram:
//!
//! ```text
//! let request = dae::verify_request(datagram, secret, require_ma)?;  // else drop, count error.as_str()
//! dae::check_event_timestamp(&request, unix_now, window, required)?; // replay window
//! ... act on the session ...
//! let reply = dae::encode_response(Code::DisconnectAck, &request, &attrs, secret)?;
//! ```
//!
//! [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176

use std::fmt;

use super::attr::{self, Attribute, Attributes, ErrorCause};
use super::crypt::{self, VerifyError};
use super::packet::{frame, Code, DecodeError, Packet, HEADER_LEN, MAX_PACKET_LEN};

/// Why a datagram on the DAE port is dropped ([RFC 5176] 3: silently, with
/// a log line and a counter).
///
/// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DaeError {
    /// Not a RADIUS packet.
    Malformed(DecodeError),
    /// A RADIUS packet, but not a Disconnect-Request or CoA-Request.
    UnexpectedCode(Code),
    /// The Request Authenticator does not match ([RFC 5176] 2.3).
    ///
    /// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
    BadAuthenticator,
    /// No Message-Authenticator though one is required.
    MissingMessageAuthenticator,
    /// A wrong Message-Authenticator (see [`crypt`]).
    BadMessageAuthenticator,
    /// No Event-Timestamp though one is required.
    MissingEventTimestamp,
    /// An Event-Timestamp outside the replay window (the replay protection
    /// of [RFC 5176]'s security considerations).
    ///
    /// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
    StaleEventTimestamp,
}

impl DaeError {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            DaeError::Malformed(_) => "malformed",
            DaeError::UnexpectedCode(_) => "unexpected_code",
            DaeError::BadAuthenticator => "bad_authenticator",
            DaeError::MissingMessageAuthenticator => "missing_message_authenticator",
            DaeError::BadMessageAuthenticator => "bad_message_authenticator",
            DaeError::MissingEventTimestamp => "missing_event_timestamp",
            DaeError::StaleEventTimestamp => "stale_event_timestamp",
        }
    }
}

impl fmt::Display for DaeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaeError::Malformed(error) => write!(f, "malformed: {error}"),
            DaeError::UnexpectedCode(code) => write!(f, "unexpected {code}"),
            other => f.write_str(other.as_str()),
        }
    }
}

impl std::error::Error for DaeError {}

impl From<VerifyError> for DaeError {
    fn from(error: VerifyError) -> DaeError {
        match error {
            VerifyError::BadAuthenticator => DaeError::BadAuthenticator,
            VerifyError::MissingMessageAuthenticator => DaeError::MissingMessageAuthenticator,
            VerifyError::BadMessageAuthenticator => DaeError::BadMessageAuthenticator,
        }
    }
}

/// Checks a datagram received on the DAE port and decodes it: framing
/// ([RFC 2865] 3), the code (Disconnect-Request or CoA-Request only), the
/// Request Authenticator ([RFC 5176] 2.3), and the Message-Authenticator
/// when present, or its absence when `require_message_authenticator`
/// (computed over a zero authenticator, see [`crypt`]). Never panics,
/// whatever the input.
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
/// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
pub fn verify_request(
    datagram: &[u8],
    secret: &[u8],
    require_message_authenticator: bool,
) -> Result<Packet, DaeError> {
    let packet = frame(datagram).map_err(DaeError::Malformed)?;
    let code = Code::from(packet[0]);
    if !matches!(code, Code::DisconnectRequest | Code::CoaRequest) {
        return Err(DaeError::UnexpectedCode(code));
    }
    crypt::verify_request(packet, secret, require_message_authenticator)?;
    Packet::decode(packet).map_err(DaeError::Malformed)
}

/// Checks the request's Event-Timestamp against the receiver's clock
/// (`now_unix`, seconds since 1970): within `window` seconds either way
/// (RFC 5176's replay protection suggests 300 s); a request without one
/// passes unless `required`.
pub fn check_event_timestamp(
    request: &Packet,
    now_unix: u64,
    window: u64,
    required: bool,
) -> Result<(), DaeError> {
    match request.attributes.u32(attr::EVENT_TIMESTAMP) {
        None if required => Err(DaeError::MissingEventTimestamp),
        None => Ok(()),
        Some(stamp) if now_unix.abs_diff(u64::from(stamp)) <= window => Ok(()),
        Some(_) => Err(DaeError::StaleEventTimestamp),
    }
}

/// Why a response cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseError {
    /// `code` is not an ACK or NAK of the request's kind.
    CodeMismatch {
        /// The request's code.
        request: Code,
        /// The code asked for.
        response: Code,
    },
    /// The attributes make the packet longer than 4096 octets.
    TooLong(usize),
}

impl ResponseError {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            ResponseError::CodeMismatch { .. } => "code_mismatch",
            ResponseError::TooLong(_) => "too_long",
        }
    }
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::CodeMismatch { request, response } => {
                write!(f, "{response} does not answer {request}")
            }
            ResponseError::TooLong(len) => write!(f, "{len}-octet response over 4096"),
        }
    }
}

impl std::error::Error for ResponseError {}

/// Builds the response to a verified request ([RFC 5176] 2.3):
/// `code` is Disconnect-ACK/NAK for a Disconnect-Request, CoA-ACK/NAK for
/// a CoA-Request; the identifier is the request's; a Message-Authenticator
/// comes first, then `attributes` (any Message-Authenticator among them
/// is left out), then the request's Proxy-State attributes in order
/// ([RFC 2865] 5.33); the Message-Authenticator and the Response
/// Authenticator are computed over the request's authenticator.
///
/// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
pub fn encode_response(
    code: Code,
    request: &Packet,
    attributes: &Attributes,
    secret: &[u8],
) -> Result<Vec<u8>, ResponseError> {
    let allowed = match request.code {
        Code::DisconnectRequest => [Code::DisconnectAck, Code::DisconnectNak],
        Code::CoaRequest => [Code::CoaAck, Code::CoaNak],
        _ => [Code::Other(0); 2],
    };
    if !allowed.contains(&code) || code == Code::Other(0) {
        return Err(ResponseError::CodeMismatch {
            request: request.code,
            response: code,
        });
    }
    let mut response = Packet {
        code,
        identifier: request.identifier,
        authenticator: [0; 16],
        attributes: Attributes::new(),
    };
    let placeholder =
        Attribute::new(attr::MESSAGE_AUTHENTICATOR, [0u8; 16]).expect("16 octets fit an attribute");
    response.attributes.push_attribute(placeholder);
    for attribute in attributes {
        if attribute.kind() != attr::MESSAGE_AUTHENTICATOR {
            response.attributes.push_attribute(attribute.clone());
        }
    }
    for attribute in &request.attributes {
        if attribute.kind() == attr::PROXY_STATE {
            response.attributes.push_attribute(attribute.clone());
        }
    }
    let mut bytes = response
        .encode()
        .map_err(|_| ResponseError::TooLong(HEADER_LEN + response.attributes.encoded_len()))?;
    debug_assert!(bytes.len() <= MAX_PACKET_LEN);
    crypt::sign_response(&mut bytes, &request.authenticator, secret);
    Ok(bytes)
}

/// The ACK for a verified request (Disconnect-ACK or CoA-ACK), no
/// attributes but the Message-Authenticator and Proxy-State.
pub fn ack(request: &Packet, secret: &[u8]) -> Result<Vec<u8>, ResponseError> {
    let code = match request.code {
        Code::CoaRequest => Code::CoaAck,
        _ => Code::DisconnectAck,
    };
    encode_response(code, request, &Attributes::new(), secret)
}

/// The NAK for a verified request (Disconnect-NAK or CoA-NAK) with its
/// Error-Cause ([RFC 5176] 3.5).
///
/// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
pub fn nak(request: &Packet, cause: ErrorCause, secret: &[u8]) -> Result<Vec<u8>, ResponseError> {
    let code = match request.code {
        Code::CoaRequest => Code::CoaNak,
        _ => Code::DisconnectNak,
    };
    let mut attributes = Attributes::new();
    attributes.push_u32(attr::ERROR_CAUSE, cause.value());
    encode_response(code, request, &attributes, secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::crypt::verify_response;

    fn disconnect_request(code: Code, with_ma: bool, secret: &[u8]) -> Vec<u8> {
        let mut attributes = Attributes::new();
        if with_ma {
            attributes
                .push(attr::MESSAGE_AUTHENTICATOR, &[0; 16])
                .unwrap();
        }
        attributes
            .push_string(attr::ACCT_SESSION_ID, "s-1")
            .unwrap();
        attributes.push(attr::PROXY_STATE, &[1, 2]).unwrap();
        attributes.push_u32(attr::EVENT_TIMESTAMP, 1_700_000_000);
        attributes.push(attr::PROXY_STATE, &[3]).unwrap();
        let mut bytes = Packet {
            code,
            identifier: 77,
            authenticator: [0; 16],
            attributes,
        }
        .encode()
        .unwrap();
        crypt::sign_request(&mut bytes, secret);
        bytes
    }

    #[test]
    fn verifies_disconnect_and_coa_requests() {
        for code in [Code::DisconnectRequest, Code::CoaRequest] {
            let bytes = disconnect_request(code, true, b"dae");
            let request = verify_request(&bytes, b"dae", true).unwrap();
            assert_eq!(request.code, code);
            assert_eq!(
                request.attributes.string(attr::ACCT_SESSION_ID),
                Some("s-1")
            );
            assert_eq!(
                verify_request(&bytes, b"other", false),
                Err(DaeError::BadAuthenticator)
            );
            let bare = disconnect_request(code, false, b"dae");
            assert!(verify_request(&bare, b"dae", false).is_ok());
            assert_eq!(
                verify_request(&bare, b"dae", true),
                Err(DaeError::MissingMessageAuthenticator)
            );
        }
    }

    #[test]
    fn drops_what_is_not_a_dae_request() {
        let bytes = disconnect_request(Code::AccountingRequest, true, b"dae");
        assert_eq!(
            verify_request(&bytes, b"dae", true),
            Err(DaeError::UnexpectedCode(Code::AccountingRequest))
        );
        assert_eq!(
            verify_request(&bytes[..10], b"dae", true),
            Err(DaeError::Malformed(DecodeError::TooShort))
        );
        assert_eq!(
            verify_request(&bytes[..10], b"dae", true)
                .unwrap_err()
                .as_str(),
            "malformed"
        );
    }

    #[test]
    fn acks_and_naks_are_signed_over_the_request() {
        let bytes = disconnect_request(Code::DisconnectRequest, true, b"dae");
        let request = verify_request(&bytes, b"dae", true).unwrap();

        let ack = ack(&request, b"dae").unwrap();
        let decoded = Packet::decode(&ack).unwrap();
        assert_eq!(decoded.code, Code::DisconnectAck);
        assert_eq!(decoded.identifier, 77);
        assert_eq!(
            verify_response(&ack, &request.authenticator, b"dae", true),
            Ok(())
        );
        let proxy: Vec<&[u8]> = decoded.attributes.get_all(attr::PROXY_STATE).collect();
        assert_eq!(proxy, [&[1u8, 2][..], &[3][..]]);
        assert_eq!(
            decoded.attributes.iter().next().unwrap().kind(),
            attr::MESSAGE_AUTHENTICATOR
        );

        let nak = nak(&request, ErrorCause::SessionContextNotFound, b"dae").unwrap();
        let decoded = Packet::decode(&nak).unwrap();
        assert_eq!(decoded.code, Code::DisconnectNak);
        assert_eq!(decoded.attributes.u32(attr::ERROR_CAUSE), Some(503));
        assert_eq!(
            verify_response(&nak, &request.authenticator, b"dae", true),
            Ok(())
        );

        let coa = verify_request(
            &disconnect_request(Code::CoaRequest, true, b"dae"),
            b"dae",
            true,
        )
        .unwrap();
        assert_eq!(
            Packet::decode(&super::ack(&coa, b"dae").unwrap())
                .unwrap()
                .code,
            Code::CoaAck
        );
        assert_eq!(
            encode_response(Code::CoaAck, &request, &Attributes::new(), b"dae"),
            Err(ResponseError::CodeMismatch {
                request: Code::DisconnectRequest,
                response: Code::CoaAck
            })
        );
        assert_eq!(
            encode_response(Code::AccessAccept, &request, &Attributes::new(), b"dae")
                .unwrap_err()
                .as_str(),
            "code_mismatch"
        );
        let mut huge = Attributes::new();
        for _ in 0..17 {
            huge.push(attr::REPLY_MESSAGE, &[b'x'; 253]).unwrap();
        }
        assert!(matches!(
            encode_response(Code::DisconnectNak, &request, &huge, b"dae"),
            Err(ResponseError::TooLong(_))
        ));
    }

    #[test]
    fn event_timestamp_window() {
        let bytes = disconnect_request(Code::DisconnectRequest, true, b"dae");
        let request = verify_request(&bytes, b"dae", true).unwrap();
        assert_eq!(
            check_event_timestamp(&request, 1_700_000_100, 300, true),
            Ok(())
        );
        assert_eq!(
            check_event_timestamp(&request, 1_699_999_800, 300, true),
            Ok(())
        );
        assert_eq!(
            check_event_timestamp(&request, 1_700_000_301, 300, true),
            Err(DaeError::StaleEventTimestamp)
        );
        let mut without = request.clone();
        without.attributes.remove(attr::EVENT_TIMESTAMP);
        assert_eq!(check_event_timestamp(&without, 0, 300, false), Ok(()));
        assert_eq!(
            check_event_timestamp(&without, 0, 300, true),
            Err(DaeError::MissingEventTimestamp)
        );
    }
}
