//! Routes behind a client: RADIUS Framed-Route ([RFC 2865] 5.22), as the
//! value an authenticator hands out with a session
//! ([`crate::proto::auth::SessionPolicy::routes`]) and the prefixes the
//! server accepts traffic from ([`crate::proto::session::Session::set_ipv4_routes`]).
//!
//! The text form, per RFC 2865 5.22: "a destination prefix in dotted quad
//! form optionally followed by a slash and a decimal length specifier ...
//! followed by a space, a gateway address in dotted quad form, a space,
//! and one or more metrics separated by spaces", e.g.
//! `"192.168.1.0/24 192.168.1.1 1"`. [`FramedRoute::parse`] reads:
//!
//! * `PREFIX[/LEN] [GATEWAY [METRIC ...]]`: the RFC's form, the gateway and
//!   metrics optional (FreeRADIUS users write `"192.0.2.0/24"` alone);
//! * `PREFIX/MASK` and `PREFIX MASK [GATEWAY [METRIC ...]]`: a dotted
//!   netmask instead of a length (accel-ppp reads the first, Cisco-style
//!   configurations write the second). The second token counts as a mask
//!   when the prefix has no `/`, it is a contiguous netmask, and it is not
//!   `0.0.0.0` (which is the RFC's "the user's address" gateway);
//! * without a length or mask, the classful length the RFC prescribes (A /8,
//!   B /16, C /24) when the address is that class's network address, and
//!   otherwise a host route (/32), which is what `ip route` makes of a bare
//!   address and what accel-ppp does (`"10.0.0.0"` is 10.0.0.0/8;
//!   `"10.1.2.3"` is 10.1.2.3/32, never 10.0.0.0/8).
//!
//! A gateway of `0.0.0.0` means "the user's address" (RFC 2865 5.22), and
//! is read as no gateway. Only the first metric is kept (the kernel route
//! has one priority); the rest must still be numbers. A prefix with bits
//! set beyond its length (`192.0.2.1/24`) is malformed, not rounded: the
//! operator meant something and sstpd cannot tell what.
//!
//! Sans-IO and `std`-only: the RADIUS attribute mapping parses with it,
//! the fuzz targets can reach it, and the core's anti-spoofing check uses
//! [`Ipv4Prefix`].
//!
//! [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 prefix with no bits set beyond its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    addr: Ipv4Addr,
    len: u8,
}

impl Ipv4Prefix {
    /// `addr/len`; refuses a length above 32 and bits set beyond it.
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Ipv4Prefix, FramedRouteError> {
        if len > 32 {
            return Err(FramedRouteError::BadLength);
        }
        if u32::from(addr) & !mask(len) != 0 {
            return Err(FramedRouteError::HostBitsSet);
        }
        Ok(Ipv4Prefix { addr, len })
    }

    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0..=32.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether this is the default route (length 0).
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// The netmask as a number (`/24` is `0xffff_ff00`).
    pub fn mask(&self) -> u32 {
        mask(self.len)
    }

    /// The first address.
    pub fn first(&self) -> Ipv4Addr {
        self.addr
    }

    /// The last address.
    pub fn last(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// Whether `addr` is in this prefix.
    #[inline]
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == u32::from(self.addr)
    }

    /// Whether the two prefixes share an address (for prefixes: one holds
    /// the other).
    pub fn overlaps(&self, other: &Ipv4Prefix) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// Whether this prefix shares an address with `first..=last`.
    pub fn overlaps_range(&self, first: Ipv4Addr, last: Ipv4Addr) -> bool {
        self.first() <= last && first <= self.last()
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The netmask of a prefix length (0..=32).
fn mask(len: u8) -> u32 {
    match len {
        0 => 0,
        len => u32::MAX << (32 - u32::from(len.min(32))),
    }
}

/// One Framed-Route ([RFC 2865] 5.22): a prefix routed to the session,
/// with the gateway and metric the attribute gave.
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FramedRoute {
    /// The destination prefix.
    pub prefix: Ipv4Prefix,
    /// The gateway the attribute named; `None` for none or `0.0.0.0`
    /// ("the IP address of the user", RFC 2865 5.22).
    pub gateway: Option<Ipv4Addr>,
    /// The first metric (the kernel route's priority); 0 without one.
    pub metric: u32,
}

impl FramedRoute {
    /// A route to `prefix` via the user's address, metric 0.
    pub fn new(prefix: Ipv4Prefix) -> FramedRoute {
        FramedRoute {
            prefix,
            gateway: None,
            metric: 0,
        }
    }

    /// Parses a Framed-Route value in any of the forms the module
    /// documentation lists.
    pub fn parse(text: &str) -> Result<FramedRoute, FramedRouteError> {
        if text.len() > MAX_TEXT {
            return Err(FramedRouteError::TooLong);
        }
        let mut tokens = text.split_ascii_whitespace().peekable();
        let first = tokens.next().ok_or(FramedRouteError::Empty)?;
        let prefix = match first.split_once('/') {
            Some((addr, len)) => {
                let addr = parse_addr(addr, FramedRouteError::BadPrefix)?;
                let len = if len.contains('.') {
                    mask_len(parse_addr(len, FramedRouteError::BadMask)?)
                        .ok_or(FramedRouteError::BadMask)?
                } else {
                    parse_len(len)?
                };
                Ipv4Prefix::new(addr, len)?
            }
            None => {
                let addr = parse_addr(first, FramedRouteError::BadPrefix)?;
                let netmask = tokens
                    .peek()
                    .and_then(|t| t.parse::<Ipv4Addr>().ok())
                    .filter(|m| !m.is_unspecified())
                    .and_then(mask_len);
                match netmask {
                    Some(len) => {
                        tokens.next();
                        Ipv4Prefix::new(addr, len)?
                    }
                    None => Ipv4Prefix::new(addr, classful_len(addr))
                        .or_else(|_| Ipv4Prefix::new(addr, 32))?,
                }
            }
        };
        let gateway = match tokens.next() {
            None => None,
            Some(t) => Some(parse_addr(t, FramedRouteError::BadGateway)?),
        }
        .filter(|g| !g.is_unspecified());
        let mut metric = 0;
        for (index, token) in tokens.enumerate() {
            let value: u32 = token.parse().map_err(|_| FramedRouteError::BadMetric)?;
            if index == 0 {
                metric = value;
            }
        }
        Ok(FramedRoute {
            prefix,
            gateway,
            metric,
        })
    }
}

impl FromStr for FramedRoute {
    type Err = FramedRouteError;

    fn from_str(text: &str) -> Result<FramedRoute, FramedRouteError> {
        FramedRoute::parse(text)
    }
}

impl fmt::Display for FramedRoute {
    /// The RFC 2865 5.22 form: `prefix/len gateway metric`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.prefix,
            self.gateway.unwrap_or(Ipv4Addr::UNSPECIFIED),
            self.metric
        )
    }
}

/// The longest Framed-Route text read: a RADIUS attribute carries at most
/// 253 octets.
const MAX_TEXT: usize = 253;

fn parse_addr(text: &str, error: FramedRouteError) -> Result<Ipv4Addr, FramedRouteError> {
    text.parse().map_err(|_| error)
}

fn parse_len(text: &str) -> Result<u8, FramedRouteError> {
    // Digits only: `u8::from_str` would take a leading '+'.
    if text.is_empty() || text.len() > 2 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FramedRouteError::BadLength);
    }
    text.parse().map_err(|_| FramedRouteError::BadLength)
}

/// The length of a contiguous netmask (`255.255.255.0` is 24).
fn mask_len(netmask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(netmask);
    let len = bits.leading_ones();
    (bits.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// The classful length of RFC 2865 5.22 ("8 bits for class A prefixes, 16
/// bits for class B prefixes, and 24 bits for class C prefixes"); class D
/// and E addresses have none and read as host routes; `0.0.0.0` is the
/// default route.
fn classful_len(addr: Ipv4Addr) -> u8 {
    if addr.is_unspecified() {
        // "0.0.0.0" alone, or "0.0.0.0 0.0.0.0": the default route.
        return 0;
    }
    match addr.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        192..=223 => 24,
        _ => 32,
    }
}

/// Why a Framed-Route value could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FramedRouteError {
    /// Nothing but spaces.
    Empty,
    /// Longer than an attribute can be.
    TooLong,
    /// Not UTF-8 text.
    NotText,
    /// The destination is not a dotted-quad address.
    BadPrefix,
    /// The length after `/` is not 0..=32.
    BadLength,
    /// The netmask is not a contiguous one.
    BadMask,
    /// The prefix has bits set beyond its length (`192.0.2.1/24`).
    HostBitsSet,
    /// The gateway is not a dotted-quad address.
    BadGateway,
    /// A metric is not a number 0..=4294967295.
    BadMetric,
}

impl FramedRouteError {
    /// Short snake_case name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FramedRouteError::Empty => "empty",
            FramedRouteError::TooLong => "too_long",
            FramedRouteError::NotText => "not_text",
            FramedRouteError::BadPrefix => "bad_prefix",
            FramedRouteError::BadLength => "bad_length",
            FramedRouteError::BadMask => "bad_mask",
            FramedRouteError::HostBitsSet => "host_bits_set",
            FramedRouteError::BadGateway => "bad_gateway",
            FramedRouteError::BadMetric => "bad_metric",
        }
    }
}

impl fmt::Display for FramedRouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for FramedRouteError {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn route(text: &str) -> FramedRoute {
        FramedRoute::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn prefix(addr: &str, len: u8) -> Ipv4Prefix {
        Ipv4Prefix::new(addr.parse().unwrap(), len).unwrap()
    }

    #[test]
    fn the_rfc_2865_forms() {
        // RFC 2865 5.22's own examples.
        assert_eq!(
            route("192.168.1.0/24 192.168.1.1 1"),
            FramedRoute {
                prefix: prefix("192.168.1.0", 24),
                gateway: Some("192.168.1.1".parse().unwrap()),
                metric: 1,
            }
        );
        assert_eq!(
            route("192.168.1.0 192.168.1.1 1").prefix,
            prefix("192.168.1.0", 24),
            "classful: C is /24"
        );
        // 0.0.0.0: the user's address.
        assert_eq!(
            route("192.0.2.0/24 0.0.0.0 1"),
            FramedRoute {
                prefix: prefix("192.0.2.0", 24),
                gateway: None,
                metric: 1,
            }
        );
        // Several metrics: the first is kept.
        assert_eq!(route("192.0.2.0/24 0.0.0.0 7 3 9").metric, 7);
        // Extra spaces and tabs are separators.
        assert_eq!(
            route("  198.51.100.0/25\t0.0.0.0   5 "),
            FramedRoute {
                prefix: prefix("198.51.100.0", 25),
                gateway: None,
                metric: 5,
            }
        );
    }

    #[test]
    fn the_forms_freeradius_users_write() {
        assert_eq!(
            route("192.0.2.0/24"),
            FramedRoute::new(prefix("192.0.2.0", 24))
        );
        assert_eq!(route("192.0.2.0/24 0.0.0.0").metric, 0);
        assert_eq!(
            route("192.0.2.0/255.255.255.0").prefix,
            prefix("192.0.2.0", 24)
        );
        assert_eq!(
            route("192.0.2.0 255.255.255.128 0.0.0.0 3"),
            FramedRoute {
                prefix: prefix("192.0.2.0", 25),
                gateway: None,
                metric: 3,
            }
        );
        assert_eq!(
            route("192.0.2.0 255.255.255.0").prefix,
            prefix("192.0.2.0", 24)
        );
        assert_eq!(route("203.0.113.9/32").prefix, prefix("203.0.113.9", 32));
    }

    #[test]
    fn a_bare_address_is_classful_only_when_it_is_the_class_network() {
        assert_eq!(route("10.0.0.0").prefix, prefix("10.0.0.0", 8));
        assert_eq!(route("172.16.0.0").prefix, prefix("172.16.0.0", 16));
        assert_eq!(route("192.0.2.0").prefix, prefix("192.0.2.0", 24));
        // Not the network of its class: a host route, never the class.
        assert_eq!(route("10.1.2.3").prefix, prefix("10.1.2.3", 32));
        assert_eq!(route("192.0.2.7 0.0.0.0 1").prefix, prefix("192.0.2.7", 32));
        // 0.0.0.0 alone, or with the Cisco-style mask: the default route.
        assert!(route("0.0.0.0").prefix.is_default());
        assert!(route("0.0.0.0 0.0.0.0 1").prefix.is_default());
        // Class D/E have no class length.
        assert_eq!(route("224.0.0.0").prefix, prefix("224.0.0.0", 32));
        // The second token is a gateway unless it is a netmask.
        let r = route("10.0.0.0 10.0.0.1 2");
        assert_eq!(r.prefix, prefix("10.0.0.0", 8));
        assert_eq!(r.gateway, Some("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn malformed_routes_say_why() {
        let cases = [
            ("", FramedRouteError::Empty),
            ("   ", FramedRouteError::Empty),
            ("bogus", FramedRouteError::BadPrefix),
            ("192.0.2/24", FramedRouteError::BadPrefix),
            ("192.0.2.0/33", FramedRouteError::BadLength),
            ("192.0.2.0/", FramedRouteError::BadLength),
            ("192.0.2.0/+8", FramedRouteError::BadLength),
            ("192.0.2.0/024", FramedRouteError::BadLength),
            ("192.0.2.0/255.0.255.0", FramedRouteError::BadMask),
            ("192.0.2.1/24", FramedRouteError::HostBitsSet),
            ("192.0.2.1 255.255.255.0", FramedRouteError::HostBitsSet),
            ("192.0.2.0/24 gw", FramedRouteError::BadGateway),
            ("192.0.2.0/24 0.0.0.0 x", FramedRouteError::BadMetric),
            ("192.0.2.0/24 0.0.0.0 1 -2", FramedRouteError::BadMetric),
            (
                "192.0.2.0/24 0.0.0.0 4294967296",
                FramedRouteError::BadMetric,
            ),
            ("2001:db8::/32", FramedRouteError::BadPrefix),
        ];
        for (text, error) in cases {
            assert_eq!(FramedRoute::parse(text), Err(error), "{text:?}");
        }
        let long = format!("192.0.2.0/24 0.0.0.0 1{}", " 1".repeat(200));
        assert_eq!(FramedRoute::parse(&long), Err(FramedRouteError::TooLong));
        assert_eq!(route("192.0.2.0/24 0.0.0.0 4294967295").metric, u32::MAX);
    }

    #[test]
    fn prefixes_contain_and_overlap() {
        let p = prefix("192.0.2.0", 24);
        assert!(p.contains("192.0.2.255".parse().unwrap()));
        assert!(!p.contains("192.0.3.0".parse().unwrap()));
        assert_eq!(p.last(), "192.0.2.255".parse::<Ipv4Addr>().unwrap());
        assert!(p.overlaps(&prefix("192.0.2.128", 25)));
        assert!(prefix("192.0.0.0", 16).overlaps(&p));
        assert!(!p.overlaps(&prefix("192.0.3.0", 24)));
        let all = prefix("0.0.0.0", 0);
        assert!(all.is_default() && all.contains(Ipv4Addr::BROADCAST));
        assert!(all.overlaps(&p));
        assert!(p.overlaps_range("192.0.2.200".parse().unwrap(), "192.0.9.0".parse().unwrap()));
        assert!(!p.overlaps_range("192.0.3.0".parse().unwrap(), "192.0.9.0".parse().unwrap()));
        assert_eq!(
            Ipv4Prefix::new("1.2.3.4".parse().unwrap(), 33),
            Err(FramedRouteError::BadLength)
        );
        assert_eq!(p.to_string(), "192.0.2.0/24");
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "[0-9./ a-z:+-]{0,64}") {
            let _ = FramedRoute::parse(&text);
        }

        #[test]
        fn display_parses_back(addr in any::<u32>(), len in 0u8..=32, gw in any::<u32>(), metric in any::<u32>()) {
            let prefix = Ipv4Prefix::new(Ipv4Addr::from(addr & mask(len)), len).unwrap();
            let gateway = Some(Ipv4Addr::from(gw)).filter(|g| !g.is_unspecified());
            let route = FramedRoute { prefix, gateway, metric };
            prop_assert_eq!(FramedRoute::parse(&route.to_string()), Ok(route));
        }
    }
}
