//! What a verified Disconnect-Request or CoA-Request asks ([RFC 5176] 3),
//! or the Error-Cause (RFC 5176 3.5) that refuses it.
//!
//! The attributes a request may carry, and what sstpd does with them:
//!
//! | attribute | Disconnect | CoA |
//! |---|---|---|
//! | Acct-Session-Id, User-Name, Framed-IP-Address, Calling-Station-Id | select sessions | select sessions |
//! | NAS-Identifier, NAS-IP-Address, NAS-IPv6-Address | must name this server (else 403) | same |
//! | Session-Timeout, Idle-Timeout | 401 | the change |
//! | Service-Type | 405 for Authorize-Only, 401 otherwise | same |
//! | Message-Authenticator, Event-Timestamp, Proxy-State | checked by the codec / echoed | same |
//! | anything else | 401 Unsupported Attribute | same |
//!
//! Refusals are decided in this order: a malformed request (an attribute
//! given twice: 404; a value of the wrong size or not UTF-8: 407), then
//! what sstpd does not support (401, 405), then a request for another NAS
//! (403), then one that names no session (402 Missing Attribute). A
//! request that passes selects sessions with every identification
//! attribute it carries.
//!
//! [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::registry::Selector;
use super::{PolicyChange, TimeoutChange};
use crate::radius::attr::{self, ErrorCause};
use crate::radius::packet::{Code, Packet};

/// Service-Type Authorize-Only ([RFC 5176] 3.1): a CoA that asks the NAS
/// to re-authorize with an Access-Request; sstpd does not.
///
/// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
const SERVICE_TYPE_AUTHORIZE_ONLY: u32 = 17;

/// Which request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Disconnect-Request: end the sessions.
    Disconnect,
    /// CoA-Request: change their timers.
    Coa,
}

impl Kind {
    /// The request's kind; `None` for any other code.
    pub fn of(code: Code) -> Option<Kind> {
        match code {
            Code::DisconnectRequest => Some(Kind::Disconnect),
            Code::CoaRequest => Some(Kind::Coa),
            _ => None,
        }
    }

    /// Short snake_case name for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Disconnect => "disconnect",
            Kind::Coa => "coa",
        }
    }
}

/// What a request asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaeRequest {
    pub kind: Kind,
    /// The sessions it names (never empty).
    pub selector: Selector,
    /// For a CoA-Request, the timers to change (empty for a Disconnect).
    pub change: PolicyChange,
}

/// How this server names itself to RADIUS: a request's NAS identification
/// attributes must agree ([RFC 5176] 3).
///
/// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NasIdentity {
    /// `radius.nas_identifier`.
    pub identifier: String,
    /// `radius.nas_ip_address`, if set.
    pub ipv4: Option<Ipv4Addr>,
}

impl NasIdentity {
    /// Whether NAS-IP-Address `ip` names this server: the configured
    /// address, or the one the request arrived at.
    fn is_ipv4(&self, ip: Ipv4Addr, local: IpAddr) -> bool {
        self.ipv4 == Some(ip) || local.to_canonical() == IpAddr::V4(ip)
    }

    /// Whether NAS-IPv6-Address `ip` names this server: the address the
    /// request arrived at.
    fn is_ipv6(&self, ip: Ipv6Addr, local: IpAddr) -> bool {
        local == IpAddr::V6(ip)
    }
}

/// What the attributes were found to say, before deciding.
#[derive(Default)]
struct Findings {
    repeated: bool,
    invalid: bool,
    unsupported: bool,
    authorize_only: bool,
    other_nas: bool,
}

/// Reads a verified request (`packet`, a Disconnect-Request or
/// CoA-Request that arrived at `local`): what it asks, or the Error-Cause
/// of its NAK.
pub fn parse(packet: &Packet, nas: &NasIdentity, local: IpAddr) -> Result<DaeRequest, ErrorCause> {
    let Some(kind) = Kind::of(packet.code) else {
        return Err(ErrorCause::InvalidRequest);
    };
    let mut found = Findings::default();
    let mut selector = Selector::default();
    let mut change = PolicyChange::default();
    let mut seen = [false; 256];
    for attribute in &packet.attributes {
        let (kind_byte, value) = (attribute.kind(), attribute.value());
        let first = !std::mem::replace(&mut seen[usize::from(kind_byte)], true);
        match kind_byte {
            // The codec checked these; Proxy-State goes back in the answer.
            attr::MESSAGE_AUTHENTICATOR | attr::EVENT_TIMESTAMP | attr::PROXY_STATE => continue,
            _ if !first => found.repeated = true,
            attr::USER_NAME => selector.user_name = text(value, &mut found),
            attr::ACCT_SESSION_ID => selector.acct_session_id = text(value, &mut found),
            attr::CALLING_STATION_ID => selector.calling_station_id = text(value, &mut found),
            attr::FRAMED_IP_ADDRESS => selector.framed_ip = ipv4(value, &mut found),
            attr::NAS_IDENTIFIER => {
                if let Some(id) = text(value, &mut found) {
                    found.other_nas |= id != nas.identifier;
                }
            }
            attr::NAS_IP_ADDRESS => {
                if let Some(ip) = ipv4(value, &mut found) {
                    found.other_nas |= !nas.is_ipv4(ip, local);
                }
            }
            attr::NAS_IPV6_ADDRESS => match <[u8; 16]>::try_from(value) {
                Ok(octets) => found.other_nas |= !nas.is_ipv6(Ipv6Addr::from(octets), local),
                Err(_) => found.invalid = true,
            },
            attr::SESSION_TIMEOUT | attr::IDLE_TIMEOUT if kind == Kind::Coa => {
                let seconds = integer(value, &mut found).map(TimeoutChange::from_seconds);
                if kind_byte == attr::SESSION_TIMEOUT {
                    change.session_timeout = seconds;
                } else {
                    change.idle_timeout = seconds;
                }
            }
            attr::SERVICE_TYPE => match integer(value, &mut found) {
                Some(SERVICE_TYPE_AUTHORIZE_ONLY) => found.authorize_only = true,
                Some(_) => found.unsupported = true,
                None => {}
            },
            _ => found.unsupported = true,
        }
    }
    if found.repeated {
        Err(ErrorCause::InvalidRequest)
    } else if found.invalid {
        Err(ErrorCause::InvalidAttributeValue)
    } else if found.unsupported {
        Err(ErrorCause::UnsupportedAttribute)
    } else if found.authorize_only {
        Err(ErrorCause::UnsupportedService)
    } else if found.other_nas {
        Err(ErrorCause::NasIdentificationMismatch)
    } else if selector.is_empty() {
        Err(ErrorCause::MissingAttribute)
    } else {
        Ok(DaeRequest {
            kind,
            selector,
            change,
        })
    }
}

fn text(value: &[u8], found: &mut Findings) -> Option<String> {
    match std::str::from_utf8(value) {
        Ok(s) => Some(s.to_owned()),
        Err(_) => {
            found.invalid = true;
            None
        }
    }
}

fn ipv4(value: &[u8], found: &mut Findings) -> Option<Ipv4Addr> {
    match <[u8; 4]>::try_from(value) {
        Ok(octets) => Some(Ipv4Addr::from(octets)),
        Err(_) => {
            found.invalid = true;
            None
        }
    }
}

fn integer(value: &[u8], found: &mut Findings) -> Option<u32> {
    match <[u8; 4]>::try_from(value) {
        Ok(octets) => Some(u32::from_be_bytes(octets)),
        Err(_) => {
            found.invalid = true;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::attr::Attributes;
    use std::time::Duration;

    fn nas() -> NasIdentity {
        NasIdentity {
            identifier: "vpn1".into(),
            ipv4: Some(Ipv4Addr::new(192, 0, 2, 1)),
        }
    }

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn packet(code: Code, attrs: &[(u8, &[u8])]) -> Packet {
        let mut attributes = Attributes::new();
        for (kind, value) in attrs {
            attributes.push(*kind, value).unwrap();
        }
        Packet {
            code,
            identifier: 1,
            authenticator: [0; 16],
            attributes,
        }
    }

    fn parse_one(code: Code, attrs: &[(u8, &[u8])]) -> Result<DaeRequest, ErrorCause> {
        parse(&packet(code, attrs), &nas(), LOCAL)
    }

    #[test]
    fn identification_attributes_make_the_selector() {
        let request = parse_one(
            Code::DisconnectRequest,
            &[
                (attr::MESSAGE_AUTHENTICATOR, &[0; 16]),
                (attr::USER_NAME, b"alice"),
                (attr::ACCT_SESSION_ID, b"0011"),
                (attr::FRAMED_IP_ADDRESS, &[10, 99, 0, 2]),
                (attr::CALLING_STATION_ID, b"198.51.100.7"),
                (attr::NAS_IDENTIFIER, b"vpn1"),
                (attr::NAS_IP_ADDRESS, &[192, 0, 2, 1]),
                (attr::PROXY_STATE, b"a"),
                (attr::PROXY_STATE, b"b"),
                (attr::EVENT_TIMESTAMP, &[0, 0, 0, 1]),
            ],
        )
        .unwrap();
        assert_eq!(request.kind, Kind::Disconnect);
        assert_eq!(
            request.selector,
            Selector {
                acct_session_id: Some("0011".into()),
                user_name: Some("alice".into()),
                framed_ip: Some(Ipv4Addr::new(10, 99, 0, 2)),
                calling_station_id: Some("198.51.100.7".into()),
            }
        );
        assert!(request.change.is_empty());
    }

    #[test]
    fn coa_carries_the_timer_changes() {
        let request = parse_one(
            Code::CoaRequest,
            &[
                (attr::ACCT_SESSION_ID, b"0011"),
                (attr::SESSION_TIMEOUT, &30u32.to_be_bytes()),
                (attr::IDLE_TIMEOUT, &0u32.to_be_bytes()),
            ],
        )
        .unwrap();
        assert_eq!(request.kind, Kind::Coa);
        assert_eq!(
            request.change,
            PolicyChange {
                session_timeout: Some(TimeoutChange::Set(Duration::from_secs(30))),
                idle_timeout: Some(TimeoutChange::Remove),
            }
        );
        // A CoA that changes nothing is still a CoA for these sessions.
        let nothing = parse_one(Code::CoaRequest, &[(attr::USER_NAME, b"a")]).unwrap();
        assert!(nothing.change.is_empty());
    }

    #[test]
    fn each_refusal_has_its_error_cause() {
        use ErrorCause::*;
        let user: (u8, &[u8]) = (attr::USER_NAME, b"alice");
        type Case<'a> = (Code, &'a [(u8, &'a [u8])], ErrorCause);
        let cases: &[Case] = &[
            // RFC 5176 3: no session identification attribute.
            (Code::DisconnectRequest, &[], MissingAttribute),
            (
                Code::CoaRequest,
                &[(attr::SESSION_TIMEOUT, &[0, 0, 0, 5])],
                MissingAttribute,
            ),
            (
                Code::DisconnectRequest,
                &[(attr::NAS_IDENTIFIER, b"vpn1")],
                MissingAttribute,
            ),
            // Not sstpd's.
            (
                Code::DisconnectRequest,
                &[user, (attr::NAS_IDENTIFIER, b"vpn2")],
                NasIdentificationMismatch,
            ),
            (
                Code::DisconnectRequest,
                &[user, (attr::NAS_IP_ADDRESS, &[192, 0, 2, 9])],
                NasIdentificationMismatch,
            ),
            (
                Code::DisconnectRequest,
                &[
                    user,
                    (
                        attr::NAS_IPV6_ADDRESS,
                        &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    ),
                ],
                NasIdentificationMismatch,
            ),
            // Unsupported.
            (
                Code::CoaRequest,
                &[user, (attr::FILTER_ID, b"gold")],
                UnsupportedAttribute,
            ),
            (
                Code::DisconnectRequest,
                &[user, (attr::SESSION_TIMEOUT, &[0, 0, 0, 5])],
                UnsupportedAttribute,
            ),
            (
                Code::CoaRequest,
                &[user, (attr::VENDOR_SPECIFIC, &[0, 0, 1, 55, 1, 3, 0])],
                UnsupportedAttribute,
            ),
            (
                Code::CoaRequest,
                &[user, (attr::SERVICE_TYPE, &[0, 0, 0, 17])],
                UnsupportedService,
            ),
            (
                Code::CoaRequest,
                &[user, (attr::SERVICE_TYPE, &[0, 0, 0, 2])],
                UnsupportedAttribute,
            ),
            // Malformed.
            (
                Code::DisconnectRequest,
                &[(attr::FRAMED_IP_ADDRESS, &[10, 0, 0])],
                InvalidAttributeValue,
            ),
            (
                Code::CoaRequest,
                &[user, (attr::IDLE_TIMEOUT, &[0, 5])],
                InvalidAttributeValue,
            ),
            (
                Code::DisconnectRequest,
                &[(attr::USER_NAME, &[0xff, 0xfe])],
                InvalidAttributeValue,
            ),
            (Code::DisconnectRequest, &[user, user], InvalidRequest),
        ];
        for (code, attrs, cause) in cases {
            assert_eq!(
                parse_one(*code, attrs),
                Err(*cause),
                "{code:?} with {attrs:?}"
            );
        }
    }

    #[test]
    fn refusals_come_in_a_fixed_order() {
        use ErrorCause::*;
        // Malformed before unsupported before another NAS before missing.
        let all: &[(u8, &[u8])] = &[
            (attr::NAS_IDENTIFIER, b"other"),
            (attr::FILTER_ID, b"x"),
            (attr::FRAMED_IP_ADDRESS, &[1]),
        ];
        assert_eq!(parse_one(Code::CoaRequest, all), Err(InvalidAttributeValue));
        assert_eq!(
            parse_one(Code::CoaRequest, &all[..2]),
            Err(UnsupportedAttribute)
        );
        assert_eq!(
            parse_one(Code::CoaRequest, &all[..1]),
            Err(NasIdentificationMismatch)
        );
    }

    #[test]
    fn the_nas_ip_address_may_be_the_one_the_request_came_to() {
        let mut nas = nas();
        nas.ipv4 = None;
        let request = packet(
            Code::DisconnectRequest,
            &[
                (attr::USER_NAME, b"alice"),
                (attr::NAS_IP_ADDRESS, &[127, 0, 0, 1]),
            ],
        );
        assert!(parse(&request, &nas, LOCAL).is_ok());
        assert!(parse(&request, &nas, "::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert_eq!(
            parse(&request, &nas, "0.0.0.0".parse().unwrap()),
            Err(ErrorCause::NasIdentificationMismatch)
        );
        let v6 = packet(
            Code::DisconnectRequest,
            &[
                (attr::USER_NAME, b"alice"),
                (attr::NAS_IPV6_ADDRESS, &Ipv6Addr::LOCALHOST.octets()),
            ],
        );
        assert!(parse(&v6, &nas, IpAddr::V6(Ipv6Addr::LOCALHOST)).is_ok());
    }
}
