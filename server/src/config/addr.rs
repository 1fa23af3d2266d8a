//! Address types of the configuration: IPv4 ranges and IPv6 prefixes.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// An inclusive range of IPv4 addresses, written as a prefix or `first-last`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Range {
    pub(super) first: Ipv4Addr,
    pub(super) last: Ipv4Addr,
    /// As written, for messages.
    pub(super) text: String,
}

/// The largest pool accepted (a /8).
pub const MAX_POOL_ADDRESSES: u64 = 1 << 24;

impl Ipv4Range {
    /// The range `first..=last`; `None` when `last < first`.
    pub fn new(first: Ipv4Addr, last: Ipv4Addr) -> Option<Self> {
        (first <= last).then(|| Ipv4Range {
            first,
            last,
            text: format!("{first}-{last}"),
        })
    }

    pub fn first(&self) -> Ipv4Addr {
        self.first
    }

    pub fn last(&self) -> Ipv4Addr {
        self.last
    }

    /// Number of addresses in the range.
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.last)) - u64::from(u32::from(self.first)) + 1
    }

    /// Never true: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&addr)
    }
}

impl fmt::Display for Ipv4Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Ipv4Range {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        if let Some((addr, len)) = text.split_once('/') {
            let addr: Ipv4Addr = addr
                .parse()
                .map_err(|_| format!("{text} is not a valid prefix"))?;
            let len: u32 = match len.parse() {
                Ok(len) if len <= 32 => len,
                _ => return Err(format!("{text} is not a valid prefix")),
            };
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            let network = u32::from(addr) & mask;
            if network != u32::from(addr) {
                return Err(format!(
                    "{text} has host bits set (did you mean {}/{len}?)",
                    Ipv4Addr::from(network)
                ));
            }
            let broadcast = network | !mask;
            // /31 and /32 have no network or broadcast address to skip.
            let (first, last) = if len <= 30 {
                (network + 1, broadcast - 1)
            } else {
                (network, broadcast)
            };
            Ok(Ipv4Range {
                first: first.into(),
                last: last.into(),
                text: text.into(),
            })
        } else if let Some((first, last)) = text.split_once('-') {
            let parse = |s: &str| {
                s.trim().parse::<Ipv4Addr>().map_err(|_| {
                    format!("{text} is not a range of two IPv4 addresses (10.99.0.10-10.99.0.250)")
                })
            };
            let (first, last) = (parse(first)?, parse(last)?);
            if last < first {
                return Err(format!("{text} ends before it starts"));
            }
            Ok(Ipv4Range {
                first,
                last,
                text: text.into(),
            })
        } else {
            Err(format!(
                "{text:?} is neither a prefix (10.99.0.0/24) nor a range (10.99.0.10-10.99.0.250)"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for Ipv4Range {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An IPv6 prefix such as `fd99::/48`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Prefix {
    pub addr: Ipv6Addr,
    pub len: u8,
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv6Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let invalid = || format!("{s} is not a valid IPv6 prefix (fd99::/48)");
        let (addr, len) = s.trim().split_once('/').ok_or_else(invalid)?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| invalid())?;
        let len: u8 = match len.parse() {
            Ok(len) if len <= 128 => len,
            _ => return Err(invalid()),
        };
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        let network = u128::from(addr) & mask;
        if network != u128::from(addr) {
            return Err(format!(
                "{s} has host bits set (did you mean {}/{len}?)",
                Ipv6Addr::from(network)
            ));
        }
        Ok(Ipv6Prefix { addr, len })
    }
}

impl<'de> Deserialize<'de> for Ipv6Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
