//! PPP in userspace ([RFC 1661]): frames, the option-negotiation automaton,
//! LCP, IPCP ([RFC 1332], [RFC 1877]), IPv6CP ([RFC 5072]) and the link
//! phases that tie them to authentication.
//!
//! [RFC 1661]: https://www.rfc-editor.org/rfc/rfc1661
//! [RFC 1332]: https://www.rfc-editor.org/rfc/rfc1332
//! [RFC 1877]: https://www.rfc-editor.org/rfc/rfc1877
//! [RFC 5072]: https://www.rfc-editor.org/rfc/rfc5072

pub mod frame;
pub mod packet;
pub mod fsm;
pub mod outbox;
pub mod pool;

pub use fsm::{FsmConfig, NegotiationFailure};
pub use pool::{AddressPool, Ipv4RangePool};
