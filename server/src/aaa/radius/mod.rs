//! The NAS side of RADIUS in the runtime: authentication ([RFC 2865]) and
//! accounting ([RFC 2866]) through RADIUS servers, around the sans-IO
//! client in [`crate::radius`].
//!
//! # Layering
//!
//! [`crate::radius`] is the protocol: packets, attributes, hiding and
//! authenticators, and a client state machine (server choice, identifiers,
//! retransmission, failover) that performs no IO and reads no clock. This
//! module is the runtime around it:
//!
//! * [`mapping`]: sstpd's authentication requests and decisions in RADIUS
//!   attributes (pure functions);
//! * [`accounting`]: accounting records, their attributes, and the
//!   terminate cause of each way a session ends;
//! * [`spool`]: accounting records on disk until acknowledged;
//! * [`service`]: one thread owning the UDP sockets, the client and the
//!   spool (`sstpd-radius`), fed by the workers through bounded channels,
//!   and [`RadiusService`], the [`Authenticator`] the workers call and
//!   hand accounting records to.
//!
//! # Why one thread with a plain tokio runtime
//!
//! The client keeps one table of outstanding requests per server socket
//! (identifiers are per socket, failover moves requests between servers),
//! so one owner for it and its sockets is simplest and needs no locks. A
//! RADIUS server answers a few thousand requests a second at best: one
//! thread with epoll (tokio's `UdpSocket`, already built for tokio-uring)
//! is far from the bound, and keeps io_uring's owned-buffer ceremony out
//! of a path that carries one datagram per session setup. The workers
//! never wait for it: [`Authenticator::authenticate`] puts the request on
//! a bounded channel with `try_send` (full: answered "service
//! unavailable" at once and counted `radius_queue_full`), and the answer
//! travels back through the request's [`AuthReply`] to the worker that
//! owns the session, bound to its `AuthRequestId`.
//!
//! [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
//! [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
//! [`Authenticator`]: crate::proto::auth::Authenticator
//! [`Authenticator::authenticate`]: crate::proto::auth::Authenticator::authenticate
//! [`AuthReply`]: crate::proto::auth::AuthReply

pub mod accounting;
pub mod mapping;
pub mod service;
pub mod spool;

pub use service::{RadiusService, RadiusStartError};
