//! Sockets and TLS streams on io_uring, shared by the server's workers and
//! the client runtime. tokio-uring is confined to this layer and `worker`.
//!
//! * [`uring_tls`]: rustls driven by hand over tokio-uring's owned buffers.
//! * [`tls_records`]: its userspace record layer on rustls' unbuffered API,
//!   without IO.
//! * [`established`]: the record layer of an established connection
//!   (either role), taken over from rustls with its own ciphers.
//! * `ktls_batch`: kernel TLS sends of a batch, linked, in one submission
//!   of a private io_uring.
//! * [`proxy_header`]: the PROXY protocol header a load balancer sends
//!   before TLS.
//! * `session_io`: the steps the server's and the client's sessions share
//!   (collecting the core's output, waiting for work, lingering, when a
//!   read waits without a buffer).

pub mod established;
pub(crate) mod ktls_batch;
pub mod proxy_header;
pub(crate) mod session_io;
pub mod tls_records;
pub mod uring_tls;
