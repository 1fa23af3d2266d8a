//! The little IPv6 Neighbor Discovery a PPP server needs ([RFC 4861] 4.1,
//! 4.2, 6.2.6; [RFC 5072] 5): IPv6CP only agrees on interface identifiers,
//! so the server announces the session's /64 in a Router Advertisement and
//! the client forms its global address by SLAAC. The server answers Router
//! Solicitations itself instead of passing them to the TUN device.
//!
//! [RFC 4861]: https://www.rfc-editor.org/rfc/rfc4861
//! [RFC 5072]: https://www.rfc-editor.org/rfc/rfc5072
//! [RFC 8106]: https://www.rfc-editor.org/rfc/rfc8106

use std::net::Ipv6Addr;

const IPV6_HEADER_LEN: usize = 40;
const NEXT_HEADER_ICMPV6: u8 = 58;
const ICMPV6_ROUTER_SOLICITATION: u8 = 133;
const ICMPV6_ROUTER_ADVERTISEMENT: u8 = 134;
const OPTION_PREFIX_INFORMATION: u8 = 3;
const OPTION_MTU: u8 = 5;
const OPTION_RDNSS: u8 = 25;

/// `ff02::1`, all nodes.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The link-local address `fe80::<ifid>` ([RFC 5072] 5).
pub fn link_local(ifid: u64) -> Ipv6Addr {
    Ipv6Addr::from((0xfe80u128 << 112) | u128::from(ifid))
}

/// What a Router Advertisement announces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterAdvertisement {
    /// The session's prefix (on-link, autonomous).
    pub prefix: Ipv6Addr,
    /// Its length in bits (64 for SLAAC).
    pub prefix_len: u8,
    /// Router lifetime in seconds; 0 = not a default router.
    pub router_lifetime: u16,
    /// Link MTU to announce, if any.
    pub mtu: Option<u32>,
    /// Recursive DNS servers ([RFC 8106]).
    pub dns: Vec<Ipv6Addr>,
}

/// Valid and preferred lifetime of the announced prefix (seconds).
const PREFIX_LIFETIME: u32 = 86_400;
/// Lifetime of the announced DNS servers (seconds).
const RDNSS_LIFETIME: u32 = 3_600;

impl RouterAdvertisement {
    /// Appends the whole IPv6 packet (header and ICMPv6 message) from
    /// `source` (our link-local address) to `destination`.
    pub fn encode(&self, source: Ipv6Addr, destination: Ipv6Addr, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0x60, 0, 0, 0]);
        out.extend_from_slice(&[0, 0]); // payload length, below
        out.push(NEXT_HEADER_ICMPV6);
        out.push(255); // hop limit ([RFC 4861] 4.2)
        out.extend_from_slice(&source.octets());
        out.extend_from_slice(&destination.octets());
        let icmp = out.len();
        out.extend_from_slice(&[ICMPV6_ROUTER_ADVERTISEMENT, 0, 0, 0]);
        out.push(64); // Cur Hop Limit
        out.push(0); // M=0, O=0: addresses by SLAAC
        out.extend_from_slice(&self.router_lifetime.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes()); // Reachable Time
        out.extend_from_slice(&0u32.to_be_bytes()); // Retrans Timer
                                                    // Prefix Information ([RFC 4861] 4.6.2): L and A set.
        out.extend_from_slice(&[OPTION_PREFIX_INFORMATION, 4, self.prefix_len, 0xc0]);
        out.extend_from_slice(&PREFIX_LIFETIME.to_be_bytes());
        out.extend_from_slice(&PREFIX_LIFETIME.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.prefix.octets());
        if let Some(mtu) = self.mtu {
            out.extend_from_slice(&[OPTION_MTU, 1, 0, 0]);
            out.extend_from_slice(&mtu.to_be_bytes());
        }
        if !self.dns.is_empty() {
            out.extend_from_slice(&[OPTION_RDNSS, (1 + 2 * self.dns.len()) as u8, 0, 0]);
            out.extend_from_slice(&RDNSS_LIFETIME.to_be_bytes());
            for dns in &self.dns {
                out.extend_from_slice(&dns.octets());
            }
        }
        let payload_len = (out.len() - icmp) as u16;
        out[start + 4..start + 6].copy_from_slice(&payload_len.to_be_bytes());
        let checksum = icmpv6_checksum(source, destination, &out[icmp..]);
        out[icmp + 2..icmp + 4].copy_from_slice(&checksum.to_be_bytes());
    }

    /// Parses a Router Advertisement (a whole IPv6 packet); the first
    /// autonomous prefix is taken. `None` for anything else.
    pub fn parse(packet: &[u8]) -> Option<RouterAdvertisement> {
        let icmp = icmpv6_message(packet)?;
        if icmp.first() != Some(&ICMPV6_ROUTER_ADVERTISEMENT) || icmp.len() < 16 {
            return None;
        }
        let router_lifetime = u16::from_be_bytes([icmp[6], icmp[7]]);
        let mut options = &icmp[16..];
        let mut ra = RouterAdvertisement {
            prefix: Ipv6Addr::UNSPECIFIED,
            prefix_len: 0,
            router_lifetime,
            mtu: None,
            dns: Vec::new(),
        };
        let mut have_prefix = false;
        while options.len() >= 8 {
            let len = usize::from(options[1]) * 8;
            if len == 0 || len > options.len() {
                return None;
            }
            let option = &options[..len];
            match option[0] {
                OPTION_PREFIX_INFORMATION if len == 32 && !have_prefix && option[3] & 0x40 != 0 => {
                    ra.prefix_len = option[2];
                    ra.prefix = Ipv6Addr::from(<[u8; 16]>::try_from(&option[16..32]).ok()?);
                    have_prefix = true;
                }
                OPTION_MTU if len == 8 => {
                    ra.mtu = Some(u32::from_be_bytes(option[4..8].try_into().ok()?));
                }
                OPTION_RDNSS if len >= 24 => {
                    for chunk in option[8..].chunks_exact(16) {
                        ra.dns
                            .push(Ipv6Addr::from(<[u8; 16]>::try_from(chunk).ok()?));
                    }
                }
                _ => {}
            }
            options = &options[len..];
        }
        have_prefix.then_some(ra)
    }
}

/// `ff02::2`, all routers.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// Appends a Router Solicitation from `source` (the client's link-local
/// address) to all routers ([RFC 4861] 4.1: hop limit 255, no options,
/// as the link has no link-layer addresses).
pub fn encode_router_solicitation(source: Ipv6Addr, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0x60, 0, 0, 0, 0, 8, NEXT_HEADER_ICMPV6, 255]);
    out.extend_from_slice(&source.octets());
    out.extend_from_slice(&ALL_ROUTERS.octets());
    let icmp = out.len();
    out.extend_from_slice(&[ICMPV6_ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0]);
    let checksum = icmpv6_checksum(source, ALL_ROUTERS, &out[icmp..]);
    out[icmp + 2..icmp + 4].copy_from_slice(&checksum.to_be_bytes());
    debug_assert_eq!(out.len() - start, IPV6_HEADER_LEN + 8);
}

/// Whether `packet` is a Router Solicitation ([RFC 4861] 4.1, with the
/// validity checks of 6.1.1 that matter here: hop limit 255, code 0).
pub fn is_router_solicitation(packet: &[u8]) -> bool {
    let Some(icmp) = icmpv6_message(packet) else {
        return false;
    };
    packet[7] == 255 && icmp.len() >= 8 && icmp[0] == ICMPV6_ROUTER_SOLICITATION && icmp[1] == 0
}

/// The ICMPv6 message of an IPv6 packet without extension headers.
fn icmpv6_message(packet: &[u8]) -> Option<&[u8]> {
    if packet.len() < IPV6_HEADER_LEN + 4 || packet[0] >> 4 != 6 || packet[6] != NEXT_HEADER_ICMPV6
    {
        return None;
    }
    let payload_len = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
    packet.get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + payload_len)
}

/// The ICMPv6 checksum over the pseudo-header ([RFC 8200] 8.1) and
/// `message` (whose checksum field must be zero when computing).
///
/// [RFC 8200]: https://www.rfc-editor.org/rfc/rfc8200
pub fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    };
    add(&source.octets());
    add(&destination.octets());
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ra() -> RouterAdvertisement {
        RouterAdvertisement {
            prefix: "fd99:0:0:7::".parse().unwrap(),
            prefix_len: 64,
            router_lifetime: 1800,
            mtu: Some(1400),
            dns: vec!["fd99::53".parse().unwrap()],
        }
    }

    #[test]
    fn router_advertisement_round_trips_with_a_valid_checksum() {
        let src = link_local(0x0200_5eff_fe00_0001);
        let mut packet = Vec::new();
        ra().encode(src, ALL_NODES, &mut packet);
        // 40 header + 16 RA + 32 prefix + 8 MTU + 24 RDNSS.
        assert_eq!(packet.len(), 40 + 16 + 32 + 8 + 24);
        assert_eq!(
            u16::from_be_bytes([packet[4], packet[5]]) as usize,
            packet.len() - 40
        );
        assert_eq!(packet[7], 255, "hop limit");
        // A correct checksum makes the sum over the message verify to 0.
        assert_eq!(icmpv6_checksum(src, ALL_NODES, &packet[40..]), 0);
        assert_eq!(RouterAdvertisement::parse(&packet), Some(ra()));
    }

    #[test]
    fn router_solicitation_is_recognised_and_other_packets_are_not() {
        let src = link_local(7);
        let dst: Ipv6Addr = "ff02::2".parse().unwrap();
        let mut rs = vec![0x60, 0, 0, 0, 0, 8, NEXT_HEADER_ICMPV6, 255];
        rs.extend_from_slice(&src.octets());
        rs.extend_from_slice(&dst.octets());
        rs.extend_from_slice(&[ICMPV6_ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0]);
        assert!(is_router_solicitation(&rs));
        let mut wrong_hops = rs.clone();
        wrong_hops[7] = 64;
        assert!(!is_router_solicitation(&wrong_hops));
        let mut echo = rs.clone();
        echo[40] = 128;
        assert!(!is_router_solicitation(&echo));
        assert!(!is_router_solicitation(&rs[..44]), "truncated");
        assert!(!is_router_solicitation(&[0x45; 60]), "IPv4");
        assert_eq!(RouterAdvertisement::parse(&rs), None);
    }

    #[test]
    fn malformed_advertisements_are_refused_without_panicking() {
        let mut packet = Vec::new();
        ra().encode(link_local(1), ALL_NODES, &mut packet);
        for cut in 0..packet.len() {
            let mut p = packet[..cut].to_vec();
            if p.len() >= 6 {
                let len = (p.len().saturating_sub(40)) as u16;
                p[4..6].copy_from_slice(&len.to_be_bytes());
            }
            let _ = RouterAdvertisement::parse(&p);
        }
        let mut zero_len_option = packet.clone();
        zero_len_option[40 + 16 + 1] = 0;
        assert_eq!(RouterAdvertisement::parse(&zero_len_option), None);
    }

    #[test]
    fn encoded_router_solicitations_are_recognised_and_checksummed() {
        let src = link_local(0x42);
        let mut rs = Vec::new();
        encode_router_solicitation(src, &mut rs);
        assert!(is_router_solicitation(&rs));
        assert_eq!(rs[24..40], ALL_ROUTERS.octets());
        assert_eq!(icmpv6_checksum(src, ALL_ROUTERS, &rs[40..]), 0);
    }

    #[test]
    fn link_local_addresses_carry_the_interface_identifier() {
        assert_eq!(
            link_local(0x1234_5678_9abc_def0),
            "fe80::1234:5678:9abc:def0".parse::<Ipv6Addr>().unwrap()
        );
    }
}
