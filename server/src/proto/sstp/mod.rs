//! The SSTP layer ([MS-SSTP]): wire codec (2.2), HTTPS handshake
//! (3.2.4.1, 4.1), state machines for both roles (3.1 to 3.3) and the
//! crypto binding (3.2.5.2).
//!
//! * [`wire`]: packets, control messages, attributes, [`Status`] values.
//! * [`deframer`]: delineation of packets in the TLS plaintext stream.
//! * [`http`]: the `SSTP_DUPLEX_POST` request and its `200` reply.
//! * [`binding`]: certificate hashes, Compound MAC Key and Compound MAC.
//! * [`connection`]: [`SstpConnection`], the sans-IO state machine the
//!   runtime and the load generator drive.
//! * [`config`]: [`SstpConfig`], timers and limits (spec defaults).
//! * [`transmit`]: [`Transmit`], the output for the peer with where each
//!   unit ends that the owner seals as one TLS record (one SSTP packet per
//!   record, which sstp-client needs).
//!
//! [MS-SSTP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-sstp/

pub mod binding;
pub mod config;
pub mod connection;
pub mod deframer;
pub mod http;
pub mod transmit;
pub mod wire;

#[cfg(test)]
mod pair_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod test_vectors;
#[cfg(test)]
mod wire_tests;

pub use binding::{BindingError, CertHashes};
pub use config::{ConfigError, SstpConfig, UNSUPPORTED_TEST_PROTOCOL};
pub use connection::{
    AbortReason, CloseReason, DropReason, SendError, SstpConnection, SstpEvent, SstpState,
};
pub use deframer::{DeframeError, Deframer};
pub use http::{ClientHandshake, HttpError, HttpResponseError, SstpRequest};
pub use transmit::{Transmit, Units};
pub use wire::{
    ControlMessage, HashProtocol, HashProtocols, MessageType, Packet, Status, StatusInfo, WireError,
};
