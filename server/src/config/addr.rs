//! Address types of the configuration: IPv4 ranges and IPv6 prefixes.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
        if text.contains('/') {
            let net: Ipv4Net = text
                .parse()
                .map_err(|_| format!("{text} is not a valid prefix"))?;
            if net != net.trunc() {
                return Err(format!(
                    "{text} has host bits set (did you mean {}?)",
                    net.trunc()
                ));
            }
            // Without the network and broadcast addresses, which /31 and
            // /32 do not have.
            match (net.hosts().next(), net.hosts().last()) {
                (Some(first), Some(last)) => Ok(Ipv4Range {
                    first,
                    last,
                    text: text.into(),
                }),
                _ => unreachable!("every prefix has a host"),
            }
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

/// Written back as it was read (a prefix or a range).
impl Serialize for Ipv4Range {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
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
        let net: Ipv6Net = s
            .trim()
            .parse()
            .map_err(|_| format!("{s} is not a valid IPv6 prefix (fd99::/48)"))?;
        if net != net.trunc() {
            return Err(format!(
                "{s} has host bits set (did you mean {}?)",
                net.trunc()
            ));
        }
        Ok(Ipv6Prefix {
            addr: net.addr(),
            len: net.prefix_len(),
        })
    }
}

impl Serialize for Ipv6Prefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv6Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
