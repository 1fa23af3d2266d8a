//! The IPv6 Control Protocol ([RFC 5072] 3, 4): Interface-Identifier
//! negotiation, the same in both roles. IPv6-Compression-Protocol is
//! Configure-Rejected.
//!
//! Identifiers are random (from the link's RNG), non-zero, with the "u"
//! bit clear as [RFC 5072] 4.1 requires of random identifiers.
//!
//! [RFC 5072]: https://www.rfc-editor.org/rfc/rfc5072

use rand::RngCore;

use super::frame::PROTO_IPV6CP;
use super::fsm::{NegotiationFailure, OptionHandler, Verdict};
use super::packet::{data_u64, write_option, Options};

/// Interface-Identifier ([RFC 5072] 4.1).
pub const OPT_INTERFACE_IDENTIFIER: u8 = 1;
/// IPv6-Compression-Protocol ([RFC 5072] 4.2).
pub const OPT_IPV6_COMPRESSION: u8 = 2;

/// The universal/local bit of a modified EUI-64 identifier ([RFC 4291]
/// 2.5.1), cleared for random identifiers.
const UNIVERSAL_BIT: u64 = 0x0200_0000_0000_0000;

/// IPv6CP settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6cpConfig {
    /// Negotiate IPv6CP at all. Default on.
    pub enabled: bool,
}

impl Default for Ipv6cpConfig {
    fn default() -> Self {
        Ipv6cpConfig { enabled: true }
    }
}

/// The IPv6 configuration of an opened link: the interface identifiers
/// that form the link-local addresses `fe80::/64 + identifier`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv6Params {
    /// This end's Interface-Identifier ([RFC 5072] 4.1).
    pub local_ifid: u64,
    /// 0 when the peer did not negotiate one.
    pub peer_ifid: u64,
}

/// IPv6CP's option handling.
#[derive(Debug, Default)]
pub struct Ipv6cp {
    local_ifid: u64,
    request_ifid: bool,
    /// The identifier we last suggested to the peer in a Configure-Nak.
    last_nak: Option<u64>,
    /// We already asked once for an identifier the peer left out.
    missing_naked: bool,
    peer_ifid: Option<u64>,
}

/// A random identifier: non-zero, "u" bit clear, different from `avoid`.
fn fresh_ifid(rng: &mut dyn RngCore, avoid: u64) -> u64 {
    (0..16)
        .map(|_| rng.next_u64() & !UNIVERSAL_BIT)
        .find(|&ifid| ifid != 0 && ifid != avoid)
        .unwrap_or(if avoid == 1 { 2 } else { 1 })
}

impl Ipv6cp {
    /// IPv6CP with no identifier chosen yet (chosen when negotiation
    /// starts).
    pub fn new() -> Self {
        Ipv6cp::default()
    }

    /// The negotiated identifiers, valid once Opened.
    pub fn params(&self) -> Ipv6Params {
        Ipv6Params {
            local_ifid: self.local_ifid,
            peer_ifid: self.peer_ifid.unwrap_or(0),
        }
    }
}

impl OptionHandler for Ipv6cp {
    const PROTOCOL: u16 = PROTO_IPV6CP;

    fn start_negotiation(&mut self, rng: &mut dyn RngCore) {
        if self.local_ifid == 0 {
            self.local_ifid = fresh_ifid(rng, 0);
        }
        self.request_ifid = true;
        self.last_nak = None;
        self.missing_naked = false;
        self.peer_ifid = None;
    }

    fn build_request(&mut self, out: &mut Vec<u8>) {
        if self.request_ifid {
            write_option(
                OPT_INTERFACE_IDENTIFIER,
                &self.local_ifid.to_be_bytes(),
                out,
            );
        }
    }

    fn judge_request(
        &mut self,
        options: Options<'_>,
        verdict: &mut Verdict,
        rng: &mut dyn RngCore,
    ) {
        self.peer_ifid = None;
        let mut identifier_seen = false;
        for option in options {
            match (option.kind, data_u64(option.data)) {
                (OPT_INTERFACE_IDENTIFIER, Some(ifid)) => {
                    identifier_seen = true;
                    if ifid == 0 || ifid == self.local_ifid {
                        // [RFC 5072] 4.1: zero, or equal to ours: Nak with
                        // a different non-zero identifier for the peer.
                        let suggestion = fresh_ifid(rng, self.local_ifid);
                        self.last_nak = Some(suggestion);
                        verdict.nak(&option, &suggestion.to_be_bytes());
                    } else {
                        self.peer_ifid = Some(ifid);
                    }
                }
                _ => verdict.reject(&option),
            }
        }
        if !identifier_seen && !self.missing_naked {
            // Ask once; "If the next Configure-Request does not include
            // this option the peer MUST NOT send another Configure-Nak with
            // this option included" (4.1).
            self.missing_naked = true;
            let suggestion = fresh_ifid(rng, self.local_ifid);
            self.last_nak = Some(suggestion);
            verdict.nak_missing(OPT_INTERFACE_IDENTIFIER, &suggestion.to_be_bytes());
        }
    }

    fn request_acked(&mut self, _options: Options<'_>) {}

    fn request_naked(
        &mut self,
        options: Options<'_>,
        rng: &mut dyn RngCore,
    ) -> Result<(), NegotiationFailure> {
        for option in options {
            if option.kind != OPT_INTERFACE_IDENTIFIER || !self.request_ifid {
                continue;
            }
            let suggested = data_u64(option.data).unwrap_or(0);
            self.local_ifid = if suggested == 0
                || Some(suggested) == self.last_nak
                || Some(suggested) == self.peer_ifid
            {
                // Our own Nak came back, or a useless value: choose anew.
                fresh_ifid(rng, self.local_ifid)
            } else {
                // "a new Configure-Request MUST be sent with the identifier
                // value suggested in the last Configure-Nak from the peer".
                suggested
            };
        }
        Ok(())
    }

    fn request_rejected(&mut self, options: Options<'_>) -> Result<(), NegotiationFailure> {
        if options
            .into_iter()
            .any(|o| o.kind == OPT_INTERFACE_IDENTIFIER)
        {
            // The peer does not negotiate identifiers; ours stays in use.
            self.request_ifid = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn fresh_identifiers_are_random_local_and_non_zero() {
        let mut rng = StdRng::from_seed([3; 32]);
        for _ in 0..100 {
            let ifid = fresh_ifid(&mut rng, 5);
            assert_ne!(ifid, 0);
            assert_ne!(ifid, 5);
            assert_eq!(ifid & UNIVERSAL_BIT, 0);
        }
    }
}
