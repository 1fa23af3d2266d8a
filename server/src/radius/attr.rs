//! RADIUS attributes: the type numbers ([RFC 2865] 5, [RFC 2866] 5,
//! [RFC 2869] 5, [RFC 3162] 2, [RFC 4818], [RFC 5176] 3), the ordered
//! attribute list of a packet with typed getters and push helpers, the
//! Vendor-Specific format of [RFC 2865] 5.26 with the Microsoft attributes
//! of [RFC 2548] ([`ms`]), and the enumerated values a NAS sends or reads.
//!
//! [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
//! [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
//! [RFC 2869]: https://www.rfc-editor.org/rfc/rfc2869
//! [RFC 3162]: https://www.rfc-editor.org/rfc/rfc3162
//! [RFC 4818]: https://www.rfc-editor.org/rfc/rfc4818
//! [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
//! [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The longest attribute value: the Length octet counts type and length
/// too ([RFC 2865] 5).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
pub const MAX_VALUE_LEN: usize = 253;

/// Defines type-number constants and a function naming them from one
/// table (the attributes here, the Microsoft ones in [`ms`]).
macro_rules! named_types {
    ($(#[$fn_meta:meta])* fn $function:ident;
     $( $(#[$meta:meta])* $name:ident = $number:literal, $label:literal; )*) => {
        $( $(#[$meta])* pub const $name: u8 = $number; )*

        $(#[$fn_meta])*
        pub fn $function(kind: u8) -> Option<&'static str> {
            match kind {
                $( $number => Some($label), )*
                _ => None,
            }
        }
    };
}

named_types! {
    /// The attribute's name as the RFCs spell it, for logs; `None` for
    /// types this codec does not name.
    fn name;
    /// [RFC 2865] 5.1, text.
    USER_NAME = 1, "User-Name";
    /// [RFC 2865] 5.2, hidden with [`super::crypt::hide_password`].
    USER_PASSWORD = 2, "User-Password";
    /// [RFC 2865] 5.3: CHAP Ident ‖ 16-octet response.
    CHAP_PASSWORD = 3, "CHAP-Password";
    /// [RFC 2865] 5.4, address.
    NAS_IP_ADDRESS = 4, "NAS-IP-Address";
    /// [RFC 2865] 5.5, integer.
    NAS_PORT = 5, "NAS-Port";
    /// [RFC 2865] 5.6, integer ([`SERVICE_TYPE_FRAMED`]).
    SERVICE_TYPE = 6, "Service-Type";
    /// [RFC 2865] 5.7, integer ([`FRAMED_PROTOCOL_PPP`]).
    FRAMED_PROTOCOL = 7, "Framed-Protocol";
    /// [RFC 2865] 5.8, address.
    FRAMED_IP_ADDRESS = 8, "Framed-IP-Address";
    /// [RFC 2865] 5.9, address.
    FRAMED_IP_NETMASK = 9, "Framed-IP-Netmask";
    /// [RFC 2865] 5.10, integer.
    FRAMED_ROUTING = 10, "Framed-Routing";
    /// [RFC 2865] 5.11, text.
    FILTER_ID = 11, "Filter-Id";
    /// [RFC 2865] 5.12, integer.
    FRAMED_MTU = 12, "Framed-MTU";
    /// [RFC 2865] 5.13, integer.
    FRAMED_COMPRESSION = 13, "Framed-Compression";
    /// [RFC 2865] 5.18, text.
    REPLY_MESSAGE = 18, "Reply-Message";
    /// [RFC 2865] 5.22, text.
    FRAMED_ROUTE = 22, "Framed-Route";
    /// [RFC 2865] 5.24, opaque: sent back unchanged after a challenge.
    STATE = 24, "State";
    /// [RFC 2865] 5.25, opaque: sent back unchanged in accounting.
    CLASS = 25, "Class";
    /// [RFC 2865] 5.26: Vendor-Id ‖ vendor attributes.
    VENDOR_SPECIFIC = 26, "Vendor-Specific";
    /// [RFC 2865] 5.27, integer (seconds).
    SESSION_TIMEOUT = 27, "Session-Timeout";
    /// [RFC 2865] 5.28, integer (seconds).
    IDLE_TIMEOUT = 28, "Idle-Timeout";
    /// [RFC 2865] 5.29, integer ([`TERMINATION_ACTION_DEFAULT`]).
    TERMINATION_ACTION = 29, "Termination-Action";
    /// [RFC 2865] 5.30, text.
    CALLED_STATION_ID = 30, "Called-Station-Id";
    /// [RFC 2865] 5.31, text.
    CALLING_STATION_ID = 31, "Calling-Station-Id";
    /// [RFC 2865] 5.32, text.
    NAS_IDENTIFIER = 32, "NAS-Identifier";
    /// [RFC 2865] 5.33, opaque: copied unchanged into the response.
    PROXY_STATE = 33, "Proxy-State";
    /// [RFC 2866] 5.1, integer ([`AcctStatusType`]).
    ACCT_STATUS_TYPE = 40, "Acct-Status-Type";
    /// [RFC 2866] 5.2, integer (seconds).
    ACCT_DELAY_TIME = 41, "Acct-Delay-Time";
    /// [RFC 2866] 5.3, integer.
    ACCT_INPUT_OCTETS = 42, "Acct-Input-Octets";
    /// [RFC 2866] 5.4, integer.
    ACCT_OUTPUT_OCTETS = 43, "Acct-Output-Octets";
    /// [RFC 2866] 5.5, text.
    ACCT_SESSION_ID = 44, "Acct-Session-Id";
    /// [RFC 2866] 5.6, integer ([`ACCT_AUTHENTIC_RADIUS`]).
    ACCT_AUTHENTIC = 45, "Acct-Authentic";
    /// [RFC 2866] 5.7, integer (seconds).
    ACCT_SESSION_TIME = 46, "Acct-Session-Time";
    /// [RFC 2866] 5.8, integer.
    ACCT_INPUT_PACKETS = 47, "Acct-Input-Packets";
    /// [RFC 2866] 5.9, integer.
    ACCT_OUTPUT_PACKETS = 48, "Acct-Output-Packets";
    /// [RFC 2866] 5.10, integer ([`AcctTerminateCause`]).
    ACCT_TERMINATE_CAUSE = 49, "Acct-Terminate-Cause";
    /// [RFC 2866] 5.11, text.
    ACCT_MULTI_SESSION_ID = 50, "Acct-Multi-Session-Id";
    /// [RFC 2866] 5.12, integer.
    ACCT_LINK_COUNT = 51, "Acct-Link-Count";
    /// [RFC 2869] 5.1, integer: times Acct-Input-Octets wrapped.
    ACCT_INPUT_GIGAWORDS = 52, "Acct-Input-Gigawords";
    /// [RFC 2869] 5.2, integer: times Acct-Output-Octets wrapped.
    ACCT_OUTPUT_GIGAWORDS = 53, "Acct-Output-Gigawords";
    /// [RFC 2869] 5.3, integer (seconds since 1970-01-01 UTC).
    EVENT_TIMESTAMP = 55, "Event-Timestamp";
    /// [RFC 2865] 5.40, opaque.
    CHAP_CHALLENGE = 60, "CHAP-Challenge";
    /// [RFC 2865] 5.41, integer ([`NAS_PORT_TYPE_VIRTUAL`]).
    NAS_PORT_TYPE = 61, "NAS-Port-Type";
    /// [RFC 2865] 5.42, integer.
    PORT_LIMIT = 62, "Port-Limit";
    /// [RFC 2869] 5.11, text.
    CONNECT_INFO = 77, "Connect-Info";
    /// [RFC 3579] 3.1, EAP packet fragments.
    EAP_MESSAGE = 79, "EAP-Message";
    /// [RFC 3579] 3.2: HMAC-MD5 over the packet.
    MESSAGE_AUTHENTICATOR = 80, "Message-Authenticator";
    /// [RFC 2869] 5.16, integer (seconds).
    ACCT_INTERIM_INTERVAL = 85, "Acct-Interim-Interval";
    /// [RFC 2869] 5.17, text.
    NAS_PORT_ID = 87, "NAS-Port-Id";
    /// [RFC 2869] 5.18, text.
    FRAMED_POOL = 88, "Framed-Pool";
    /// [RFC 4372] 2.1, opaque.
    CHARGEABLE_USER_IDENTITY = 89, "Chargeable-User-Identity";
    /// [RFC 3162] 2.1, IPv6 address.
    NAS_IPV6_ADDRESS = 95, "NAS-IPv6-Address";
    /// [RFC 3162] 2.2, 8-octet interface identifier.
    FRAMED_INTERFACE_ID = 96, "Framed-Interface-Id";
    /// [RFC 3162] 2.3, IPv6 prefix.
    FRAMED_IPV6_PREFIX = 97, "Framed-IPv6-Prefix";
    /// [RFC 3162] 2.4, IPv6 address.
    LOGIN_IPV6_HOST = 98, "Login-IPv6-Host";
    /// [RFC 3162] 2.5, text.
    FRAMED_IPV6_ROUTE = 99, "Framed-IPv6-Route";
    /// [RFC 3162] 2.6, text.
    FRAMED_IPV6_POOL = 100, "Framed-IPv6-Pool";
    /// [RFC 5176] 3.5, integer ([`ErrorCause`]).
    ERROR_CAUSE = 101, "Error-Cause";
    /// [RFC 4818] 3, IPv6 prefix.
    DELEGATED_IPV6_PREFIX = 123, "Delegated-IPv6-Prefix";
    /// [RFC 6911] 3.1, IPv6 address.
    FRAMED_IPV6_ADDRESS = 168, "Framed-IPv6-Address";
    /// [RFC 6911] 3.2, IPv6 address.
    DNS_SERVER_IPV6_ADDRESS = 169, "DNS-Server-IPv6-Address";
}

/// Service-Type Framed ([RFC 2865] 5.6).
pub const SERVICE_TYPE_FRAMED: u32 = 2;
/// Framed-Protocol PPP ([RFC 2865] 5.7).
pub const FRAMED_PROTOCOL_PPP: u32 = 1;
/// NAS-Port-Type Virtual ([RFC 2865] 5.41): a VPN's port.
pub const NAS_PORT_TYPE_VIRTUAL: u32 = 5;
/// Acct-Authentic RADIUS ([RFC 2866] 5.6).
pub const ACCT_AUTHENTIC_RADIUS: u32 = 1;
/// Acct-Authentic Local ([RFC 2866] 5.6).
pub const ACCT_AUTHENTIC_LOCAL: u32 = 2;
/// Acct-Authentic Remote ([RFC 2866] 5.6).
pub const ACCT_AUTHENTIC_REMOTE: u32 = 3;
/// Termination-Action Default ([RFC 2865] 5.29).
pub const TERMINATION_ACTION_DEFAULT: u32 = 0;
/// Termination-Action RADIUS-Request ([RFC 2865] 5.29).
pub const TERMINATION_ACTION_RADIUS_REQUEST: u32 = 1;

/// An enumeration of integer attribute values with their numbers, their
/// names (`as_str`, lowercase, for logs and labels) and a lookup.
macro_rules! value_enum {
    ($(#[$meta:meta])* $enum:ident { $( $(#[$vmeta:meta])* $variant:ident = $number:literal, $label:literal; )* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $enum {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $enum {
            /// The value on the wire.
            pub fn value(self) -> u32 {
                match self {
                    $( $enum::$variant => $number, )*
                }
            }

            /// The named value for `value`, `None` for one not named here.
            pub fn from_value(value: u32) -> Option<Self> {
                match value {
                    $( $number => Some($enum::$variant), )*
                    _ => None,
                }
            }

            /// Short lowercase name for logs and metric labels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $enum::$variant => $label, )*
                }
            }
        }

        impl fmt::Display for $enum {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

value_enum! {
    /// Acct-Status-Type ([RFC 2866] 5.1).
    AcctStatusType {
        Start = 1, "start";
        Stop = 2, "stop";
        InterimUpdate = 3, "interim_update";
        AccountingOn = 7, "accounting_on";
        AccountingOff = 8, "accounting_off";
    }
}

value_enum! {
    /// Acct-Terminate-Cause ([RFC 2866] 5.10).
    AcctTerminateCause {
        UserRequest = 1, "user_request";
        LostCarrier = 2, "lost_carrier";
        LostService = 3, "lost_service";
        IdleTimeout = 4, "idle_timeout";
        SessionTimeout = 5, "session_timeout";
        AdminReset = 6, "admin_reset";
        AdminReboot = 7, "admin_reboot";
        PortError = 8, "port_error";
        NasError = 9, "nas_error";
        NasRequest = 10, "nas_request";
        NasReboot = 11, "nas_reboot";
        PortUnneeded = 12, "port_unneeded";
        PortPreempted = 13, "port_preempted";
        PortSuspended = 14, "port_suspended";
        ServiceUnavailable = 15, "service_unavailable";
        Callback = 16, "callback";
        UserError = 17, "user_error";
        HostRequest = 18, "host_request";
    }
}

value_enum! {
    /// Error-Cause ([RFC 5176] 3.5): why a Disconnect- or CoA-Request was
    /// refused (4xx, 5xx) or what happened besides (2xx).
    ErrorCause {
        ResidualSessionContextRemoved = 201, "residual_session_context_removed";
        InvalidEapPacket = 202, "invalid_eap_packet";
        UnsupportedAttribute = 401, "unsupported_attribute";
        MissingAttribute = 402, "missing_attribute";
        NasIdentificationMismatch = 403, "nas_identification_mismatch";
        InvalidRequest = 404, "invalid_request";
        UnsupportedService = 405, "unsupported_service";
        UnsupportedExtension = 406, "unsupported_extension";
        InvalidAttributeValue = 407, "invalid_attribute_value";
        AdministrativelyProhibited = 501, "administratively_prohibited";
        RequestNotRoutable = 502, "request_not_routable";
        SessionContextNotFound = 503, "session_context_not_found";
        SessionContextNotRemovable = 504, "session_context_not_removable";
        OtherProxyProcessingError = 505, "other_proxy_processing_error";
        ResourcesUnavailable = 506, "resources_unavailable";
        RequestInitiated = 507, "request_initiated";
        MultipleSessionSelectionUnsupported = 508, "multiple_session_selection_unsupported";
    }
}

/// An attribute value that does not fit its attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttrError {
    /// Longer than [`MAX_VALUE_LEN`] octets (for a vendor attribute: than
    /// what is left of them after the Vendor-Id and sub-attribute header).
    ValueTooLong {
        /// The attribute type.
        kind: u8,
        /// The length offered.
        len: usize,
    },
}

impl AttrError {
    /// Short lowercase name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            AttrError::ValueTooLong { .. } => "value_too_long",
        }
    }
}

impl fmt::Display for AttrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrError::ValueTooLong { kind, len } => write!(
                f,
                "{len}-octet value too long for attribute {}",
                Kind(*kind)
            ),
        }
    }
}

impl std::error::Error for AttrError {}

/// An attribute type, shown by name when it has one.
struct Kind(u8);

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match name(self.0) {
            Some(name) => f.write_str(name),
            None => write!(f, "Attr-{}", self.0),
        }
    }
}

/// One attribute: its type and a value of at most [`MAX_VALUE_LEN`]
/// octets ([RFC 2865] 5).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
#[derive(Clone, PartialEq, Eq)]
pub struct Attribute {
    kind: u8,
    value: Vec<u8>,
}

impl Attribute {
    /// An attribute of type `kind`; fails on a value too long to encode.
    pub fn new(kind: u8, value: impl Into<Vec<u8>>) -> Result<Attribute, AttrError> {
        let value = value.into();
        if value.len() > MAX_VALUE_LEN {
            return Err(AttrError::ValueTooLong {
                kind,
                len: value.len(),
            });
        }
        Ok(Attribute { kind, value })
    }

    /// The attribute type.
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// The value.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Octets on the wire: type, length, value.
    pub fn encoded_len(&self) -> usize {
        2 + self.value.len()
    }
}

impl fmt::Debug for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Kind(self.kind))?;
        match self.kind {
            // Secret-derived or opaque: the length only.
            USER_PASSWORD
            | CHAP_PASSWORD
            | VENDOR_SPECIFIC
            | MESSAGE_AUTHENTICATOR
            | STATE
            | CLASS
            | EAP_MESSAGE => write!(f, "({} octets)", self.value.len()),
            _ => match std::str::from_utf8(&self.value) {
                Ok(text) if !text.chars().any(char::is_control) => write!(f, "({text:?})"),
                _ => {
                    f.write_str("(0x")?;
                    for byte in &self.value {
                        write!(f, "{byte:02x}")?;
                    }
                    f.write_str(")")
                }
            },
        }
    }
}

/// An IPv6 prefix as carried by Framed-IPv6-Prefix and
/// Delegated-IPv6-Prefix ([RFC 3162] 2.3): the address with every bit past
/// `len` zero.
///
/// [RFC 3162]: https://www.rfc-editor.org/rfc/rfc3162
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix {
    addr: Ipv6Addr,
    len: u8,
}

impl Ipv6Prefix {
    /// The prefix of `len` bits of `addr` (bits past it are cleared);
    /// `None` for a length over 128.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Ipv6Prefix> {
        if len > 128 {
            return None;
        }
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        Some(Ipv6Prefix {
            addr: Ipv6Addr::from(u128::from(addr) & mask),
            len,
        })
    }

    /// The prefix's address (host bits zero).
    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether this is the zero-length prefix `::/0`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The attribute value: Reserved, Prefix-Length, then the octets that
    /// hold the prefix ([RFC 3162] 2.3).
    ///
    /// [RFC 3162]: https://www.rfc-editor.org/rfc/rfc3162
    pub fn to_value(&self) -> Vec<u8> {
        let octets = usize::from(self.len).div_ceil(8);
        let mut value = Vec::with_capacity(2 + octets);
        value.extend_from_slice(&[0, self.len]);
        value.extend_from_slice(&self.addr.octets()[..octets]);
        value
    }

    /// Parses an attribute value ([RFC 3162] 2.3): 2 to 18 octets, a
    /// Prefix-Length of at most 128, enough octets for it, and no bit set
    /// past it ([RFC 8044] 3.10 makes such a value invalid). The Reserved
    /// octet is ignored.
    ///
    /// [RFC 3162]: https://www.rfc-editor.org/rfc/rfc3162
    /// [RFC 8044]: https://www.rfc-editor.org/rfc/rfc8044
    pub fn from_value(value: &[u8]) -> Option<Ipv6Prefix> {
        let (&len, prefix) = value.get(1..)?.split_first()?;
        if len > 128 || prefix.len() > 16 || prefix.len() < usize::from(len).div_ceil(8) {
            return None;
        }
        let mut octets = [0u8; 16];
        octets[..prefix.len()].copy_from_slice(prefix);
        let addr = Ipv6Addr::from(octets);
        let parsed = Ipv6Prefix::new(addr, len)?;
        (parsed.addr == addr).then_some(parsed)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The attributes of a packet, in order ([RFC 2865] 5: the order of
/// attributes of one type matters, of different types it need not).
///
/// Getters return the first attribute of a type; the typed ones return
/// `None` when it is absent or its value has the wrong size or form.
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    list: Vec<Attribute>,
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.list).finish()
    }
}

impl Attributes {
    /// No attributes.
    pub fn new() -> Attributes {
        Attributes::default()
    }

    /// How many attributes there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Every attribute, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Attribute> {
        self.list.iter()
    }

    /// Octets the attributes take on the wire.
    pub fn encoded_len(&self) -> usize {
        self.list.iter().map(Attribute::encoded_len).sum()
    }

    /// Appends the attributes in wire format.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for attribute in &self.list {
            // `Attribute::new` keeps values at most 253 octets long.
            out.push(attribute.kind);
            out.push(attribute.encoded_len() as u8);
            out.extend_from_slice(&attribute.value);
        }
    }

    /// The value of the first attribute of type `kind`.
    pub fn get(&self, kind: u8) -> Option<&[u8]> {
        self.get_all(kind).next()
    }

    /// The values of every attribute of type `kind`, in order.
    pub fn get_all(&self, kind: u8) -> impl Iterator<Item = &[u8]> + '_ {
        self.list
            .iter()
            .filter(move |a| a.kind == kind)
            .map(|a| a.value.as_slice())
    }

    /// Whether an attribute of type `kind` is present.
    pub fn contains(&self, kind: u8) -> bool {
        self.list.iter().any(|a| a.kind == kind)
    }

    /// An integer attribute ([RFC 2865] 5: 32 bits, network order).
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub fn u32(&self, kind: u8) -> Option<u32> {
        Some(u32::from_be_bytes(self.get(kind)?.try_into().ok()?))
    }

    /// An address attribute (4 octets).
    pub fn ipv4(&self, kind: u8) -> Option<Ipv4Addr> {
        Some(Ipv4Addr::from(<[u8; 4]>::try_from(self.get(kind)?).ok()?))
    }

    /// An IPv6 address attribute (16 octets, [RFC 3162] 2.1).
    ///
    /// [RFC 3162]: https://www.rfc-editor.org/rfc/rfc3162
    pub fn ipv6(&self, kind: u8) -> Option<Ipv6Addr> {
        Some(Ipv6Addr::from(<[u8; 16]>::try_from(self.get(kind)?).ok()?))
    }

    /// A text attribute (UTF-8, [RFC 2865] 5).
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub fn string(&self, kind: u8) -> Option<&str> {
        std::str::from_utf8(self.get(kind)?).ok()
    }

    /// An IPv6 prefix attribute ([RFC 3162] 2.3), see
    /// [`Ipv6Prefix::from_value`].
    ///
    /// [RFC 3162]: https://www.rfc-editor.org/rfc/rfc3162
    pub fn ipv6_prefix(&self, kind: u8) -> Option<Ipv6Prefix> {
        Ipv6Prefix::from_value(self.get(kind)?)
    }

    /// An 8-octet interface identifier (Framed-Interface-Id, [RFC 3162]
    /// 2.2).
    ///
    /// [RFC 3162]: https://www.rfc-editor.org/rfc/rfc3162
    pub fn interface_id(&self, kind: u8) -> Option<[u8; 8]> {
        self.get(kind)?.try_into().ok()
    }

    /// Every well-formed sub-attribute of the Vendor-Specific attributes
    /// of `vendor`, in order ([RFC 2865] 5.26): a Vendor-Specific whose
    /// vendor data is not a clean run of type-length-value sub-attributes
    /// is skipped as a whole.
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub fn vendor_all(&self, vendor: u32) -> impl Iterator<Item = (u8, &[u8])> + '_ {
        self.get_all(VENDOR_SPECIFIC)
            .filter_map(move |value| {
                let sub = vendor_data(value, vendor)?;
                VendorAttributes::well_formed(sub)
            })
            .flatten()
    }

    /// The first sub-attribute `vendor_type` of `vendor`.
    pub fn vendor(&self, vendor: u32, vendor_type: u8) -> Option<&[u8]> {
        self.vendor_all(vendor)
            .find(|&(kind, _)| kind == vendor_type)
            .map(|(_, value)| value)
    }

    /// The first Microsoft attribute `ms_type` ([RFC 2548], [`ms`]).
    ///
    /// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
    pub fn ms(&self, ms_type: u8) -> Option<&[u8]> {
        self.vendor(ms::VENDOR_ID, ms_type)
    }

    /// Appends an attribute.
    pub fn push_attribute(&mut self, attribute: Attribute) {
        self.list.push(attribute);
    }

    /// Inserts an attribute at `index` (clamped to the end).
    pub fn insert(&mut self, index: usize, attribute: Attribute) {
        let index = index.min(self.list.len());
        self.list.insert(index, attribute);
    }

    /// Appends an attribute of type `kind` with value `value`.
    pub fn push(&mut self, kind: u8, value: &[u8]) -> Result<(), AttrError> {
        self.list.push(Attribute::new(kind, value)?);
        Ok(())
    }

    /// Appends an integer attribute.
    pub fn push_u32(&mut self, kind: u8, value: u32) {
        self.list.push(Attribute {
            kind,
            value: value.to_be_bytes().to_vec(),
        });
    }

    /// Appends an address attribute.
    pub fn push_ipv4(&mut self, kind: u8, addr: Ipv4Addr) {
        self.list.push(Attribute {
            kind,
            value: addr.octets().to_vec(),
        });
    }

    /// Appends an IPv6 address attribute.
    pub fn push_ipv6(&mut self, kind: u8, addr: Ipv6Addr) {
        self.list.push(Attribute {
            kind,
            value: addr.octets().to_vec(),
        });
    }

    /// Appends an EAP packet as EAP-Message attributes of at most
    /// [`MAX_VALUE_LEN`] octets each, in order and consecutive ([RFC 3579]
    /// 3.1). The Access-Request carrying them also needs
    /// Message-Authenticator (3.2), which the client always adds.
    ///
    /// [RFC 3579]: https://www.rfc-editor.org/rfc/rfc3579
    pub fn push_eap_message(&mut self, packet: &[u8]) {
        for chunk in packet.chunks(MAX_VALUE_LEN) {
            self.list.push(Attribute {
                kind: EAP_MESSAGE,
                value: chunk.to_vec(),
            });
        }
    }

    /// The EAP packet of an Access-Challenge, -Accept or -Reject, put
    /// together from its EAP-Message attributes ([RFC 3579] 3.1). `None`
    /// when there are none, when they are not consecutive, or when what
    /// they hold is not one whole EAP packet (its Length field counts
    /// exactly the octets carried).
    ///
    /// [RFC 3579]: https://www.rfc-editor.org/rfc/rfc3579
    pub fn eap_message(&self) -> Option<Vec<u8>> {
        let first = self.list.iter().position(|a| a.kind == EAP_MESSAGE)?;
        let run = self.list[first..]
            .iter()
            .take_while(|a| a.kind == EAP_MESSAGE)
            .count();
        if self.list[first + run..]
            .iter()
            .any(|a| a.kind == EAP_MESSAGE)
        {
            return None;
        }
        let packet: Vec<u8> = self.list[first..first + run]
            .iter()
            .flat_map(|a| a.value.iter().copied())
            .collect();
        let length = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
        (length >= 4 && length == packet.len()).then_some(packet)
    }

    /// Appends a text attribute.
    pub fn push_string(&mut self, kind: u8, text: &str) -> Result<(), AttrError> {
        self.push(kind, text.as_bytes())
    }

    /// Appends an IPv6 prefix attribute ([RFC 3162] 2.3).
    ///
    /// [RFC 3162]: https://www.rfc-editor.org/rfc/rfc3162
    pub fn push_ipv6_prefix(&mut self, kind: u8, prefix: Ipv6Prefix) {
        self.list.push(Attribute {
            kind,
            value: prefix.to_value(),
        });
    }

    /// Appends a Vendor-Specific attribute holding one sub-attribute
    /// ([RFC 2865] 5.26): Vendor-Id, Vendor-Type, Vendor-Length, value.
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub fn push_vendor(
        &mut self,
        vendor: u32,
        vendor_type: u8,
        value: &[u8],
    ) -> Result<(), AttrError> {
        if value.len() > MAX_VALUE_LEN - 6 {
            return Err(AttrError::ValueTooLong {
                kind: VENDOR_SPECIFIC,
                len: value.len(),
            });
        }
        let mut data = Vec::with_capacity(6 + value.len());
        data.extend_from_slice(&vendor.to_be_bytes());
        data.push(vendor_type);
        data.push((value.len() + 2) as u8);
        data.extend_from_slice(value);
        self.list.push(Attribute {
            kind: VENDOR_SPECIFIC,
            value: data,
        });
        Ok(())
    }

    /// Appends a Microsoft attribute ([RFC 2548]).
    ///
    /// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
    pub fn push_ms(&mut self, ms_type: u8, value: &[u8]) -> Result<(), AttrError> {
        self.push_vendor(ms::VENDOR_ID, ms_type, value)
    }

    /// Removes every attribute of type `kind`; returns how many.
    pub fn remove(&mut self, kind: u8) -> usize {
        let before = self.list.len();
        self.list.retain(|a| a.kind != kind);
        before - self.list.len()
    }

    /// Keeps only the attributes `keep` holds for.
    pub fn retain(&mut self, keep: impl FnMut(&Attribute) -> bool) {
        self.list.retain(keep);
    }

    /// Replaces every attribute of type `kind` by one integer attribute
    /// (appended when there was none, else where the first one was).
    pub fn set_u32(&mut self, kind: u8, value: u32) {
        let attribute = Attribute {
            kind,
            value: value.to_be_bytes().to_vec(),
        };
        match self.list.iter().position(|a| a.kind == kind) {
            Some(at) => {
                self.list[at] = attribute;
                let mut index = 0;
                self.list.retain(|a| {
                    index += 1;
                    a.kind != kind || index == at + 1
                });
            }
            None => self.list.push(attribute),
        }
    }
}

impl<'a> IntoIterator for &'a Attributes {
    type Item = &'a Attribute;
    type IntoIter = std::slice::Iter<'a, Attribute>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

/// The vendor data of a Vendor-Specific value if its Vendor-Id is
/// `vendor`.
fn vendor_data(value: &[u8], vendor: u32) -> Option<&[u8]> {
    let (id, data) = value.split_first_chunk::<4>()?;
    (u32::from_be_bytes(*id) == vendor).then_some(data)
}

/// The sub-attributes of one Vendor-Specific value in the format [RFC
/// 2865] 5.26 recommends (type, length counting both, value).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
#[derive(Clone, Debug)]
pub struct VendorAttributes<'a> {
    data: &'a [u8],
}

impl<'a> VendorAttributes<'a> {
    /// The sub-attributes of `data` (after the Vendor-Id) if it is a clean
    /// run of them: every length at least 2 and inside the data.
    pub fn well_formed(data: &'a [u8]) -> Option<VendorAttributes<'a>> {
        let mut rest = data;
        while !rest.is_empty() {
            let len = usize::from(*rest.get(1)?);
            if len < 2 || len > rest.len() {
                return None;
            }
            rest = &rest[len..];
        }
        Some(VendorAttributes { data })
    }
}

impl<'a> Iterator for VendorAttributes<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let kind = *self.data.first()?;
        let len = usize::from(*self.data.get(1)?);
        if len < 2 || len > self.data.len() {
            self.data = &[];
            return None;
        }
        let value = &self.data[2..len];
        self.data = &self.data[len..];
        Some((kind, value))
    }
}

/// The Microsoft vendor attributes of [RFC 2548] (Vendor-Id 311) a NAS
/// doing MS-CHAP and MPPE through RADIUS needs, with helpers for the
/// MS-CHAP2 values.
///
/// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
pub mod ms {
    /// The Microsoft SMI Network Management Private Enterprise Code.
    pub const VENDOR_ID: u32 = 311;

    named_types! {
        /// The sub-attribute's name as [RFC 2548] spells it.
        ///
        /// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
        fn name;
        /// [RFC 2548] 2.1.3: MS-CHAPv1 response.
        CHAP_RESPONSE = 1, "MS-CHAP-Response";
        /// [RFC 2548] 2.1.5: Ident ‖ "E=eeeeeeeeee R=r C=... V=vvvvvvvvvv M=...".
        CHAP_ERROR = 2, "MS-CHAP-Error";
        /// [RFC 2548] 2.4.4: 1 = encryption allowed, 2 = required.
        MPPE_ENCRYPTION_POLICY = 7, "MS-MPPE-Encryption-Policy";
        /// [RFC 2548] 2.4.5: bit 0x2 = 40-bit, 0x4 = 128-bit.
        MPPE_ENCRYPTION_TYPES = 8, "MS-MPPE-Encryption-Types";
        /// [RFC 2548] 2.3.1.
        CHAP_DOMAIN = 10, "MS-CHAP-Domain";
        /// [RFC 2548] 2.1.1 and 2.3.3: the authenticator challenge.
        CHAP_CHALLENGE = 11, "MS-CHAP-Challenge";
        /// [RFC 2548] 2.4.1: MS-CHAPv1 keys.
        CHAP_MPPE_KEYS = 12, "MS-CHAP-MPPE-Keys";
        /// [RFC 2548] 2.4.2: salt-encrypted NAS-to-peer key.
        MPPE_SEND_KEY = 16, "MS-MPPE-Send-Key";
        /// [RFC 2548] 2.4.3: salt-encrypted peer-to-NAS key.
        MPPE_RECV_KEY = 17, "MS-MPPE-Recv-Key";
        /// [RFC 2548] 2.3.2: Ident ‖ Flags ‖ Peer-Challenge ‖ Reserved ‖ Response.
        CHAP2_RESPONSE = 25, "MS-CHAP2-Response";
        /// [RFC 2548] 2.3.3: Ident ‖ "S=" ‖ 40 hex digits.
        CHAP2_SUCCESS = 26, "MS-CHAP2-Success";
        /// [RFC 2548] 2.3.4.
        CHAP2_CPW = 27, "MS-CHAP2-CPW";
        /// [RFC 2548] 2.6.1, address.
        PRIMARY_DNS_SERVER = 28, "MS-Primary-DNS-Server";
        /// [RFC 2548] 2.6.2, address.
        SECONDARY_DNS_SERVER = 29, "MS-Secondary-DNS-Server";
        /// [RFC 2548] 2.6.3, address.
        PRIMARY_NBNS_SERVER = 30, "MS-Primary-NBNS-Server";
        /// [RFC 2548] 2.6.4, address.
        SECONDARY_NBNS_SERVER = 31, "MS-Secondary-NBNS-Server";
    }

    /// MS-MPPE-Encryption-Policy: encryption allowed ([RFC 2548] 2.4.4).
    pub const ENCRYPTION_ALLOWED: u32 = 1;
    /// MS-MPPE-Encryption-Policy: encryption required ([RFC 2548] 2.4.4).
    pub const ENCRYPTION_REQUIRED: u32 = 2;
    /// MS-MPPE-Encryption-Types bit: 40-bit keys ([RFC 2548] 2.4.5).
    pub const ENCRYPTION_TYPE_40_BIT: u32 = 0x2;
    /// MS-MPPE-Encryption-Types bit: 128-bit keys ([RFC 2548] 2.4.5).
    pub const ENCRYPTION_TYPE_128_BIT: u32 = 0x4;

    /// The MS-CHAP2-Response value ([RFC 2548] 2.3.2): Ident, Flags 0,
    /// Peer-Challenge, 8 reserved zero octets, NT-Response.
    ///
    /// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
    pub fn chap2_response(
        ident: u8,
        peer_challenge: &[u8; 16],
        nt_response: &[u8; 24],
    ) -> [u8; 50] {
        let mut value = [0u8; 50];
        value[0] = ident;
        value[2..18].copy_from_slice(peer_challenge);
        value[26..50].copy_from_slice(nt_response);
        value
    }

    /// Parses MS-CHAP2-Success ([RFC 2548] 2.3.3): the Ident and the
    /// 20-octet authenticator response of the `S=` string ([RFC 2759] 5).
    /// `None` if it is not Ident, `S=` and 40 hex digits, then the end or
    /// a space (the ` M=...` some servers append is ignored): the Success
    /// message's own parser, [`mschapv2::parse_success_message`].
    ///
    /// [`mschapv2::parse_success_message`]: crate::proto::auth::mschapv2::parse_success_message
    ///
    /// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
    /// [RFC 2759]: https://www.rfc-editor.org/rfc/rfc2759
    pub fn parse_chap2_success(value: &[u8]) -> Option<(u8, [u8; 20])> {
        let (&ident, text) = value.split_first()?;
        let response = crate::proto::auth::mschapv2::parse_success_message(text).ok()?;
        Some((ident, response))
    }

    /// Parses MS-CHAP-Error ([RFC 2548] 2.1.5): the Ident and the error
    /// code of its `E=` field ([RFC 2759] 6), if there is one.
    ///
    /// [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
    /// [RFC 2759]: https://www.rfc-editor.org/rfc/rfc2759
    pub fn parse_chap_error(value: &[u8]) -> Option<(u8, Option<u32>)> {
        let (&ident, text) = value.split_first()?;
        let code = std::str::from_utf8(text).ok().and_then(|text| {
            text.split_ascii_whitespace()
                .find_map(|field| field.strip_prefix("E="))
                .and_then(|code| code.parse().ok())
        });
        Some((ident, code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eap_messages_are_split_at_253_octets_and_put_back_together() {
        // An EAP Response of 600 octets: three attributes, 253 + 253 + 94.
        let mut packet = vec![2, 7, 0x02, 0x58, 26];
        packet.resize(600, 0x5a);
        let mut attrs = Attributes::new();
        attrs.push_string(USER_NAME, "alice").unwrap();
        attrs.push_eap_message(&packet);
        attrs.push(STATE, b"st").unwrap();
        let sizes: Vec<usize> = attrs.get_all(EAP_MESSAGE).map(<[u8]>::len).collect();
        assert_eq!(sizes, [253, 253, 94]);
        assert_eq!(attrs.eap_message(), Some(packet.clone()));
        // Round trip through a whole RADIUS packet on the wire.
        let radius = crate::radius::packet::Packet {
            code: crate::radius::packet::Code::AccessChallenge,
            identifier: 1,
            authenticator: [0; 16],
            attributes: attrs,
        };
        let parsed = crate::radius::packet::Packet::decode(&radius.encode().unwrap()).unwrap();
        assert_eq!(parsed.attributes.eap_message(), Some(packet.clone()));
        // Not consecutive: refused.
        let mut split = Attributes::new();
        split.push(EAP_MESSAGE, &packet[..253]).unwrap();
        split.push(STATE, b"st").unwrap();
        split.push(EAP_MESSAGE, &packet[253..506]).unwrap();
        split.push(EAP_MESSAGE, &packet[506..]).unwrap();
        assert_eq!(split.eap_message(), None);
        // A Length that disagrees with the octets carried, or none at all.
        let mut short = Attributes::new();
        short.push_eap_message(&packet[..500]);
        assert_eq!(short.eap_message(), None);
        let mut tiny = Attributes::new();
        tiny.push(EAP_MESSAGE, &[3]).unwrap();
        assert_eq!(tiny.eap_message(), None);
        assert_eq!(Attributes::new().eap_message(), None);
        // EAP-Success, the smallest packet.
        let mut success = Attributes::new();
        success.push_eap_message(&[3, 9, 0, 4]);
        assert_eq!(success.eap_message(), Some(vec![3, 9, 0, 4]));
    }

    #[test]
    fn typed_getters_want_the_exact_size() {
        let mut attrs = Attributes::new();
        attrs.push_u32(SESSION_TIMEOUT, 3600);
        attrs.push_ipv4(FRAMED_IP_ADDRESS, Ipv4Addr::new(10, 0, 0, 7));
        attrs.push(IDLE_TIMEOUT, &[0, 1, 2]).unwrap();
        attrs.push_string(USER_NAME, "nemo").unwrap();
        attrs.push(FILTER_ID, &[0xff, 0xfe]).unwrap();
        assert_eq!(attrs.u32(SESSION_TIMEOUT), Some(3600));
        assert_eq!(
            attrs.ipv4(FRAMED_IP_ADDRESS),
            Some(Ipv4Addr::new(10, 0, 0, 7))
        );
        assert_eq!(attrs.u32(IDLE_TIMEOUT), None);
        assert_eq!(attrs.ipv4(SESSION_TIMEOUT), Ipv4Addr::from(3600).into());
        assert_eq!(attrs.string(USER_NAME), Some("nemo"));
        assert_eq!(attrs.string(FILTER_ID), None, "not UTF-8");
        assert_eq!(attrs.u32(STATE), None, "absent");
        assert_eq!(attrs.encoded_len(), 6 + 6 + 5 + 6 + 4);
    }

    #[test]
    fn values_over_253_octets_are_refused() {
        let mut attrs = Attributes::new();
        assert!(attrs.push(CLASS, &[0; 253]).is_ok());
        assert_eq!(
            attrs.push(CLASS, &[0; 254]),
            Err(AttrError::ValueTooLong {
                kind: CLASS,
                len: 254
            })
        );
        assert!(attrs.push_vendor(9, 1, &[0; 247]).is_ok());
        assert_eq!(
            attrs.push_vendor(9, 1, &[0; 248]).unwrap_err().as_str(),
            "value_too_long"
        );
        assert_eq!(attrs.len(), 2);
    }

    #[test]
    fn ipv6_prefix_follows_rfc_3162() {
        let prefix = Ipv6Prefix::new("2001:db8:1:2::".parse().unwrap(), 64).unwrap();
        let mut attrs = Attributes::new();
        attrs.push_ipv6_prefix(DELEGATED_IPV6_PREFIX, prefix);
        let value = attrs.get(DELEGATED_IPV6_PREFIX).unwrap();
        assert_eq!(
            value,
            &[0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2],
            "the octets of the prefix only"
        );
        assert_eq!(attrs.ipv6_prefix(DELEGATED_IPV6_PREFIX), Some(prefix));
        assert_eq!(prefix.to_string(), "2001:db8:1:2::/64");

        // All 16 octets, as many servers send it.
        let mut full = vec![0, 64];
        full.extend_from_slice(&prefix.addr().octets());
        assert_eq!(Ipv6Prefix::from_value(&full), Some(prefix));
        // Host bits set, a length over 128, too few octets, too many.
        let mut host_bits = full.clone();
        host_bits[17] = 1;
        assert_eq!(Ipv6Prefix::from_value(&host_bits), None);
        assert_eq!(Ipv6Prefix::from_value(&[0, 129]), None);
        assert_eq!(Ipv6Prefix::from_value(&[0, 64, 0x20, 0x01]), None);
        assert_eq!(Ipv6Prefix::from_value(&[0; 19]), None);
        assert_eq!(Ipv6Prefix::from_value(&[0]), None);
        let zero = Ipv6Prefix::from_value(&[0, 0]).unwrap();
        assert!(zero.is_empty());
        assert_eq!(Ipv6Prefix::new(Ipv6Addr::UNSPECIFIED, 200), None);
        // Host bits of the address given are cleared.
        let cleared = Ipv6Prefix::new("2001:db8::1".parse().unwrap(), 127).unwrap();
        assert_eq!(cleared.addr(), "2001:db8::".parse::<Ipv6Addr>().unwrap());
        let all = Ipv6Prefix::new("2001:db8::1".parse().unwrap(), 128).unwrap();
        assert_eq!(Ipv6Prefix::from_value(&all.to_value()), Some(all));
    }

    #[test]
    fn vendor_specific_sub_attributes() {
        let mut attrs = Attributes::new();
        attrs.push_ms(ms::CHAP_CHALLENGE, &[7; 16]).unwrap();
        attrs.push_vendor(9, 1, b"cisco-avpair").unwrap();
        // Two sub-attributes in one Vendor-Specific.
        let mut two = 311u32.to_be_bytes().to_vec();
        two.extend_from_slice(&[ms::MPPE_ENCRYPTION_POLICY, 6, 0, 0, 0, 1]);
        two.extend_from_slice(&[ms::MPPE_ENCRYPTION_TYPES, 6, 0, 0, 0, 6]);
        attrs.push(VENDOR_SPECIFIC, &two).unwrap();
        // Malformed: a sub-attribute running past the end; skipped whole.
        let mut bad = 311u32.to_be_bytes().to_vec();
        bad.extend_from_slice(&[ms::PRIMARY_DNS_SERVER, 6, 1, 1, 1, 1, 99, 9, 0]);
        attrs.push(VENDOR_SPECIFIC, &bad).unwrap();
        // Too short for a Vendor-Id.
        attrs.push(VENDOR_SPECIFIC, &[0, 0, 1]).unwrap();

        assert_eq!(attrs.ms(ms::CHAP_CHALLENGE), Some(&[7u8; 16][..]));
        assert_eq!(attrs.vendor(9, 1), Some(&b"cisco-avpair"[..]));
        assert_eq!(attrs.ms(ms::MPPE_ENCRYPTION_TYPES), Some(&[0, 0, 0, 6][..]));
        assert_eq!(attrs.ms(ms::PRIMARY_DNS_SERVER), None);
        let kinds: Vec<u8> = attrs.vendor_all(ms::VENDOR_ID).map(|(k, _)| k).collect();
        assert_eq!(
            kinds,
            [
                ms::CHAP_CHALLENGE,
                ms::MPPE_ENCRYPTION_POLICY,
                ms::MPPE_ENCRYPTION_TYPES
            ]
        );
        assert_eq!(ms::name(ms::MPPE_SEND_KEY), Some("MS-MPPE-Send-Key"));
        assert_eq!(name(DELEGATED_IPV6_PREFIX), Some("Delegated-IPv6-Prefix"));
        assert_eq!(name(200), None);
    }

    #[test]
    fn ms_chap2_values() {
        let value = ms::chap2_response(9, &[1; 16], &[2; 24]);
        assert_eq!(value[0], 9);
        assert_eq!(value[1], 0, "flags");
        assert_eq!(&value[2..18], &[1; 16]);
        assert_eq!(&value[18..26], &[0; 8], "reserved");
        assert_eq!(&value[26..], &[2; 24]);

        let mut success = vec![9];
        success.extend_from_slice(b"S=407A5589115FD0D6209F510FE9C04566932CDA56");
        let (ident, response) = ms::parse_chap2_success(&success).unwrap();
        assert_eq!(ident, 9);
        assert_eq!(response[0], 0x40);
        assert_eq!(response[19], 0x56);
        success.extend_from_slice(b" M=welcome");
        assert!(ms::parse_chap2_success(&success).is_some());
        assert_eq!(ms::parse_chap2_success(&success[..40]), None);
        assert_eq!(ms::parse_chap2_success(b"\x09S=zz"), None);
        let mut not_hex = vec![9];
        not_hex.extend_from_slice(b"S=407A5589115FD0D6209F510FE9C04566932CDAZZ");
        assert_eq!(ms::parse_chap2_success(&not_hex), None);
        assert_eq!(ms::parse_chap2_success(&[]), None);

        assert_eq!(
            ms::parse_chap_error(b"\x05E=691 R=0 C=00 V=3 M=denied"),
            Some((5, Some(691)))
        );
        assert_eq!(ms::parse_chap_error(b"\x05garbage"), Some((5, None)));
        assert_eq!(ms::parse_chap_error(&[]), None);
    }

    #[test]
    fn enumerated_values() {
        assert_eq!(AcctStatusType::InterimUpdate.value(), 3);
        assert_eq!(
            AcctStatusType::from_value(7),
            Some(AcctStatusType::AccountingOn)
        );
        assert_eq!(AcctTerminateCause::NasReboot.value(), 11);
        assert_eq!(
            AcctTerminateCause::from_value(6).unwrap().as_str(),
            "admin_reset"
        );
        assert_eq!(ErrorCause::SessionContextNotFound.value(), 503);
        assert_eq!(ErrorCause::from_value(999), None);
    }

    #[test]
    fn set_replaces_every_attribute_of_the_type() {
        let mut attrs = Attributes::new();
        attrs.push_u32(ACCT_DELAY_TIME, 1);
        attrs.push_string(USER_NAME, "a").unwrap();
        attrs.push_u32(ACCT_DELAY_TIME, 2);
        attrs.set_u32(ACCT_DELAY_TIME, 9);
        assert_eq!(attrs.get_all(ACCT_DELAY_TIME).count(), 1);
        assert_eq!(attrs.iter().next().unwrap().kind(), ACCT_DELAY_TIME);
        assert_eq!(attrs.u32(ACCT_DELAY_TIME), Some(9));
        attrs.set_u32(SESSION_TIMEOUT, 5);
        assert_eq!(attrs.u32(SESSION_TIMEOUT), Some(5));
        assert_eq!(attrs.remove(ACCT_DELAY_TIME), 1);
        assert_eq!(attrs.len(), 2);
    }

    #[test]
    fn debug_hides_secrets() {
        let mut attrs = Attributes::new();
        attrs.push(USER_PASSWORD, b"hunter2hunter2xx").unwrap();
        attrs.push_string(USER_NAME, "nemo").unwrap();
        attrs.push(CLASS, &[1, 2]).unwrap();
        attrs.push(200, &[0xab]).unwrap();
        let shown = format!("{attrs:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("User-Password(16 octets)"), "{shown}");
        assert!(shown.contains("User-Name(\"nemo\")"), "{shown}");
        assert!(shown.contains("Attr-200(0xab)"), "{shown}");
    }
}
