//! PPP in userspace ([RFC 1661]): frames, the option-negotiation automaton,
//! LCP, IPCP ([RFC 1332], [RFC 1877]), IPv6CP ([RFC 5072]) and the link
//! phases that tie them to authentication.
//!
//! Layers, bottom up:
//!
//! * [`frame`]: `[FF 03] protocol information`, parsed by borrowing.
//! * [`packet`]: control packets (Code, Identifier, Length) and option
//!   lists.
//! * [`fsm`]: the [RFC 1661] 4 automaton, written once; the per-protocol
//!   part is an [`fsm::OptionHandler`]: [`lcp::Lcp`], [`ipcp::Ipcp`],
//!   [`ipv6cp::Ipv6cp`].
//! * [`link`]: [`PppLink`], the phases, driving LCP, the authentication
//!   machines of [`crate::proto::auth`] and the NCPs.
//!
//! [RFC 1661]: https://www.rfc-editor.org/rfc/rfc1661
//! [RFC 1332]: https://www.rfc-editor.org/rfc/rfc1332
//! [RFC 1877]: https://www.rfc-editor.org/rfc/rfc1877
//! [RFC 5072]: https://www.rfc-editor.org/rfc/rfc5072

pub mod frame;
pub mod fsm;
pub mod ipcp;
pub mod ipv6cp;
pub mod lcp;
pub mod link;
pub mod outbox;
pub mod packet;

pub use fsm::{FsmConfig, NegotiationFailure};
pub use ipcp::{IpcpConfig, Ipv4Params};
pub use ipv6cp::{Ipv6Params, Ipv6cpConfig};
pub use lcp::LcpConfig;
pub use link::{
    AddressRequestId, IpVersion, Ipv4AddressRequest, Phase, PppCloseReason, PppConfig,
    PppDropReason, PppEvent, PppLink, PppStats, StaleAddressAnswer, StaleAuthDecision,
};
