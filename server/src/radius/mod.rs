//! RADIUS for the NAS side, as a sans-IO protocol layer: the packet codec,
//! the attributes, the cryptography, a client state machine for
//! authentication and accounting, and the verification half of a Dynamic
//! Authorization (Disconnect/CoA) server.
//!
//! # Why our own
//!
//! No maintained crate covers what a VPN concentrator needs: the crates on
//! crates.io (`radius` 0.4, `radius-rust` 0.4) have no Microsoft
//! attributes of [RFC 2548] (MS-CHAP2-Response, MS-CHAP2-Success, the
//! salt-encrypted MS-MPPE keys the SSTP crypto binding needs), and they
//! come with their own async runtime and sockets, where sstpd runs a
//! thread per core with io_uring. The protocol is small; the parts that
//! are easy to get wrong (MD5 chains, HMAC, constant-time comparison) use
//! RustCrypto's `md-5`, `hmac` and `subtle`.
//!
//! # What it implements
//!
//! * [RFC 2865] RADIUS: packet format (3), attributes (5), User-Password
//!   hiding (5.2), Response Authenticator (3);
//! * [RFC 2866] accounting: Accounting-Request authenticator (3),
//!   Acct-Delay-Time on retransmission (5.2), the status and
//!   termination-cause values;
//! * [RFC 2869] extensions and [RFC 3579] 3.2 Message-Authenticator (added
//!   to every request, required in Access responses by default: the
//!   BlastRADIUS defence);
//! * [RFC 3162] and [RFC 4818] IPv6 attributes;
//! * [RFC 2548] Microsoft vendor attributes and MPPE key encryption;
//! * [RFC 5176] Disconnect and CoA requests: verification and ACK/NAK.
//!
//! # Layering
//!
//! This module is the protocol only: bytes and `now` in, bytes, events and
//! timer deadlines out, no sockets, no clock, like [`crate::proto`]. It
//! uses `std` and the crypto crates and builds without the `runtime`
//! feature (the fuzzers build it so). `aaa::radius` is the runtime around
//! it: the UDP sockets and their thread, the `Authenticator` that turns a
//! PPP authentication request into an Access-Request, the accounting
//! spool and the DAE listener.
//!
//! * [`packet`]: [`Packet`], [`Code`], decode and encode;
//! * [`attr`]: attribute numbers, [`Attributes`], vendor attributes,
//!   enumerated values;
//! * [`crypt`]: password hiding, MPPE keys, authenticators, signing and
//!   verification;
//! * [`client`]: [`Client`], the NAS's requests with retransmission,
//!   failover and dead-server detection;
//! * [`dae`]: Disconnect-/CoA-Request verification and responses.
//!
//! [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
//! [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
//! [RFC 2869]: https://www.rfc-editor.org/rfc/rfc2869
//! [RFC 3579]: https://www.rfc-editor.org/rfc/rfc3579
//! [RFC 3162]: https://www.rfc-editor.org/rfc/rfc3162
//! [RFC 4818]: https://www.rfc-editor.org/rfc/rfc4818
//! [RFC 2548]: https://www.rfc-editor.org/rfc/rfc2548
//! [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176

#![forbid(unsafe_code)]

pub mod attr;
pub mod client;
pub mod crypt;
pub mod dae;
pub mod packet;

#[cfg(test)]
mod proptests;

pub use attr::{Attribute, Attributes};
pub use client::{Client, ClientConfig, Event, Request, RequestHandle, Response, ServerConfig};
pub use packet::{Code, Packet};
